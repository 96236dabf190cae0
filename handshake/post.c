/* After the handshake, once the kernel holds the receive key: GnuTLS's own
 * kTLS (3.7.9) drops handshake records, so NewSessionTickets and KeyUpdates
 * are fed to it through the QUIC interface, and what it wants to send back
 * (a KeyUpdate answer) is captured here for ring/ to send as a type-22 record. */
#include <errno.h>
#include <string.h>

#include "handshake/handshake.h"

#define HS_KEY_UPDATE 24

static int capture(gnutls_session_t s, gnutls_record_encryption_level_t level,
                   gnutls_handshake_description_t htype, const void *data, size_t len)
{
    tf_session *hs = gnutls_transport_get_ptr(s);

    (void)level;
    (void)htype;
    if (!hs->post_out || tf_buf_reserve(hs->post_out, len))
        return -1;
    memcpy(tf_buf_tail(hs->post_out), data, len);
    hs->post_out->len += len;
    return 0;
}

void tf_hs_capture_handshake(tf_session *hs, tf_buf *post_out)
{
    if (hs->post_out)
        return;
    hs->post_out = post_out;
    gnutls_handshake_set_read_function(hs->s, capture);
}

void tf_hs_kernel_rx_begin(tf_session *hs, tf_buf *post_out)
{
    tf_hs_capture_handshake(hs, post_out);
    hs->kernel_rx = true;
}

/* Only whole records reach GnuTLS from now on, so that it never holds part of
 * one when the receive key moves to the kernel. */
void tf_hs_whole_records(tf_session *hs, bool on)
{
    hs->whole_records = on;
}

size_t tf_hs_whole_prefix(const uint8_t *p, size_t len, size_t *missing)
{
    size_t off = 0, rec;

    for (;;) {
        if (len - off < 5) {
            *missing = 5 - (len - off);
            return off;
        }
        rec = 5 + ((size_t)p[off + 3] << 8 | p[off + 4]);
        if (len - off < rec) {
            *missing = rec - (len - off);
            return off;
        }
        off += rec;
    }
}

/* Counts the peer's KeyUpdates on the userspace path (GnuTLS handles them)
 * and notes the answer GnuTLS owes; a storm is refused. */
static int key_update_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                           const gnutls_datum_t *msg)
{
    tf_session *hs = gnutls_transport_get_ptr(s);

    (void)when;
    if (htype != GNUTLS_HANDSHAKE_KEY_UPDATE || !incoming || hs->kernel_rx)
        return 0;   /* the kernel path counts them itself */
    if (++hs->key_updates > TF_MAX_KEY_UPDATES)
        return GNUTLS_E_UNEXPECTED_PACKET;
    if (msg && msg->size >= 1 && msg->data[0] == 1)
        hs->key_update_due = true;
    return 0;
}

/* A session has one hook: it serves the KeyUpdate count and the server's
 * look at the ClientHello's cipher order (session.c). */
static int handshake_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                          const gnutls_datum_t *msg)
{
    if (htype == GNUTLS_HANDSHAKE_KEY_UPDATE)
        return key_update_hook(s, htype, when, incoming, msg);
    if (htype == GNUTLS_HANDSHAKE_CLIENT_HELLO && incoming)
        tf_hs_client_hello(gnutls_transport_get_ptr(s), msg);
    return 0;
}

void tf_hs_watch_key_updates(tf_session *hs)
{
    gnutls_handshake_set_hook_function(hs->s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_PRE, handshake_hook);
}

/* One whole message to GnuTLS (it refuses a KeyUpdate followed by other
 * handshake data in the same call). */
static int feed_message(tf_session *hs, const uint8_t *msg, size_t len, size_t after,
                        tf_post_event *ev)
{
    int ret;

    if (msg[0] == HS_KEY_UPDATE) {
        if (len != 5 || msg[4] > 1)
            return GNUTLS_E_UNEXPECTED_PACKET_LENGTH;
        /* The key changes right after it: nothing may follow in its record. */
        if (after)
            return GNUTLS_E_UNEXPECTED_PACKET;
        if (++hs->key_updates > TF_MAX_KEY_UPDATES)
            return GNUTLS_E_UNEXPECTED_PACKET;
        ev->key_update = true;
        ev->update_requested = msg[4] == 1;
    }
    ret = gnutls_handshake_write(hs->s, GNUTLS_ENCRYPTION_LEVEL_APPLICATION, msg, len);
    return ret == GNUTLS_E_AGAIN ? 0 : ret;
}

/* Handshake bytes of one record from the kernel: every whole message in
 * them (and in what earlier records left) goes to GnuTLS in turn; a partial
 * one waits for the next record. */
int tf_hs_feed_handshake(tf_session *hs, const uint8_t *p, size_t len, tf_post_event *ev)
{
    tf_buf *b = &hs->post_in;
    int ret = 0;

    memset(ev, 0, sizeof(*ev));
    if (gnutls_protocol_get_version(hs->s) != GNUTLS_TLS1_3) {
        /* TLS 1.2 renegotiation is refused, as the userspace path does: a
         * server's HelloRequest gets a no_renegotiation warning and the flow
         * goes on; a client's ClientHello ends it. */
        if (len >= 4 && p[0] == 0 && hs->cfg->role == TLSFLOW_CLIENT) {
            ev->refuse_renegotiation = true;
            return 0;
        }
        if (len >= 1 && p[0] == 1 && hs->cfg->role == TLSFLOW_SERVER)
            return GNUTLS_E_REHANDSHAKE;
        return GNUTLS_E_UNEXPECTED_PACKET;
    }
    if (len == 0)
        return 0;       /* an empty fragment carries nothing */
    /* A record is at most 16 KiB; the message being joined is bounded below
     * (its header names its size), so `post_in` stays under
     * TF_POST_MSG_MAX + 4 plus one record. */
    if (len > TF_POST_MSG_MAX)
        return GNUTLS_E_HANDSHAKE_TOO_LARGE;
    if (tf_buf_reserve(b, len))
        return GNUTLS_E_MEMORY_ERROR;
    memcpy(tf_buf_tail(b), p, len);
    b->len += len;
    while (b->len >= 4) {
        const uint8_t *m = tf_buf_head(b);
        size_t mlen = 4 + ((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]);

        if (mlen > TF_POST_MSG_MAX)
            return GNUTLS_E_HANDSHAKE_TOO_LARGE;
        if (b->len < mlen)
            break;
        ret = feed_message(hs, m, mlen, b->len - mlen, ev);
        tf_buf_consume(b, mlen);
        if (ret < 0)
            return ret;
    }
    if (b->len == 0)
        tf_buf_free(b);
    tf_hs_note_ticket(hs);
    return 0;
}

int tf_hs_request_key_update_reply(tf_session *hs)
{
    return gnutls_session_key_update(hs->s, 0);
}
