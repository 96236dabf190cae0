/* Failure and free while operations are in flight (ring/flow.c's one cancel
 * path): a sendfile and a large write are on their way to a peer that does
 * not read when the peer tampers a record, or when the application frees the
 * flow.  The flow fails with the alert after what was already encrypted; a
 * write completes only once no operation of the kernel can still read its
 * buffer; every completion that arrives afterwards is harmless (the ASan
 * lane runs this; the VM lane with the keys in the kernel, label ktls). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_forge.h"
#include "tf_test.h"
#include "ring/ring.h"   /* whether the kernel still has an operation of the flow */

#define FILE_LEN (8u << 20)
#define BIG_WRITE (4u << 20)
#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM"

struct run {
    tlsflow  *flow;
    int       open_done, read_done, file_done, write_done;
    tlsflow_result read_res, file_res, write_res;
    bool      write_done_in_flight;   /* a write completed while the kernel could still read it */
    int       file_fd;
    uint8_t  *big;
    int       alert_level, alert_desc;
    tf_forge_end end;
    bool      tamper;
};

static int make_file(void)
{
    char path[] = "/tmp/tlsflow-fail-in-flight.XXXXXX";
    int fd = mkstemp(path);
    uint8_t *buf = malloc(1 << 20);

    assert_true(fd >= 0);
    unlink(path);
    for (size_t off = 0; off < FILE_LEN; off += 1 << 20) {
        tf_data_fill(buf, 1 << 20, 5, off, TF_DATA_BINARY);
        assert_int_equal(write(fd, buf, 1 << 20), 1 << 20);
    }
    free(buf);
    return fd;
}

static bool kernel_may_read(const tlsflow *f)
{
    return f->tx_path == PATH_KERNEL && (f->send_op.op.busy || f->file_op.op.busy);
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct run *x = arg;

    (void)f;
    x->read_res = *r;
    x->read_done = 1;
}

static void on_file(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct run *x = arg;

    x->file_res = *r;
    x->file_done = 1;
    if (kernel_may_read(f))
        x->write_done_in_flight = true;
}

static void on_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct run *x = arg;

    x->write_res = *r;
    x->write_done = 1;
    if (kernel_may_read(f))
        x->write_done_in_flight = true;
    /* The buffer is the application's again: scribble over it. */
    memset(x->big, 0xee, BIG_WRITE);
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct run *x = arg;

    x->open_done = 1;
    if (r->status != TLSFLOW_OK)
        return;
    x->flow = f;
    assert_int_equal(tlsflow_read(f, on_read, x), 0);
    assert_int_equal(tlsflow_sendfile(f, x->file_fd, 0, FILE_LEN, on_file, x), 0);
    assert_int_equal(tlsflow_write(f, x->big, BIG_WRITE, on_write, x), 0);
}

/* The forge does not read while our data piles up; then (tamper) a record
 * with a bad tag, and it reads until the alert. */
static void stall_then_tamper(tf_forge *p, void *arg)
{
    struct run *x = arg;
    static const char body[] = "tampered";

    usleep(300 * 1000);
    if (!x->tamper)
        return;
    tf_forge_send_record(p, 0, 23, body, sizeof(body) - 1, TF_FORGE_TAMPER_TAG);
    x->end = tf_forge_read_alert(p, 15000, &x->alert_level, &x->alert_desc);
}

static bool all_done(void *arg)
{
    struct run *x = arg;

    return x->read_done && x->file_done && x->write_done;
}

TF_TEST(test_tampered_while_sending, 60)
{
    static struct run x;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, TLS13);
    tf_forge *p;
    int fd;

    memset(&x, 0, sizeof(x));
    x.tamper = true;
    x.file_fd = make_file();
    x.big = malloc(BIG_WRITE);
    assert_non_null(x.big);
    tf_data_fill(x.big, BIG_WRITE, 6, 0, TF_DATA_BINARY);
    p = tf_forge_start(TLSFLOW_CLIENT, TLS13, stall_then_tamper, &x, &fd);
    assert_non_null(p);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, fd, NULL, on_open, &x), 0);
    tf_forge_go(p);
    tf_run_until(loop, tf_forge_done, p, 30000, "the forge got its alert");
    tf_run_until(loop, all_done, &x, 10000, "every operation completed");
    print_message("wire: %s; read: %s; sendfile: status %d; write: status %d\n", tf_forge_seen(p),
                  tlsflow_error_message(x.read_res.error), x.file_res.status, x.write_res.status);
    assert_int_equal(x.end, TF_FORGE_ALERT);
    assert_int_equal(x.alert_level, 2);
    assert_int_equal(x.alert_desc, 20);   /* bad_record_mac */
    assert_int_equal(x.read_res.status, TLSFLOW_ERROR);
    assert_int_equal(x.read_res.error.code, TLSFLOW_E_BAD_RECORD);
    /* Neither could complete: the peer never read enough of them. */
    assert_int_equal(x.file_res.status, TLSFLOW_ERROR);
    assert_int_equal(x.write_res.status, TLSFLOW_ERROR);
    assert_false(x.write_done_in_flight);
    tlsflow_free(x.flow);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tf_forge_free(p);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    close(x.file_fd);
    free(x.big);
}

TF_TEST(test_freed_while_sending, 60)
{
    static struct run x;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, TLS13);
    tf_forge *p;
    int fd;

    memset(&x, 0, sizeof(x));
    x.file_fd = make_file();
    x.big = malloc(BIG_WRITE);
    assert_non_null(x.big);
    p = tf_forge_start(TLSFLOW_CLIENT, TLS13, stall_then_tamper, &x, &fd);
    assert_non_null(p);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, fd, NULL, on_open, &x), 0);
    tf_forge_go(p);
    tf_run_until_flag(loop, &x.open_done, 10000, "open");
    assert_non_null(x.flow);
    tf_run_for(loop, 200);          /* the peer does not read: operations are in flight */
    tlsflow_free(x.flow);           /* everything completes with CANCELED, from the loop */
    tf_run_until(loop, all_done, &x, 10000, "every operation completed");
    assert_int_equal(x.read_res.error.code, TLSFLOW_E_CANCELED);
    assert_int_equal(x.file_res.error.code, TLSFLOW_E_CANCELED);
    assert_int_equal(x.write_res.error.code, TLSFLOW_E_CANCELED);
    assert_false(x.write_done_in_flight);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tf_forge_free(p);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    close(x.file_fd);
    free(x.big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_tampered_while_sending),
        TF_CASE(test_freed_while_sending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
