/* EMFILE at accept: with RLIMIT_NOFILE lowered so that accept fails, the
 * listener waits without spinning (CPU time stays low), and once the limit is
 * raised again the waiting client is accepted and served. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

static int accepted, connected, srv_done, cli_done;

static void on_srv_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    (void)r;
    srv_done++;
    tlsflow_free(f);
}

static void on_srv_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status == TLSFLOW_OK) {
        assert_int_equal(tlsflow_read(f, on_srv_read, NULL), 0);
        return;
    }
    assert_int_equal(r->status, TLSFLOW_EOF);
    assert_int_equal(tlsflow_close(f, on_srv_closed, NULL), 0);
}

static void on_accept(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK)
        return;               /* the raw clients A and B, closed without a handshake */
    accepted++;
    assert_int_equal(tlsflow_read(f, on_srv_read, NULL), 0);
}

static void on_cli_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_OK);
    cli_done++;
    tlsflow_free(f);
}

static void on_cli_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    assert_int_equal(r->status, TLSFLOW_EOF);
}

static void on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK)
        fail_msg("connect: %s", tlsflow_error_message(r->error));
    connected++;
    assert_int_equal(tlsflow_read(f, on_cli_read, NULL), 0);
    assert_int_equal(tlsflow_close(f, on_cli_closed, NULL), 0);
}

/* The lowest free descriptor: a limit there leaves no descriptor to take
 * (the ones above it stay usable). */
static int lowest_free_fd(void)
{
    int fd = fcntl(0, F_DUPFD, 0);

    assert_true(fd >= 0);
    close(fd);
    return fd;
}

TF_TEST(test_emfile_backoff, 60)
{
    tlsflow_loop *loop;
    tlsflow_config *scfg = tf_config(TLSFLOW_SERVER, NULL, 20000);
    tlsflow_config *ccfg = tf_config(TLSFLOW_CLIENT, NULL, 20000);
    tlsflow_listener *ls;
    struct rlimit saved, low;
    char port[16];
    double cpu0, cpu;
    int a, b, c;

    if (getenv("TF_TIME_SCALE")) {   /* valgrind keeps descriptors of its own */
        print_message("SKIP: not under TF_TIME_SCALE (valgrind)\n");
        exit(TF_SKIP);
    }
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_listen(loop, scfg, "127.0.0.1", "0", on_accept, NULL, &ls), 0);
    snprintf(port, sizeof(port), "%d", tlsflow_listener_port(ls));
    /* io_uring takes the descriptor limit when an accept is submitted, so the
     * accept armed before the limit drops still succeeds: raw client A is
     * accepted at the high limit, B by the accept armed then, and the one
     * armed after it (low limit) fails for the tlsflow client C with EMFILE.
     * A and B stay silent so that no descriptor is freed meanwhile. */
    a = tf_tcp_connect(tlsflow_listener_port(ls));
    tf_run_for(loop, 200);
    b = tf_tcp_connect(tlsflow_listener_port(ls));
    /* C's socket is made here, at the high limit: tlsflow_connect would
     * resolve "localhost" on its worker thread, which needs a descriptor. */
    c = tf_tcp_connect(tlsflow_listener_port(ls));
    assert_true(c >= 0);
    assert_int_equal(tlsflow_wrap_fd(loop, ccfg, c, "localhost", on_connect, NULL), 0);
    getrlimit(RLIMIT_NOFILE, &saved);
    low = saved;
    low.rlim_cur = (rlim_t)lowest_free_fd();
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    tf_run_for(loop, 300);
    cpu0 = tf_cpu_seconds();
    tf_run_for(loop, 1500);
    cpu = tf_cpu_seconds() - cpu0;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    print_message("CPU while out of descriptors: %.3f s in 1.5 s\n", cpu);
    assert_int_equal(connected, 0);
    assert_int_equal(accepted, 0);
    assert_true(cpu < 0.5);      /* a busy loop would burn the whole 1.5 s */
    tf_run_until_flag(loop, &cli_done, 10000, "the client's close");
    tf_run_until_flag(loop, &srv_done, 10000, "the server's close");
    assert_int_equal(accepted, 1);
    assert_int_equal(connected, 1);
    close(a);
    close(b);
    tf_run_for(loop, 300);
    tlsflow_listener_close(ls);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_emfile_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
