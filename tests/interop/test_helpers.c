/* The test helpers themselves: data streams and the checker, pumps, peer
 * processes (logs, stdin/stdout, process groups), ports. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

TF_TEST(data_is_deterministic_at_any_offset, 10)
{
    uint8_t whole[1000], part[1000];

    tf_data_fill(whole, sizeof(whole), 42, 0, TF_DATA_BINARY);
    for (size_t off = 0; off < 40; off++) {
        tf_data_fill(part, sizeof(part) - off, 42, off, TF_DATA_BINARY);
        assert_memory_equal(part, whole + off, sizeof(part) - off);
        assert_int_equal(tf_data_byte(42, off, TF_DATA_BINARY), whole[off]);
    }
    tf_data_fill(part, sizeof(part), 43, 0, TF_DATA_BINARY);
    assert_memory_not_equal(part, whole, sizeof(part));
}

TF_TEST(text_data_is_lines_of_base64, 10)
{
    uint8_t buf[4096];

    tf_data_fill(buf, sizeof(buf), 7, 0, TF_DATA_TEXT);
    for (size_t i = 0; i < sizeof(buf); i++) {
        if (i % 64 == 63)
            assert_int_equal(buf[i], '\n');
        else
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                                   buf[i]));
        assert_int_equal(tf_data_byte(7, i, TF_DATA_TEXT), buf[i]);
    }
}

TF_TEST(checker_finds_first_mismatch_across_pieces, 10)
{
    size_t len = 100000;
    uint8_t *buf = malloc(len);
    tf_checker c;

    tf_data_fill(buf, len, 9, 0, TF_DATA_BINARY);
    tf_checker_init(&c, 9, TF_DATA_BINARY);
    for (size_t off = 0; off < len; off += 777)
        assert_true(tf_checker_feed(&c, buf + off, len - off < 777 ? len - off : 777));
    assert_false(c.bad);
    assert_int_equal(c.offset, len);

    buf[54321] ^= 0x10;
    buf[60000] ^= 0x01;
    tf_checker_init(&c, 9, TF_DATA_BINARY);
    assert_true(tf_checker_feed(&c, buf, 50000));
    assert_false(tf_checker_feed(&c, buf + 50000, len - 50000));
    assert_true(c.bad);
    assert_int_equal(c.bad_offset, 54321);
    assert_int_equal(c.got, c.want ^ 0x10);
    assert_int_equal(c.offset, len);
    free(buf);
}

TF_TEST(peer_pump_through_cat, 20)
{
    tf_peer *p = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "cat", NULL);
    tf_pump *pump = tf_peer_pump(p, 3u << 20, 5, TF_DATA_BINARY, TF_PUMP_CLOSE | TF_PUMP_TO_EOF);
    tf_pump_result r;

    while (!tf_pump_done(pump))
        usleep(1000);
    tf_pump_finish(pump, &r);
    assert_int_equal(r.written, 3u << 20);
    assert_int_equal(r.received, 3u << 20);
    assert_true(r.eof);
    assert_false(r.mismatch);
    assert_true(WIFEXITED(tf_peer_wait(p, 2000)));
    tf_peer_stop(p);
}

TF_TEST(pump_reports_mismatch_offset, 20)
{
    /* tr changes every 'A' (0x41): the first one in the stream is the mismatch. */
    tf_peer *p = tf_peer_start(TF_PEER_STDIN | TF_PEER_STDOUT, "tr", "A", "B", NULL);
    tf_pump *pump = tf_peer_pump(p, 100000, 11, TF_DATA_TEXT, TF_PUMP_CLOSE);
    tf_pump_result r;
    uint64_t first = 0;

    while (tf_data_byte(11, first, TF_DATA_TEXT) != 'A')
        first++;
    while (!tf_pump_done(pump))
        usleep(1000);
    tf_pump_finish(pump, &r);
    assert_true(r.mismatch);
    assert_int_equal(r.bad_offset, first);
    tf_peer_stop(p);
}

TF_TEST(peer_log_and_exit_status, 20)
{
    tf_peer *p = tf_peer_start(0, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3", NULL);
    char *log;

    assert_true(WIFEXITED(tf_peer_wait(p, 5000)));
    assert_int_equal(WEXITSTATUS(tf_peer_wait(p, 0)), 3);
    log = tf_peer_log(p);
    assert_string_equal(tf_peer_cmd(p), "sh -c echo to-stdout; echo to-stderr >&2; exit 3");
    assert_non_null(strstr(log, "to-stdout"));
    assert_non_null(strstr(log, "to-stderr"));
    free(log);
    assert_int_equal(tf_peer_wait_log(p, "to-stderr", 100), 0);
    assert_int_equal(tf_peer_wait_log(p, "never", 100), -1);
    tf_peer_stop(p);
}

/* Running, and not a zombie waiting for a reaper that may never come. */
static bool is_alive(pid_t pid)
{
    char path[64], stat[256] = { 0 };
    FILE *f;
    char *paren;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return false;
    if (!fgets(stat, sizeof(stat), f))
        stat[0] = 0;
    fclose(f);
    paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

TF_TEST(peer_group_is_killed, 20)
{
    /* The shell's child sleeps in the same group: stopping kills both. */
    tf_peer *p = tf_peer_start(TF_PEER_STDOUT, "sh", "-c", "sleep 60 & echo $!; wait", NULL);
    char buf[32] = { 0 };
    ssize_t n = read(tf_peer_stdout(p), buf, sizeof(buf) - 1);
    pid_t child;

    assert_true(n > 0);
    child = (pid_t)atoi(buf);
    assert_true(child > 0);
    assert_int_equal(kill(child, 0), 0);
    assert_int_equal(tf_peer_wait(p, 50), -1);
    tf_peer_stop(p);
    for (int i = 0; i < 200 && is_alive(child); i++)
        usleep(5000);
    assert_false(is_alive(child));
}

TF_TEST(missing_binary_exits_127, 10)
{
    tf_peer *p = tf_peer_start(0, "tf-no-such-binary", NULL);
    int st = tf_peer_wait(p, 5000);

    assert_false(tf_have_bin("tf-no-such-binary"));
    assert_true(tf_have_bin("sh"));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 127);
    assert_true(tf_peer_log_contains(p, "No such file"));
    tf_peer_stop(p);
}

TF_TEST(wait_port_sees_listener, 20)
{
    int port = 0, fd = tf_tcp_listen(&port), c;

    assert_true(fd >= 0);
    assert_int_equal(tf_wait_port(port, 1000, NULL), 0);
    c = tf_tcp_connect(port);
    assert_true(c >= 0);
    close(c);
    close(fd);
    port = tf_free_port();
    assert_true(port > 0);
    assert_int_equal(tf_wait_port(port, 50, NULL), -ETIMEDOUT);
}

TF_TEST(wait_port_notices_dead_peer, 20)
{
    tf_peer *p = tf_peer_start(0, "true", NULL);

    assert_int_equal(tf_wait_port(tf_free_port(), 5000, p), -ESRCH);
    tf_peer_stop(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(data_is_deterministic_at_any_offset),
        TF_CASE(text_data_is_lines_of_base64),
        TF_CASE(checker_finds_first_mismatch_across_pieces),
        TF_CASE(peer_pump_through_cat),
        TF_CASE(pump_reports_mismatch_offset),
        TF_CASE(peer_log_and_exit_status),
        TF_CASE(peer_group_is_killed),
        TF_CASE(missing_binary_exits_127),
        TF_CASE(wait_port_sees_listener),
        TF_CASE(wait_port_notices_dead_peer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
