/* Limits a caller cannot push past: the receive budget's bounds, a loop's
 * memory limit, writev totals that wrap or exceed SSIZE_MAX, sendfile ranges
 * past the end of off_t.  Each refusal is -EINVAL (or -EBUSY once the config
 * is in use) and never calls back; the flow goes on afterwards. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

static void never(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)r;
    (void)arg;
    fail_msg("a refused operation called back");
}

TF_TEST(test_receive_budget_bounds, 10)
{
    tlsflow_config *cfg;

    assert_int_equal(tlsflow_config_new(&cfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_receive_budget(NULL, 65536), -EINVAL);
    assert_int_equal(tlsflow_config_set_receive_budget(cfg, 0), -EINVAL);
    assert_int_equal(tlsflow_config_set_receive_budget(cfg, TLSFLOW_RECEIVE_BUDGET_MIN - 1), -EINVAL);
    assert_int_equal(tlsflow_config_set_receive_budget(cfg, (size_t)TLSFLOW_RECEIVE_BUDGET_MAX + 1), -EINVAL);
    assert_int_equal(tlsflow_config_set_receive_budget(cfg, TLSFLOW_RECEIVE_BUDGET_MIN), 0);
    assert_int_equal(tlsflow_config_set_receive_budget(cfg, TLSFLOW_RECEIVE_BUDGET_MAX), 0);
    tlsflow_config_free(cfg);
}

TF_TEST(test_memory_limit, 10)
{
    tlsflow_loop *loop = tf_loop_new();

    assert_int_equal(tlsflow_loop_set_memory_limit(NULL, 1), -EINVAL);
    assert_int_equal(tlsflow_loop_set_memory_limit(loop, 1 << 20), 0);
    assert_int_equal(tlsflow_loop_set_memory_limit(loop, 0), 0);
    tlsflow_loop_free(loop);
}

/* A flow against an echo server, refused writes on it, then an echo that
 * still works. */
TF_TEST(test_write_totals_refused, 20)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_server_config(TF_ECDSA_CERT, TF_ECDSA_KEY, NULL);
    tlsflow_config *ccfg = tf_client_config(NULL, TF_CA);
    static char byte[1];
    struct iovec wrap[2] = { { byte, SIZE_MAX }, { byte, 2 } };
    struct iovec huge[2] = { { byte, (size_t)SSIZE_MAX }, { byte, 1 } };
    tf_echo e;
    tf_done con;
    tf_xfer x;
    int fd;

    memset(&e, 0, sizeof(e));
    memset(&con, 0, sizeof(con));
    tf_echo_listen(&e, loop, scfg);
    assert_int_equal(tf_connect_sync(loop, ccfg, "localhost", e.port, &con, 10000), 0);
    assert_int_equal(tlsflow_config_set_receive_budget(ccfg, 1 << 20), -EBUSY);
    assert_int_equal(tlsflow_writev(con.flow, wrap, 2, never, NULL), -EINVAL);
    assert_int_equal(tlsflow_writev(con.flow, huge, 2, never, NULL), -EINVAL);
    assert_int_equal(tlsflow_write(con.flow, byte, (size_t)SSIZE_MAX + 1, never, NULL), -EINVAL);
    fd = dup(0);
    assert_true(fd >= 0);
    assert_int_equal(tlsflow_sendfile(con.flow, fd, INT64_MAX - 10, 11, never, NULL), -EINVAL);
    assert_int_equal(tlsflow_sendfile(con.flow, fd, 0, (size_t)SSIZE_MAX + 1, never, NULL), -EINVAL);
    assert_int_equal(tlsflow_sendfile(con.flow, fd, -1, 1, never, NULL), -EINVAL);
    close(fd);
    tf_xfer_start(&x, con.flow, 100000, 100000, 7, TF_DATA_BINARY);
    tf_run_until(loop, tf_xfer_cond, &x, 10000, "echo after the refusals");
    assert_false(x.failed);
    assert_int_equal(x.received, 100000);
    tf_xfer_release(&x);
    tlsflow_free(con.flow);
    tf_echo_close(&e);
    tf_run_until(loop, tf_cond_echo_settled, &e, 10000, "echo server settles");
    tlsflow_loop_free(loop);
    tlsflow_config_free(ccfg);
    tlsflow_config_free(scfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_receive_budget_bounds),
        TF_CASE(test_memory_limit),
        TF_CASE(test_write_totals_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
