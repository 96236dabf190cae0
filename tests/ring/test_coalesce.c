/* A response's header written, then its small body sent from a file, leave
 * as one TLS record (like nginx's), on the userspace path and, in the VM
 * (label ktls), with the send key in the kernel; a body that does not fit
 * beside the header in one record takes the records it needs.  A forging
 * client counts the records it decrypts. */
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

#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM"
#define RECORD 16384

static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 0000\r\n\r\n";

struct run {
    size_t    body;
    int       file_fd;
    tlsflow  *flow;
    tlsflow_info info;
    int       open_done, writes, close_done;
    tlsflow_status status[2];
};

static void on_close(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct run *x = arg;

    (void)f;
    (void)r;
    x->close_done = 1;
}

static void on_sent(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct run *x = arg;

    x->status[x->writes++ ? 1 : 0] = r->status;
    if (x->writes == 2)
        assert_int_equal(tlsflow_close(f, on_close, x), 0);
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct run *x = arg;

    x->open_done = 1;
    assert_int_equal(r->status, TLSFLOW_OK);
    x->flow = f;
    assert_int_equal(tlsflow_get_info(f, &x->info), 0);
    /* Both queued at once, as a server answers: the header, then the file. */
    assert_int_equal(tlsflow_write(f, head, sizeof(head) - 1, on_sent, x), 0);
    assert_int_equal(tlsflow_sendfile(f, x->file_fd, 0, x->body, on_sent, x), 0);
}

static void read_all(tf_forge *p, void *arg)
{
    (void)arg;
    tf_forge_read_alert(p, 10000, NULL, NULL);   /* until close_notify */
}

static int body_file(size_t len)
{
    char path[] = "/tmp/tlsflow-coalesce.XXXXXX";
    int fd = mkstemp(path);
    uint8_t *buf = malloc(len);

    assert_true(fd >= 0);
    assert_non_null(buf);
    unlink(path);
    tf_data_fill(buf, len, 9, 0, TF_DATA_BINARY);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    free(buf);
    return fd;
}

/* The records the forge counted for a header and a body of `body` bytes. */
static unsigned records_for(size_t body)
{
    static struct run x;
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *cfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, TLS13);
    tf_forge *p;
    const uint8_t *data;
    unsigned records;
    int fd;

    memset(&x, 0, sizeof(x));
    x.body = body;
    x.file_fd = body_file(body);
    p = tf_forge_start(TLSFLOW_CLIENT, TLS13, read_all, &x, &fd);
    assert_non_null(p);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, fd, NULL, on_open, &x), 0);
    tf_forge_go(p);
    tf_run_until(loop, tf_forge_done, p, 20000, "the forge read to the close");
    /* (the close waits for the forge's own close_notify, which never comes) */
    if (tf_expect_ktls())
        assert_int_equal(x.info.ktls_tx, 1);
    assert_int_equal(x.status[0], TLSFLOW_OK);
    assert_int_equal(x.status[1], TLSFLOW_OK);
    assert_int_equal(tf_forge_data(p, &data), sizeof(head) - 1 + body);
    assert_memory_equal(data, head, sizeof(head) - 1);
    records = tf_forge_data_records(p);
    print_message("header + %zu-byte body (%s): %u record(s); wire: %s\n", body,
                  x.info.ktls_tx ? "kernel" : "userspace", records, tf_forge_seen(p));
    tlsflow_free(x.flow);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tf_forge_free(p);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    close(x.file_fd);
    return records;
}

TF_TEST(test_one_byte_body_one_record, 60)
{
    assert_int_equal(records_for(1), 1);
}

TF_TEST(test_body_filling_the_record, 60)
{
    assert_int_equal(records_for(RECORD - (sizeof(head) - 1)), 1);
}

TF_TEST(test_body_past_one_record, 60)
{
    /* The header cannot share with 16 KiB of body: it goes first, alone or
     * with part of the file, never in more than three records. */
    unsigned n = records_for(RECORD);

    assert_true(n >= 2 && n <= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_one_byte_body_one_record),
        TF_CASE(test_body_filling_the_record),
        TF_CASE(test_body_past_one_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
