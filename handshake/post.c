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

void tf_hs_kernel_rx_begin(tf_session *hs, tf_buf *post_out)
{
    hs->post_out = post_out;
    gnutls_handshake_set_read_function(hs->s, capture);
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

int tf_hs_feed_handshake(tf_session *hs, const uint8_t *msg, size_t len, tf_post_event *ev)
{
    int ret;

    memset(ev, 0, sizeof(*ev));
    if (gnutls_protocol_get_version(hs->s) != GNUTLS_TLS1_3)
        return GNUTLS_E_UNEXPECTED_HANDSHAKE_PACKET;   /* TLS 1.2 renegotiation: refused */
    /* A KeyUpdate is the only message after which the key changes; the kernel
     * delivers it alone (it stops decrypting right after it on 6.14+). */
    if (len >= 5 && msg[0] == HS_KEY_UPDATE) {
        ev->key_update = true;
        ev->update_requested = msg[4] == 1;
    }
    ret = gnutls_handshake_write(hs->s, GNUTLS_ENCRYPTION_LEVEL_APPLICATION, msg, len);
    if (ret == GNUTLS_E_AGAIN)
        ret = 0;                 /* part of a message: GnuTLS keeps it */
    if (ret == 0)
        tf_hs_note_ticket(hs);
    return ret;
}

int tf_hs_request_key_update_reply(tf_session *hs)
{
    return gnutls_session_key_update(hs->s, 0);
}
