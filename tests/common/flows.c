/* tlsflow-side helpers: bounded loop runs, recorded completions, opens, reads
 * and closes run to their end, a sink, and a sender that checks what comes
 * back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

#define XFER_CHUNK   (256u << 10)
#define XFER_PENDING 4

int tf_in_call;
int tf_call_ret_;

/* ---- running the loop ---- */

tf_deadline tf_deadline_in(int timeout_ms)
{
    tf_deadline d = { tf_now_ms() + tf_ms(timeout_ms), tf_ms(timeout_ms) };

    return d;
}

void tf_run_step(tlsflow_loop *loop, const tf_deadline *d, const char *what)
{
    int r = tlsflow_loop_run_once(loop, 10);

    if (r < 0)
        fail_msg("tlsflow_loop_run_once: %s", strerror(-r));
    if (tf_now_ms() > d->end)
        fail_msg("timed out after %d ms waiting for %s", d->ms, what);
}

void tf_run_until(tlsflow_loop *loop, tf_cond *cond, void *arg, int timeout_ms, const char *what)
{
    tf_deadline d = tf_deadline_in(timeout_ms);

    while (!cond(arg))
        tf_run_step(loop, &d, what);
}

bool tf_try_run_until(tlsflow_loop *loop, tf_cond *cond, void *arg, int timeout_ms)
{
    long long end = tf_now_ms() + tf_ms(timeout_ms);

    while (!cond(arg)) {
        int r;

        if (tf_now_ms() > end)
            return false;
        r = tlsflow_loop_run_once(loop, 10);
        if (r < 0)
            fail_msg("tlsflow_loop_run_once: %s", strerror(-r));
    }
    return true;
}

bool tf_cond_flag(void *arg)
{
    return __atomic_load_n((const int *)arg, __ATOMIC_ACQUIRE) != 0;
}

void tf_run_until_flag(tlsflow_loop *loop, const int *flag, int timeout_ms, const char *what)
{
    tf_run_until(loop, tf_cond_flag, (void *)flag, timeout_ms, what);
}

void tf_run_for(tlsflow_loop *loop, int ms)
{
    long long end = tf_now_ms() + tf_ms(ms);

    while (tf_now_ms() < end) {
        int r = tlsflow_loop_run_once(loop, 10);

        if (r < 0)
            fail_msg("tlsflow_loop_run_once: %s", strerror(-r));
    }
}

/* ---- completions ---- */

void tf_on_done(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    tf_done *d = arg;

    d->n++;
    d->flow = flow;
    d->status = res->status;
    d->len = res->len;
    d->error = res->error;
    d->reentered |= tf_in_call;
    d->message[0] = 0;
    if (res->status == TLSFLOW_ERROR)
        snprintf(d->message, sizeof(d->message), "%s", tlsflow_error_message(res->error));
}

bool tf_cond_done(void *arg)
{
    return ((tf_done *)arg)->n > 0;
}

static void opened(tlsflow_loop *loop, tf_done *out, int timeout_ms)
{
    tf_run_until(loop, tf_cond_done, out, timeout_ms, "the connection");
    if (out->n != 1)
        fail_msg("connect callback ran %d times", out->n);
    if (out->status == TLSFLOW_OK && !out->flow)
        fail_msg("connect succeeded without a flow");
    if (out->status != TLSFLOW_OK && out->flow)
        fail_msg("a failed connect passed a flow");
}

int tf_connect_sync(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host, int port,
                    tf_done *out, int timeout_ms)
{
    char service[16];
    int ret;

    memset(out, 0, sizeof(*out));
    snprintf(service, sizeof(service), "%d", port);
    ret = tlsflow_connect(loop, cfg, host, service, tf_on_done, out);
    if (ret)
        fail_msg("tlsflow_connect refused: %s", strerror(-ret));
    opened(loop, out, timeout_ms);
    return out->status == TLSFLOW_OK ? 0 : -1;
}

int tf_connect_fd_sync(tlsflow_loop *loop, const tlsflow_config *cfg, int port, tf_done *out,
                       int timeout_ms)
{
    int fd = tf_tcp_connect(port), ret;

    memset(out, 0, sizeof(*out));
    if (fd < 0)
        fail_msg("connect to port %d: %s", port, strerror(-fd));
    ret = tlsflow_wrap_fd(loop, cfg, fd, "localhost", tf_on_done, out);
    if (ret)
        fail_msg("tlsflow_wrap_fd refused: %s", strerror(-ret));
    opened(loop, out, timeout_ms);
    return out->status == TLSFLOW_OK ? 0 : -1;
}

/* Runs the loop until the operation just submitted (ret: the call's) completes. */
static void completes(tlsflow_loop *loop, int ret, const char *call, tf_done *out, int timeout_ms,
                      const char *what)
{
    if (ret)
        fail_msg("%s refused: %s", call, strerror(-ret));
    tf_run_until(loop, tf_cond_done, out, timeout_ms, what);
}

void tf_read_sync(tlsflow_loop *loop, tlsflow *flow, tf_done *out, int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    completes(loop, tlsflow_read(flow, tf_on_done, out), "tlsflow_read", out, timeout_ms, "a read");
}

void tf_close_sync(tlsflow_loop *loop, tlsflow *flow, tf_done *out, int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    completes(loop, tlsflow_close(flow, tf_on_done, out), "tlsflow_close", out, timeout_ms, "the close");
}

/* ---- tf_sink ---- */

void tf_on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tf_sink *s = arg;

    s->reads++;
    s->reentered |= tf_in_call;
    if (r->status == TLSFLOW_OK) {
        if (s->got + r->len > s->cap)
            fail_msg("read %zu bytes past the %zu expected", s->got + r->len - s->cap, s->cap);
        assert_true(r->len > 0);
        memcpy(s->buf + s->got, r->data, r->len);
        s->got += r->len;
        if (s->stop_at_cap && s->got == s->cap)
            return;
        assert_int_equal(tlsflow_read(f, tf_on_read, s), 0);
    } else if (r->status == TLSFLOW_EOF) {
        s->eof++;
    } else {
        s->errors++;
        s->error = r->error;
    }
}

void tf_sink_start(tlsflow *flow, tf_sink *s, size_t cap)
{
    memset(s, 0, sizeof(*s));
    s->buf = malloc(cap ? cap : 1);
    assert_non_null(s->buf);
    s->cap = cap;
    assert_int_equal(tlsflow_read(flow, tf_on_read, s), 0);
}

/* ---- tf_xfer ---- */

static void xfer_fail(tf_xfer *x, const tlsflow_result *r, const char *op)
{
    x->errors++;
    if (x->failed)
        return;
    x->failed = true;
    x->error = r->error;
    snprintf(x->message, sizeof(x->message), "%s: %s", op,
             r->status == TLSFLOW_EOF ? "EOF" : tlsflow_error_message(r->error));
}

static void xfer_update(tf_xfer *x)
{
    bool sent = x->written == x->len;
    bool came = x->received >= x->expect;

    x->done = x->failed || (sent && (came || x->eof));
}

static void xfer_written(tlsflow *flow, const tlsflow_result *r, void *arg);

static void xfer_submit(tf_xfer *x)
{
    while (!x->failed && x->pending < XFER_PENDING && x->submitted < x->len) {
        size_t n = x->len - x->submitted < x->chunk ? x->len - x->submitted : x->chunk;
        int ret = tlsflow_write(x->flow, x->buf + x->submitted, n, xfer_written, x);

        if (ret)
            fail_msg("tlsflow_write refused: %s", strerror(-ret));
        x->submitted += n;
        x->pending++;
    }
}

static void xfer_written(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    tf_xfer *x = arg;

    (void)flow;
    x->pending--;
    if (r->status == TLSFLOW_OK) {
        x->written += r->len;
        x->writes++;
    } else {
        xfer_fail(x, r, "write");
    }
    xfer_submit(x);
    xfer_update(x);
}

static void xfer_read(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    tf_xfer *x = arg;

    x->reading = false;
    if (r->status == TLSFLOW_OK) {
        if (!r->len)
            fail_msg("a read completed OK with 0 bytes");
        tf_checker_feed(&x->chk, r->data, r->len);
        x->received += r->len;
        if (x->chk.bad && !x->failed) {
            x->failed = true;
            snprintf(x->message, sizeof(x->message),
                     "byte %llu differs: sent 0x%02x, got back 0x%02x",
                     (unsigned long long)x->chk.bad_offset, x->chk.want, x->chk.got);
        }
        if (x->received < x->expect && !x->failed) {
            int ret = tlsflow_read(flow, xfer_read, x);

            if (ret)
                fail_msg("tlsflow_read refused: %s", strerror(-ret));
            x->reading = true;
        }
    } else if (r->status == TLSFLOW_EOF) {
        x->eof = true;
    } else {
        xfer_fail(x, r, "read");
    }
    xfer_update(x);
}

void tf_xfer_begin(tf_xfer *x, tlsflow *flow)
{
    tf_xfer set = *x;

    memset(x, 0, sizeof(*x));
    x->flow = flow;
    x->len = set.len;
    x->expect = set.expect;
    x->chunk = set.chunk ? set.chunk : XFER_CHUNK;
    x->seed = set.seed;
    x->offset = set.offset;
    x->kind = set.kind;
    x->buf = malloc(x->len ? x->len : 1);
    assert_non_null(x->buf);
    tf_data_fill(x->buf, x->len, x->seed, x->offset, x->kind);
    tf_checker_init(&x->chk, x->seed, x->kind);
    x->chk.offset = x->offset;
    if (x->expect) {
        int ret = tlsflow_read(flow, xfer_read, x);

        if (ret)
            fail_msg("tlsflow_read refused: %s", strerror(-ret));
        x->reading = true;
    }
    xfer_submit(x);
    xfer_update(x);
}

void tf_xfer_start(tf_xfer *x, tlsflow *flow, size_t len, size_t expect, uint64_t seed, unsigned kind)
{
    memset(x, 0, sizeof(*x));
    x->len = len;
    x->expect = expect;
    x->seed = seed;
    x->kind = kind;
    tf_xfer_begin(x, flow);
}

bool tf_xfer_cond(void *arg)
{
    return ((tf_xfer *)arg)->done;
}

void tf_xfer_release(tf_xfer *x)
{
    free(x->buf);
    x->buf = NULL;
}
