/* Userspace records: GnuTLS protects application data when the kernel does not
 * hold that direction's key. */
#include "handshake/handshake.h"

ssize_t tf_hs_recv_packet(tf_session *hs, gnutls_packet_t *pkt, const void **data, size_t *len)
{
    gnutls_datum_t d;
    ssize_t ret;

    for (;;) {
        size_t before = hs->in->len;
        ret = gnutls_record_recv_packet(hs->s, pkt);
        if (ret == GNUTLS_E_INTERRUPTED || ret == GNUTLS_E_WARNING_ALERT_RECEIVED)
            continue;
        /* A post-handshake message (NewSessionTicket) was taken: GnuTLS says
         * AGAIN though more records may wait in `in`. */
        if (ret == GNUTLS_E_AGAIN && hs->in->len < before)
            continue;
        /* TLS 1.2 renegotiation is refused.  A server asking for one gets a
         * no_renegotiation warning and the flow goes on; a client starting
         * one is answered with a fatal alert (reading on would make GnuTLS
         * 3.7.9 fail and leak the record it holds). */
        if (ret == GNUTLS_E_REHANDSHAKE) {
            /* With the send key in the kernel GnuTLS writes no record: ring/
             * sends the warning through the kernel (hs->no_renegotiation),
             * and the fatal alert from the error it gets. */
            if (hs->cfg->role == TLSFLOW_CLIENT) {
                if (hs->post_out)
                    hs->no_renegotiation = true;
                else
                    gnutls_alert_send(hs->s, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
                continue;
            }
            if (!hs->post_out)
                gnutls_alert_send(hs->s, GNUTLS_AL_FATAL, GNUTLS_A_NO_RENEGOTIATION);
        }
        break;
    }
    tf_hs_note_ticket(hs);
    if (ret > 0) {
        gnutls_packet_get(*pkt, &d, NULL);
        *data = d.data;
        *len = d.size;
    }
    return ret;
}

void tf_hs_packet_free(gnutls_packet_t pkt)
{
    if (pkt)
        gnutls_packet_deinit(pkt);
}

ssize_t tf_hs_send(tf_session *hs, const void *buf, size_t len)
{
    ssize_t ret;

    do {
        ret = gnutls_record_send(hs->s, buf, len);
    } while (ret == GNUTLS_E_INTERRUPTED);
    return ret;
}

bool tf_hs_cork(tf_session *hs)
{
    if (hs->key_update_due)
        return false;
    gnutls_record_cork(hs->s);
    return true;
}

void tf_hs_sent_uncorked(tf_session *hs)
{
    hs->key_update_due = false;   /* GnuTLS sent its KeyUpdate before that record */
}

int tf_hs_alert_for(int gnutls_err)
{
    int level = GNUTLS_AL_FATAL;
    int desc;

    if (gnutls_err >= 0)
        return -1;
    desc = gnutls_error_to_alert(gnutls_err, &level);
    if (desc < 0)
        return GNUTLS_A_INTERNAL_ERROR;
    return desc;
}

void tf_hs_alert(tf_session *hs, int desc)
{
    int ret;

    do {
        ret = gnutls_alert_send(hs->s, GNUTLS_AL_FATAL, (gnutls_alert_description_t)desc);
    } while (ret == GNUTLS_E_INTERRUPTED);
}

void tf_hs_note_app_data(tf_session *hs)
{
    hs->key_updates = 0;
}

int tf_hs_uncork(tf_session *hs)
{
    int ret;

    do {
        ret = gnutls_record_uncork(hs->s, GNUTLS_RECORD_WAIT);
    } while (ret == GNUTLS_E_INTERRUPTED);
    return ret < 0 ? ret : 0;
}

int tf_hs_bye(tf_session *hs)
{
    return gnutls_bye(hs->s, GNUTLS_SHUT_WR);
}

bool tf_hs_has_pending(const tf_session *hs)
{
    return gnutls_record_check_pending(hs->s) > 0;
}
