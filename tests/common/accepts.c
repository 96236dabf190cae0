/* tf_accepts: a listener's on_flow that records each handshake (the flow's
 * tlsflow_info, the peer's chain as DER copies, or the failure) and closes
 * the flow; and running an outside client to its end while the loop serves. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

static void accepted_closed(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    tf_accepts *a = arg;

    (void)r;
    a->closed++;
    tlsflow_free(flow);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void tf_accepts_on_flow(tlsflow *flow, const tlsflow_result *r, void *arg)
{
    tf_accepts *a = arg;
    tf_accepted *x;

    if (a->n >= TF_ACCEPTS_MAX) {
        if (flow)
            tlsflow_free(flow);
        return;
    }
    x = &a->a[a->n++];
    memset(x, 0, sizeof(*x));
    if (r->status != TLSFLOW_OK) {
        x->error = r->error;
        copy_str(x->message, sizeof(x->message), tlsflow_error_message(r->error));
        return;
    }
    x->ok = true;
    if (tlsflow_get_info(flow, &x->info) == 0) {
        copy_str(x->cipher, sizeof(x->cipher), x->info.cipher);
        copy_str(x->server_name, sizeof(x->server_name), x->info.server_name);
    }
    x->info.cipher = x->cipher;
    x->info.server_name = x->server_name;
    x->info.alpn = NULL;
    for (size_t i = 0; i < TF_CHAIN_MAX; i++) {
        const void *der;
        size_t len;
        if (tlsflow_get_peer_certificate(flow, i, &der, &len) != 0)
            break;
        x->chain[i] = malloc(len);
        if (!x->chain[i])
            break;
        memcpy(x->chain[i], der, len);
        x->chain_len[i] = len;
        x->nchain = i + 1;
    }
    if (tlsflow_close(flow, accepted_closed, a) != 0)
        tlsflow_free(flow);
}

void tf_accepts_free(tf_accepts *a)
{
    for (int i = 0; i < a->n && i < TF_ACCEPTS_MAX; i++)
        for (size_t j = 0; j < a->a[i].nchain; j++)
            free(a->a[i].chain[j]);
    memset(a, 0, sizeof(*a));
}

static bool peer_gone(void *p)
{
    return tf_peer_exited(p);
}

char *tf_run_client(tlsflow_loop *loop, const char *const *argv, int timeout_ms, int *status)
{
    tf_peer *p = tf_peer_startv(TF_PEER_STDIN, argv);
    char *log;
    int st;

    tf_peer_close_stdin(p);   /* the client ends after its handshake */
    tf_run_until(loop, peer_gone, p, timeout_ms, tf_peer_cmd(p));
    st = tf_peer_wait(p, 1000);
    if (status)
        *status = st;
    log = tf_peer_log(p);
    tf_peer_stop(p);
    return log;
}
