/* SIGPIPE never kills the process: the peer closes (or resets) while we keep
 * writing, on the data path, in close and in a failed opening.  Each case runs
 * in a child with SIGPIPE at its default action, so a death is reported as a
 * failure instead of killing the test runner. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_gnutls_peer.h"

#define CHUNK (256 * 1024)

static uint8_t *blob;
static int finished, write_done, close_done, open_done;
static tlsflow *flow;   /* freed by the test, outside callbacks (see faults_free_in_callback) */
static tlsflow_status last;

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    (void)r;
    (void)f;
    close_done = 1;
}

static void on_write(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    last = r->status;
    if (r->status == TLSFLOW_OK && write_done++ < 400) {
        assert_int_equal(tlsflow_write(f, blob, CHUNK, on_write, NULL), 0);
        return;
    }
    finished = 1;
    /* Closing a flow whose peer is gone: close_notify into a dead socket. */
    if (tlsflow_close(f, on_closed, NULL) < 0)
        close_done = 1;
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)r;
    (void)arg;
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    open_done = 1;
    if (r->status != TLSFLOW_OK)
        return;
    flow = f;
    assert_int_equal(tlsflow_read(f, on_read, NULL), 0);
    assert_int_equal(tlsflow_write(f, blob, CHUNK, on_write, NULL), 0);
}

/* The GnuTLS peer reads a little, then closes (FIN, not RST) or resets. */
static bool reset_instead;
static void read_then_close(tf_gnutls_peer *p)
{
    tf_gnutls_peer_recv(p, 100000);
    tf_gnutls_peer_hangup(p, reset_instead);
}

static void data_path(void)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = tf_config(TLSFLOW_SERVER, NULL, 5000);
    tlsflow_listener *ls;
    tf_gnutls_peer peer;

    memset(&peer, 0, sizeof(peer));
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    assert_int_equal(tlsflow_listen(loop, cfg, "127.0.0.1", "0", on_open, NULL, &ls), 0);
    peer.script = read_then_close;
    tf_gnutls_peer_start(&peer, tf_tcp_connect(tlsflow_listener_port(ls)));
    tf_run_until_flag(loop, &close_done, 20000, "the close");
    assert_true(finished);
    assert_true(last != TLSFLOW_OK);
    tlsflow_free(flow);
    tlsflow_listener_close(ls);
    tlsflow_loop_run(loop);
    tf_gnutls_peer_join(&peer, 10000);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

/* A client hello answered by a close: the failed opening sends its alert
 * into a closed socket. */
static void failed_open(void)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg = tf_config(TLSFLOW_SERVER, NULL, 5000);
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int a, b;

    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    tf_tcp_pair(&a, &b);
    assert_int_equal(send(a, junk, sizeof(junk) - 1, 0), (ssize_t)sizeof(junk) - 1);
    tf_tcp_reset(a);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, b, NULL, on_open, NULL), 0);
    tf_run_until_flag(loop, &open_done, 5000, "the opening");
    tlsflow_loop_run(loop);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

static void in_child(void (*fn)(void))
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        fn();
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("the child died of signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    assert_int_equal(WEXITSTATUS(status), 0);
}

TF_TEST(test_peer_closes, 60) { reset_instead = false; in_child(data_path); }
TF_TEST(test_peer_resets, 60) { reset_instead = true; in_child(data_path); }
TF_TEST(test_failed_open, 30) { in_child(failed_open); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_peer_closes),
        TF_CASE(test_peer_resets),
        TF_CASE(test_failed_open),
    };

    blob = calloc(1, CHUNK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
