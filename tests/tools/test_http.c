/* Checks tools/http.c: request heads, target → path mapping, response heads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http.h"

static int parse(const char *s, tf_http_request *req)
{
    return tf_http_parse_request(s, strlen(s), TF_HTTP_MAX_HEAD, req);
}

static void test_simple_get(void **state)
{
    (void)state;
    tf_http_request req;
    const char *s = "GET /index.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\nGET /next";
    int r = parse(s, &req);
    assert_int_equal(r, (int)(strstr(s, "\r\n\r\n") - s + 4));
    assert_int_equal(req.method, TF_HTTP_GET);
    assert_int_equal(req.minor, 1);
    assert_true(req.keep_alive);
    assert_false(req.has_body);
    assert_int_equal(req.target_len, strlen("/index.html"));
    assert_memory_equal(req.target, "/index.html", req.target_len);
}

static void test_methods(void **state)
{
    (void)state;
    tf_http_request req;
    assert_true(parse("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", &req) > 0);
    assert_int_equal(req.method, TF_HTTP_HEAD);
    assert_true(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", &req) > 0);
    assert_int_equal(req.method, TF_HTTP_OTHER);
    assert_true(req.has_body);
    assert_int_equal(req.content_length, 3);
    /* methods are case-sensitive */
    assert_true(parse("get / HTTP/1.1\r\nHost: x\r\n\r\n", &req) > 0);
    assert_int_equal(req.method, TF_HTTP_OTHER);
}

static void test_incomplete(void **state)
{
    (void)state;
    tf_http_request req;
    const char *full = "GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    size_t n = strlen(full);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tf_http_parse_request(full, i, TF_HTTP_MAX_HEAD, &req), 0);
    assert_int_equal(tf_http_parse_request(full, n, TF_HTTP_MAX_HEAD, &req), (int)n);
}

static void test_keep_alive(void **state)
{
    (void)state;
    tf_http_request req;
    assert_true(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &req) > 0);
    assert_false(req.keep_alive);
    assert_true(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n", &req) > 0);
    assert_false(req.keep_alive);
    assert_true(parse("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    assert_int_equal(req.minor, 0);
    assert_false(req.keep_alive);
    assert_true(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &req) > 0);
    assert_true(req.keep_alive);
    assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", &req) > 0);
    assert_false(req.keep_alive);
}

static void test_leading_crlf(void **state)
{
    (void)state;
    tf_http_request req;
    assert_true(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", &req) > 0);
    assert_int_equal(req.method, TF_HTTP_GET);
    /* they count against the head's limit: a flood of them is refused */
    static char flood[TF_HTTP_MAX_HEAD + 64];
    for (size_t i = 0; i + 1 < sizeof(flood); i += 2)
        memcpy(flood + i, "\r\n", 2);
    assert_int_equal(tf_http_parse_request(flood, sizeof(flood), TF_HTTP_MAX_HEAD, &req), -400);
    assert_int_equal(tf_http_parse_request(flood, TF_HTTP_MAX_HEAD, TF_HTTP_MAX_HEAD, &req), -400);
    assert_int_equal(tf_http_parse_request(flood, 100, TF_HTTP_MAX_HEAD, &req), 0);
    const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(tf_http_parse_request(s, strlen(s), strlen(s) - 1, &req), -431);
    assert_int_equal(tf_http_parse_request(s, strlen(s), strlen(s), &req), (int)strlen(s));
}

static void test_malformed(void **state)
{
    (void)state;
    tf_http_request req;
    static const char *const bad[] = {
        "GET / HTTP/1.1\nHost: x\r\n\r\n",                /* bare LF */
        "GET / HTTP/1.1\r\nHost: x\n\r\n",
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",             /* empty target */
        "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",          /* control in target */
        "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
        "GET / FOO/1.1\r\nHost: x\r\n\r\n",
        "GET /\r\nHost: x\r\n\r\n",                       /* HTTP/0.9 */
        "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",                         /* 1.1 without Host */
        "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",              /* space before colon */
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",    /* obs-fold */
        "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(bad[i], &req);
        if (r != -400)
            fail_msg("case %zu: got %d", i, r);
    }
    /* a NUL inside a header value */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
    assert_int_equal(tf_http_parse_request(nul, sizeof(nul) - 1, TF_HTTP_MAX_HEAD, &req), -400);
}

static void test_versions(void **state)
{
    (void)state;
    tf_http_request req;
    assert_int_equal(parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n", &req), -505);
    assert_int_equal(parse("GET / HTTP/1.2\r\nHost: x\r\n\r\n", &req), -505);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &req), -501);
}

static void test_head_limit(void **state)
{
    (void)state;
    tf_http_request req;
    char buf[512];
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    /* no end of head within the limit */
    assert_int_equal(tf_http_parse_request(buf, sizeof(buf), 100, &req), -431);
    assert_int_equal(tf_http_parse_request(buf, 99, 100, &req), 0);
    /* a complete head just over the limit */
    const char *s = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(tf_http_parse_request(s, strlen(s), strlen(s) - 1, &req), -431);
    assert_int_equal(tf_http_parse_request(s, strlen(s), strlen(s), &req), (int)strlen(s));
    /* a long request line */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    assert_int_equal(tf_http_parse_request(buf, sizeof(buf), 100, &req), -431);
}

static void expect_path(const char *target, int want, const char *want_path)
{
    char out[64];
    int r = tf_http_target_path(target, strlen(target), out, sizeof(out));
    if (r != want)
        fail_msg("%s: got %d want %d", target, r, want);
    if (want == 0 && strcmp(out, want_path) != 0)
        fail_msg("%s: got \"%s\" want \"%s\"", target, out, want_path);
}

static void test_target_path(void **state)
{
    (void)state;
    expect_path("/", 0, "index.html");
    expect_path("/a", 0, "a");
    expect_path("/a/b.txt?x=1", 0, "a/b.txt");
    expect_path("/a/", 0, "a/index.html");
    expect_path("//a//b", 0, "a/b");
    expect_path("/./a/./b", 0, "a/b");
    expect_path("/a%20b", 0, "a b");
    expect_path("/%7euser", 0, "~user");
    expect_path("/?q", 0, "index.html");
    expect_path("/.", 0, "index.html");
    expect_path("/..", -404, NULL);
    expect_path("/../etc/passwd", -404, NULL);
    expect_path("/a/../../etc/passwd", -404, NULL);
    expect_path("/a/..", -404, NULL);
    expect_path("/%2e%2e/etc/passwd", -404, NULL);
    expect_path("/%2E%2e", -404, NULL);
    expect_path("/a%2f..%2fb", -400, NULL);
    expect_path("/a%00b", -400, NULL);
    expect_path("/a%0ab", -400, NULL);
    expect_path("/a%zz", -400, NULL);
    expect_path("/a%4", -400, NULL);
    expect_path("/a%", -400, NULL);
    expect_path("a", -400, NULL);
    expect_path("*", -400, NULL);
    expect_path("http://h/a", -400, NULL);
    expect_path("/...", 0, "...");
    expect_path("/..a", 0, "..a");
    expect_path("/0123456789012345678901234567890123456789012345678901234567890123456789", -414, NULL);
}

/* A target that just fits tf_http_target_path's buffer of 4096 bytes must
 * still leave room for "/index.html" when it names a directory (serve_conn.c
 * checks; here: a target too long for the buffer is 414, never written past). */
static void test_target_too_long(void **state)
{
    (void)state;
    static char target[8192], out[4096 + 16];
    target[0] = '/';
    memset(target + 1, 'a', sizeof(target) - 1);
    memset(out, 0x5a, sizeof(out));
    assert_int_equal(tf_http_target_path(target, sizeof(target), out, 4096), -414);
    assert_int_equal(tf_http_target_path(target, 4097, out, 4096), -414);
    assert_int_equal(tf_http_target_path(target, 4096, out, 4096), 0);   /* 4095 + NUL */
    assert_int_equal(strlen(out), 4095);
    target[4095] = '/';   /* a directory: "/index.html" does not fit */
    assert_int_equal(tf_http_target_path(target, 4096, out, 4096), -414);
    for (size_t i = 4096; i < sizeof(out); i++)
        assert_int_equal((unsigned char)out[i], 0x5a);
}

static void test_format_head(void **state)
{
    (void)state;
    char buf[256];
    int n = tf_http_format_head(buf, sizeof(buf), 1, 200, 12345, "text/plain", NULL, 1);
    assert_true(n > 0);
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\nServer: tlsflow\r\nContent-Length: 12345\r\n"
                             "Content-Type: text/plain\r\n\r\n");
    n = tf_http_format_head(buf, sizeof(buf), 0, 405, 0, NULL, "GET, HEAD", 0);
    assert_string_equal(buf, "HTTP/1.0 405 Method Not Allowed\r\nServer: tlsflow\r\nContent-Length: 0\r\n"
                             "Allow: GET, HEAD\r\nConnection: close\r\n\r\n");
    n = tf_http_format_head(buf, sizeof(buf), 0, 200, 1, NULL, NULL, 1);
    assert_non_null(strstr(buf, "Connection: keep-alive\r\n"));
    assert_int_equal(tf_http_format_head(buf, 20, 1, 200, 1, NULL, NULL, 1), -1);
    assert_string_equal(tf_http_content_type("a/b.HTML"), "text/html");
    assert_string_equal(tf_http_content_type("a.d/b"), "application/octet-stream");
}

static void test_response(void **state)
{
    (void)state;
    tf_http_response resp;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    int r = tf_http_parse_response(s, strlen(s), 4096, &resp);
    assert_int_equal(r, (int)strlen(s) - 10);
    assert_int_equal(resp.status, 200);
    assert_true(resp.has_length);
    assert_int_equal(resp.content_length, 10);
    assert_true(resp.keep_alive);

    s = "HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\n";
    assert_true(tf_http_parse_response(s, strlen(s), 4096, &resp) > 0);
    assert_false(resp.has_length);
    assert_false(resp.keep_alive);

    s = "HTTP/1.1 404\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert_true(tf_http_parse_response(s, strlen(s), 4096, &resp) > 0);
    assert_int_equal(resp.status, 404);
    assert_false(resp.keep_alive);

    s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_true(tf_http_parse_response(s, strlen(s), 4096, &resp) > 0);
    assert_true(resp.chunked);

    s = "HTTP/1.1 200 OK\r\nContent-Len";
    assert_int_equal(tf_http_parse_response(s, strlen(s), 4096, &resp), 0);
    s = "HTTP/1.1 2x0 OK\r\n\r\n";
    assert_int_equal(tf_http_parse_response(s, strlen(s), 4096, &resp), -400);
    s = "HTTP/1.1 200 OK\r\nX: y\r\n";
    assert_int_equal(tf_http_parse_response(s, strlen(s), 10, &resp), -400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_leading_crlf),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_target_path),
        cmocka_unit_test(test_target_too_long),
        cmocka_unit_test(test_format_head),
        cmocka_unit_test(test_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
