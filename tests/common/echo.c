/* The echo server (tf_echo): each flow it accepts, or is handed through
 * tf_echo_accept, echoes what it reads and closes at the peer's EOF or after
 * close_after bytes; and a whole round trip through it (tf_echo_roundtrip). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

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

void tf_echo_accept(tlsflow *flow, const tlsflow_result *r, void *arg)
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

void tf_echo_init(tf_echo *e)
{
    memset(e, 0, sizeof(*e));
}

void tf_echo_listen(tf_echo *e, tlsflow_loop *loop, const tlsflow_config *cfg)
{
    int ret;

    tf_echo_init(e);
    ret = tlsflow_listen(loop, cfg, "127.0.0.1", "0", tf_echo_accept, e, &e->ls);
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

/* ---- a round trip ---- */

static void roundtrip(tf_echo_run *r, const tlsflow_config *scfg, const tlsflow_config *ccfg)
{
    tlsflow_loop *loop = tf_loop_new();
    tf_echo e;
    tf_done con, rd, cl;
    tf_xfer x;
    tf_echo_conn *c;

    tf_echo_listen(&e, loop, scfg);
    if (r->close_from_server)
        e.close_after = r->len;
    if (tf_connect_sync(loop, ccfg, "localhost", e.port, &con, 15000)) {
        r->open_error = con.error.code;
        tf_echo_close(&e);
        tlsflow_loop_free(loop);
        return;
    }
    assert_int_equal(tlsflow_get_info(con.flow, &r->cli), 0);
    /* The server name goes with the flow: a copy.  The cipher is GnuTLS's own
     * static string. */
    snprintf(r->server_name, sizeof(r->server_name), "%s",
             r->cli.server_name ? r->cli.server_name : "");
    r->cli.server_name = NULL;
    r->cli.alpn = NULL;
    memset(&x, 0, sizeof(x));
    x.len = x.expect = r->len;
    x.chunk = r->chunk;
    x.seed = r->seed;
    tf_xfer_begin(&x, con.flow);
    tf_run_until(loop, tf_xfer_cond, &x, 60000, "the echo");
    if (x.failed)
        fail_msg("client: %s", x.message);
    assert_int_equal(x.received, r->len);
    r->writes = x.writes;
    tf_xfer_release(&x);
    if (r->close_from_server) {
        tf_read_sync(loop, con.flow, &rd, 15000);
        if (rd.status != TLSFLOW_EOF)
            fail_msg("client read after the server's close: status %d (%s); want EOF", rd.status,
                     rd.message);
    }
    tf_close_sync(loop, con.flow, &cl, 15000);
    if (cl.status != TLSFLOW_OK)
        fail_msg("client close: %s", cl.message);
    tlsflow_free(con.flow);
    tf_run_until(loop, tf_cond_echo_settled, &e, 15000, "the server flow to close");
    if (e.failed)
        fail_msg("server handshake: %s", e.accept_message);
    c = &e.conns[0];
    if (c->error.code)
        fail_msg("server: %s", c->message);
    r->srv = c->info;
    r->srv.cipher = r->srv.alpn = r->srv.server_name = NULL;   /* they went with the server */
    r->srv_eof = c->eof;
    tf_echo_close(&e);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(tlsflow_loop_get_stats(loop, &r->stats), 0);
    tlsflow_loop_free(loop);
    r->ok = true;
}

void tf_echo_roundtrip(tf_echo_run *r)
{
    tlsflow_config *scfg = r->scfg ? NULL : tf_config_ktls(TLSFLOW_SERVER, r->priority, r->ktls);
    tlsflow_config *ccfg = r->ccfg ? NULL : tf_config_ktls(TLSFLOW_CLIENT, r->priority, r->ktls);

    roundtrip(r, r->scfg ? r->scfg : scfg, r->ccfg ? r->ccfg : ccfg);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}
