/* tlsflow-side helpers: bounded loop runs, recorded completions, a sender that
 * checks what comes back, and an echoing server. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "tf_test.h"

#define XFER_CHUNK   (256u << 10)
#define XFER_PENDING 4

long long tf_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tf_run_until(tlsflow_loop *loop, tf_cond *cond, void *arg, int timeout_ms, const char *what)
{
    long long end = tf_now_ms() + timeout_ms;

    while (!cond(arg)) {
        int r = tlsflow_loop_run_once(loop, 10);

        if (r < 0)
            fail_msg("tlsflow_loop_run_once: %s", strerror(-r));
        if (tf_now_ms() > end)
            fail_msg("timed out after %d ms waiting for %s", timeout_ms, what);
    }
}

static bool flag_set(void *arg)
{
    return __atomic_load_n((const int *)arg, __ATOMIC_ACQUIRE) != 0;
}

void tf_run_until_flag(tlsflow_loop *loop, const int *flag, int timeout_ms, const char *what)
{
    tf_run_until(loop, flag_set, (void *)flag, timeout_ms, what);
}

void tf_run_for(tlsflow_loop *loop, int ms)
{
    long long end = tf_now_ms() + ms;

    while (tf_now_ms() < end) {
        int r = tlsflow_loop_run_once(loop, 10);

        if (r < 0)
            fail_msg("tlsflow_loop_run_once: %s", strerror(-r));
    }
}

void tf_on_done(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    tf_done *d = arg;

    d->n++;
    d->flow = flow;
    d->status = res->status;
    d->len = res->len;
    d->error = res->error;
    d->message[0] = 0;
    if (res->status == TLSFLOW_ERROR)
        snprintf(d->message, sizeof(d->message), "%s", tlsflow_error_message(res->error));
}

static bool done_called(void *arg)
{
    return ((tf_done *)arg)->n > 0;
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
    tf_run_until(loop, done_called, out, timeout_ms, "the connection");
    if (out->n != 1)
        fail_msg("connect callback ran %d times", out->n);
    if (out->status == TLSFLOW_OK && !out->flow)
        fail_msg("connect succeeded without a flow");
    if (out->status != TLSFLOW_OK && out->flow)
        fail_msg("a failed connect passed a flow");
    return out->status == TLSFLOW_OK ? 0 : -1;
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
    if (r->status == TLSFLOW_OK)
        x->written += r->len;
    else
        xfer_fail(x, r, "write");
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

void tf_xfer_start(tf_xfer *x, tlsflow *flow, size_t len, size_t expect, uint64_t seed, unsigned kind)
{
    memset(x, 0, sizeof(*x));
    x->flow = flow;
    x->len = len;
    x->expect = expect;
    x->chunk = XFER_CHUNK;
    x->buf = malloc(len ? len : 1);
    assert_non_null(x->buf);
    tf_data_fill(x->buf, len, seed, 0, kind);
    tf_checker_init(&x->chk, seed, kind);
    if (expect) {
        int ret = tlsflow_read(flow, xfer_read, x);

        if (ret)
            fail_msg("tlsflow_read refused: %s", strerror(-ret));
        x->reading = true;
    }
    xfer_submit(x);
    xfer_update(x);
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

/* ---- tf_echo ---- */

struct echo_write {
    tf_echo_conn *c;
    uint8_t       data[];
};

static void conn_error(tf_echo_conn *c, const tlsflow_result *r)
{
    if (c->error.code)
        return;
    c->error = r->error;
    snprintf(c->message, sizeof(c->message), "%s", tlsflow_error_message(r->error));
}

static void echo_closed(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    tf_echo_conn *c = arg;

    if (r->status == TLSFLOW_ERROR)
        conn_error(c, r);
    c->closed = true;
    c->freed = true;
    tlsflow_free(flow);
}

static void echo_close(tf_echo_conn *c)
{
    int ret;

    if (c->closing || c->freed)
        return;
    c->closing = true;
    ret = tlsflow_close(c->flow, echo_closed, c);
    if (ret)
        fail_msg("tlsflow_close refused: %s", strerror(-ret));
}

static void echo_written(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    struct echo_write *w = arg;

    (void)flow;
    w->c->pending--;
    if (r->status == TLSFLOW_ERROR && r->error.code != TLSFLOW_E_CANCELED)
        conn_error(w->c, r);
    free(w);
}

static void echo_read(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    tf_echo_conn *c = arg;
    int ret;

    if (r->status == TLSFLOW_EOF) {
        c->eof = true;
        echo_close(c);
        return;
    }
    if (r->status == TLSFLOW_ERROR) {
        if (r->error.code == TLSFLOW_E_CANCELED)
            return;
        /* After our close_notify a peer may just hang up: the read learns the
         * stream was cut, the close still completes. */
        if (c->closing && r->error.code == TLSFLOW_E_TRUNCATED) {
            c->truncated_after_close = true;
            return;
        }
        conn_error(c, r);
        if (!c->freed) {
            c->freed = true;
            tlsflow_free(flow);
        }
        return;
    }
    if (!c->closing) {
        struct echo_write *w = malloc(sizeof(*w) + r->len);

        assert_non_null(w);
        w->c = c;
        memcpy(w->data, r->data, r->len);
        ret = tlsflow_write(flow, w->data, r->len, echo_written, w);
        if (ret)
            fail_msg("tlsflow_write refused: %s", strerror(-ret));
        c->pending++;
        c->echoed += r->len;
    }
    if (c->srv->close_after && c->echoed >= c->srv->close_after)
        echo_close(c);
    ret = tlsflow_read(flow, echo_read, c);
    if (ret)
        fail_msg("tlsflow_read refused: %s", strerror(-ret));
}

static void echo_accept(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    tf_echo *e = arg;
    tf_echo_conn *c = NULL;
    int ret;

    if (r->status != TLSFLOW_OK || !flow) {
        e->failed++;
        e->accept_error = r->error;
        snprintf(e->accept_message, sizeof(e->accept_message), "%s",
                 tlsflow_error_message(r->error));
        return;
    }
    for (int i = 0; i < TF_ECHO_MAX && !c; i++)
        if (!e->conns[i].flow)
            c = &e->conns[i];
    if (!c)
        fail_msg("more than %d flows accepted", TF_ECHO_MAX);
    e->accepted++;
    c->srv = e;
    c->flow = flow;
    assert_int_equal(tlsflow_get_info(flow, &c->info), 0);
    /* Copies: the flow's strings go with it. */
    snprintf(c->cipher, sizeof(c->cipher), "%s", c->info.cipher ? c->info.cipher : "");
    snprintf(c->alpn, sizeof(c->alpn), "%s", c->info.alpn ? c->info.alpn : "");
    c->info.cipher = c->info.cipher ? c->cipher : NULL;
    c->info.alpn = c->info.alpn ? c->alpn : NULL;
    c->info.server_name = NULL;
    ret = tlsflow_read(flow, echo_read, c);
    if (ret)
        fail_msg("tlsflow_read refused: %s", strerror(-ret));
}

bool tf_cond_echo_settled(void *arg)
{
    tf_echo *e = arg;

    if (e->failed)
        return true;
    for (int i = 0; i < e->accepted && i < TF_ECHO_MAX; i++)
        if (!e->conns[i].freed)
            return false;
    return e->accepted > 0;
}

void tf_echo_listen(tf_echo *e, tlsflow_loop *loop, const tlsflow_config *cfg)
{
    int ret;

    memset(e, 0, sizeof(*e));
    ret = tlsflow_listen(loop, cfg, "127.0.0.1", "0", echo_accept, e, &e->ls);
    if (ret)
        fail_msg("tlsflow_listen: %s", strerror(-ret));
    e->port = tlsflow_listener_port(e->ls);
    if (e->port <= 0)
        fail_msg("tlsflow_listener_port: %d", e->port);
}

void tf_echo_close(tf_echo *e)
{
    if (e->ls)
        tlsflow_listener_close(e->ls);
    e->ls = NULL;
    for (int i = 0; i < TF_ECHO_MAX; i++)
        if (e->conns[i].flow && !e->conns[i].freed) {
            e->conns[i].freed = true;
            tlsflow_free(e->conns[i].flow);
        }
}
