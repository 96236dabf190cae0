/* handshake/seal.c — bulk application data sealed straight into the send
 * buffer, in userspace.
 *
 * gnutls_record_send encrypts into a record buffer of its own, which the push
 * function then copies into ours (session.c, vec_push): one more pass over
 * every byte sent.  For the bulk of a file or stream, the AEAD here writes
 * each record where it is sent from, with the key, IV and next sequence
 * number GnuTLS exports (gnutls_record_get_state), and GnuTLS's write
 * sequence is moved past the records sealed (gnutls_record_set_state), so
 * that its own next record follows on.  GnuTLS keeps everything else:
 * handshake messages, alerts, close_notify, KeyUpdates (a due one goes
 * through GnuTLS with the next record, and the new key is picked up after),
 * and the record size: sealing starts only once GnuTLS itself sent a full
 * TF_SEAL_RECORD record on the session, so a peer's smaller record_size_limit
 * or max_fragment_length is never passed.
 *
 * Record formats (RFC 8446 5.2, RFC 5288, RFC 7905, RFC 6655):
 *   TLS 1.3: header | AEAD(data | 0x17) ; nonce = iv ^ seq, AAD = header
 *   TLS 1.2 GCM/CCM: header | seq (explicit nonce) | AEAD(data) ;
 *            nonce = salt(4) | seq, AAD = seq | 0x17 | 0x0303 | len(data)
 *   TLS 1.2 ChaCha20-Poly1305: header | AEAD(data) ; nonce = iv ^ seq, AAD as above */
#include <string.h>

#include "handshake/handshake.h"

#define TAG_LEN 16
#define APP_DATA 23

static bool supported(gnutls_cipher_algorithm_t c)
{
    return c == GNUTLS_CIPHER_AES_128_GCM || c == GNUTLS_CIPHER_AES_256_GCM ||
           c == GNUTLS_CIPHER_CHACHA20_POLY1305 || c == GNUTLS_CIPHER_AES_128_CCM ||
           c == GNUTLS_CIPHER_AES_256_CCM;
}

void tf_hs_seal_deinit(tf_session *hs)
{
    tf_seal *sl = &hs->seal;

    if (sl->aead)
        gnutls_aead_cipher_deinit(sl->aead);
    explicit_bzero(sl, sizeof(*sl));
}

void tf_hs_seal_note_sent(tf_session *hs, size_t asked, ssize_t sent)
{
    tf_seal *sl = &hs->seal;

    if (sl->state != SEAL_UNTRIED || sent < 0)
        return;
    if ((size_t)sent < asked && asked <= TF_SEAL_RECORD) {
        sl->state = SEAL_NEVER;       /* GnuTLS cuts records shorter: the peer's limit */
        return;
    }
    if ((size_t)sent != TF_SEAL_RECORD)
        return;                       /* nothing learnt yet */
    gnutls_protocol_t v = gnutls_protocol_get_version(hs->s);
    sl->cipher = gnutls_cipher_get(hs->s);
    sl->tls13 = v == GNUTLS_TLS1_3;
    sl->state = (v == GNUTLS_TLS1_3 || v == GNUTLS_TLS1_2) && supported(sl->cipher) ? SEAL_READY
                                                                                   : SEAL_NEVER;
}

/* The write key GnuTLS holds now (a KeyUpdate changes it), and the next
 * sequence number: false when it cannot be had. */
static bool current_key(tf_session *hs, uint64_t *seq)
{
    tf_seal *sl = &hs->seal;
    gnutls_datum_t mac = { 0 }, iv = { 0 }, key = { 0 };
    unsigned char s[8];

    if (gnutls_record_get_state(hs->s, 0, &mac, &iv, &key, s) < 0 || !key.data || !iv.data ||
        key.size > sizeof(sl->key) || iv.size > sizeof(sl->iv) ||
        iv.size != (sl->tls13 || sl->cipher == GNUTLS_CIPHER_CHACHA20_POLY1305 ? 12u : 4u))
        return false;
    if (!sl->aead || key.size != sl->key_len || memcmp(key.data, sl->key, key.size) != 0) {
        if (sl->aead)
            gnutls_aead_cipher_deinit(sl->aead);
        sl->aead = NULL;
        if (gnutls_aead_cipher_init(&sl->aead, sl->cipher, &key) < 0) {
            sl->aead = NULL;
            return false;
        }
        memcpy(sl->key, key.data, key.size);
        sl->key_len = key.size;
    }
    memcpy(sl->iv, iv.data, iv.size);
    sl->iv_len = iv.size;
    *seq = 0;
    for (int i = 0; i < 8; i++)
        *seq = *seq << 8 | s[i];
    explicit_bzero(s, sizeof(s));
    return true;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* One record of n bytes of src at dst: its length on the wire, or a GnuTLS error. */
static ssize_t seal_one(tf_seal *sl, uint64_t seq, const uint8_t *src, size_t n, uint8_t *dst)
{
    static const uint8_t type = APP_DATA;
    uint8_t nonce[12], aad[13], be[8];
    size_t body, clen;
    int ret;

    put_be64(be, seq);
    if (sl->iv_len == 12) {           /* TLS 1.3, and ChaCha20 in TLS 1.2: iv ^ seq */
        memcpy(nonce, sl->iv, 12);
        for (int i = 0; i < 8; i++)
            nonce[4 + i] ^= be[i];
    } else {                          /* TLS 1.2 GCM/CCM: salt | explicit seq */
        memcpy(nonce, sl->iv, 4);
        memcpy(nonce + 4, be, 8);
    }
    if (sl->tls13) {
        giovec_t auth = { dst, 5 }, iov[2] = { { (void *)src, n }, { (void *)&type, 1 } };
        body = n + 1 + TAG_LEN;
        dst[0] = APP_DATA;
        dst[1] = dst[2] = 3;
        dst[3] = (uint8_t)(body >> 8);
        dst[4] = (uint8_t)body;
        clen = body;
        ret = gnutls_aead_cipher_encryptv(sl->aead, nonce, 12, &auth, 1, TAG_LEN, iov, 2,
                                          dst + 5, &clen);
    } else {
        size_t explicit_len = sl->iv_len == 4 ? 8 : 0;
        body = explicit_len + n + TAG_LEN;
        dst[0] = APP_DATA;
        dst[1] = dst[2] = 3;
        dst[3] = (uint8_t)(body >> 8);
        dst[4] = (uint8_t)body;
        memcpy(dst + 5, be, explicit_len);
        memcpy(aad, be, 8);
        aad[8] = APP_DATA;
        aad[9] = aad[10] = 3;
        aad[11] = (uint8_t)(n >> 8);
        aad[12] = (uint8_t)n;
        clen = n + TAG_LEN;
        ret = gnutls_aead_cipher_encrypt(sl->aead, nonce, 12, aad, sizeof(aad), TAG_LEN, src, n,
                                         dst + 5 + explicit_len, &clen);
    }
    explicit_bzero(nonce, sizeof(nonce));
    if (ret < 0)
        return ret;
    return (ssize_t)(5 + body);
}

ssize_t tf_hs_seal(tf_session *hs, const void *buf, size_t len)
{
    tf_seal *sl = &hs->seal;
    const uint8_t *src = buf;
    uint64_t seq;
    size_t done = 0;
    uint8_t be[8];

    size_t start = hs->out->len;

    if (sl->state != SEAL_READY || hs->key_update_due || len == 0 ||
        gnutls_record_check_corked(hs->s) || !current_key(hs, &seq))
        return 0;
    while (done < len) {
        size_t n = len - done < TF_SEAL_RECORD ? len - done : TF_SEAL_RECORD;
        ssize_t wire;

        if (seq == UINT64_MAX)
            break;                    /* GnuTLS refuses to wrap; let it say so */
        if (tf_buf_reserve(hs->out, 5 + 8 + n + 1 + TAG_LEN)) {
            if (!done)
                return GNUTLS_E_MEMORY_ERROR;
            break;
        }
        wire = seal_one(sl, seq, src + done, n, tf_buf_tail(hs->out));
        if (wire < 0) {
            if (!done)
                return wire;
            break;
        }
        hs->out->len += (size_t)wire;
        seq++;
        done += n;
    }
    put_be64(be, seq);
    if (gnutls_record_set_state(hs->s, 0, be) < 0) {
        /* GnuTLS would number its next records as these: they never leave
         * (the same nonce twice under one key gives the key away). */
        hs->out->len = start;
        sl->state = SEAL_NEVER;
        return GNUTLS_E_INTERNAL_ERROR;
    }
    return (ssize_t)done;
}

ssize_t tf_hs_send_bulk(tf_session *hs, const void *buf, size_t len, bool corked)
{
    size_t n = len < TF_SEAL_RECORD ? len : TF_SEAL_RECORD;
    ssize_t ret;

    if (!corked && (ret = tf_hs_seal(hs, buf, len)) != 0)
        return ret;
    ret = tf_hs_send(hs, buf, n);
    if (!corked)                      /* a corked send shows nothing of the record size */
        tf_hs_seal_note_sent(hs, n, ret);
    return ret;
}
