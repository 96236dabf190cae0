/* The forging peer of tf_forge.h.  Record protection done by hand:
 *   TLS 1.3 (RFC 8446 §5.2): nonce = iv XOR seq (big-endian, left-padded to
 *     the IV's 12 bytes); AAD = the 5-byte header (type 0x17, 0x03 0x03,
 *     length of ciphertext + tag); the encrypted inner plaintext is
 *     content || content type || zero padding.
 *   TLS 1.2 AES-GCM (RFC 5288): GnuTLS's IV is the 4-byte implicit salt;
 *     nonce = salt || 8-byte explicit nonce, which travels in front of the
 *     ciphertext (we send the sequence number, as GnuTLS does); AAD = seq(8)
 *     || type || 0x03 0x03 || plaintext length.  ChaCha20-Poly1305 in TLS 1.2
 *     (RFC 7905) has a 12-byte IV and nonces as in TLS 1.3, without the
 *     explicit part. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "tf_forge.h"
#include "tf_test.h"

#define REC_ALERT     21
#define REC_HANDSHAKE 22
#define REC_DATA      23
#define MAX_BODY      (5 + 65535)
#define KEPT_DATA     256

struct dir {
    gnutls_aead_cipher_hd_t aead;
    uint8_t  iv[12];
    size_t   iv_len;
    uint64_t seq;
};

struct tf_forge {
    int              fd;
    tlsflow_role     role;
    char             priority[160];
    bool             has_priority;
    tf_forge_script *script;
    void            *arg;
    pthread_t        th;
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    bool             go;
    int              done;        /* atomic */

    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    char             error[200];
    unsigned         version;
    size_t           tag_len;
    bool             explicit_nonce;   /* TLS 1.2 GCM */
    struct dir       tx, rx;

    uint8_t         *rbuf;
    uint8_t          data[KEPT_DATA];
    size_t           data_len;
    unsigned         data_records;
    unsigned         hs_records;
    bool             alert_plaintext;
    char             seen[320];
};

static void set_error(tf_forge *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(tf_forge *p, const char *fmt, ...)
{
    va_list ap;

    if (p->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof(p->error), fmt, ap);
    va_end(ap);
}

static void put_be64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *b)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

/* ---- the handshake, then the keys ---- */

static ssize_t push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    tf_forge *p = ptr;
    ssize_t n;

    do {
        n = send(p->fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    tf_forge *p = ptr;
    ssize_t n;

    do {
        n = recv(p->fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

static int take_dir(tf_forge *p, unsigned is_read, struct dir *d)
{
    gnutls_datum_t mac = { NULL, 0 }, iv = { NULL, 0 }, key = { NULL, 0 };
    unsigned char seq[8];
    int ret;

    ret = gnutls_record_get_state(p->s, is_read, &mac, &iv, &key, seq);
    if (ret < 0) {
        set_error(p, "gnutls_record_get_state(%s): %s", is_read ? "read" : "write", gnutls_strerror(ret));
        return -1;
    }
    if (!iv.data || iv.size > sizeof(d->iv) || !key.data) {
        set_error(p, "unexpected record state: IV of %u bytes", iv.size);
        return -1;
    }
    memcpy(d->iv, iv.data, iv.size);
    d->iv_len = iv.size;
    d->seq = get_be64(seq);
    ret = gnutls_aead_cipher_init(&d->aead, gnutls_cipher_get(p->s), &key);
    if (ret < 0) {
        set_error(p, "gnutls_aead_cipher_init: %s", gnutls_strerror(ret));
        d->aead = NULL;
        return -1;
    }
    return 0;
}

static int take_keys(tf_forge *p)
{
    gnutls_cipher_algorithm_t c = gnutls_cipher_get(p->s);

    switch (gnutls_protocol_get_version(p->s)) {
    case GNUTLS_TLS1_2: p->version = 0x0303; break;
    case GNUTLS_TLS1_3: p->version = 0x0304; break;
    default:
        set_error(p, "negotiated %s: only TLS 1.2 and 1.3 are forged",
                  gnutls_protocol_get_name(gnutls_protocol_get_version(p->s)));
        return -1;
    }
    p->tag_len = gnutls_cipher_get_tag_size(c);
    if (c != GNUTLS_CIPHER_AES_128_GCM && c != GNUTLS_CIPHER_AES_256_GCM &&
        c != GNUTLS_CIPHER_CHACHA20_POLY1305) {
        set_error(p, "negotiated %s: only AES-GCM and ChaCha20-Poly1305 are forged",
                  gnutls_cipher_get_name(c));
        return -1;
    }
    if (take_dir(p, 0, &p->tx) < 0 || take_dir(p, 1, &p->rx) < 0)
        return -1;
    p->explicit_nonce = p->version == 0x0303 && p->tx.iv_len == 4;
    if ((p->explicit_nonce ? 4u : 12u) != p->tx.iv_len || p->tx.iv_len != p->rx.iv_len) {
        set_error(p, "unexpected IV length %zu", p->tx.iv_len);
        return -1;
    }
    return 0;
}

static void *forge_main(void *arg)
{
    tf_forge *p = arg;
    struct timeval tv = { tf_ms(5000) / 1000, 0 }, none = { 0, 0 };
    struct timespec until;
    int ret;

    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (gnutls_certificate_allocate_credentials(&p->cred) < 0 ||
        gnutls_init(&p->s, p->role == TLSFLOW_SERVER ? GNUTLS_SERVER : GNUTLS_CLIENT) < 0) {
        set_error(p, "GnuTLS set-up failed");
        goto out;
    }
    if (p->role == TLSFLOW_SERVER)
        ret = gnutls_certificate_set_x509_key_file(p->cred, TF_ECDSA_CERT, TF_ECDSA_KEY, GNUTLS_X509_FMT_PEM);
    else
        ret = gnutls_certificate_set_x509_trust_file(p->cred, TF_CA, GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        set_error(p, "credentials: %s", gnutls_strerror(ret));
        goto out;
    }
    ret = p->has_priority ? gnutls_priority_set_direct(p->s, p->priority, NULL)
                          : gnutls_set_default_priority(p->s);
    if (ret < 0) {
        set_error(p, "priority \"%s\": %s", p->priority, gnutls_strerror(ret));
        goto out;
    }
    gnutls_credentials_set(p->s, GNUTLS_CRD_CERTIFICATE, p->cred);
    if (p->role == TLSFLOW_CLIENT)
        gnutls_server_name_set(p->s, GNUTLS_NAME_DNS, "localhost", 9);
    gnutls_transport_set_ptr(p->s, p);
    gnutls_transport_set_push_function(p->s, push);
    gnutls_transport_set_pull_function(p->s, pull);
    do {
        ret = gnutls_handshake(p->s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret) && ret != GNUTLS_E_AGAIN);
    if (ret < 0) {
        set_error(p, "handshake: %s", gnutls_strerror(ret));
        goto out;
    }
    /* GnuTLS reads a record's exact length from the socket, so nothing of
     * what follows the handshake sits in its buffers. */
    if (gnutls_record_check_pending(p->s) > 0) {
        set_error(p, "application data arrived with the handshake");
        goto out;
    }
    if (take_keys(p) < 0)
        goto out;
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += tf_ms(10000) / 1000;
    pthread_mutex_lock(&p->mu);
    while (!p->go && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0)
        ;
    ret = p->go;
    pthread_mutex_unlock(&p->mu);
    if (!ret)
        set_error(p, "tf_forge_go was not called within %d s", tf_ms(10000) / 1000);
    else if (p->script)
        p->script(p, p->arg);
out:
    __atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

tf_forge *tf_forge_start_fd(int fd, tlsflow_role role, const char *priority,
                            tf_forge_script *script, void *arg)
{
    tf_forge *p = calloc(1, sizeof(*p));
    int one = 1;

    if (!p || !(p->rbuf = malloc(MAX_BODY))) {
        free(p);
        close(fd);
        return NULL;
    }
    p->fd = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));   /* each record as it is sent */
    p->role = role;
    if (priority) {
        snprintf(p->priority, sizeof(p->priority), "%s", priority);
        p->has_priority = true;
    }
    p->script = script;
    p->arg = arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->th, NULL, forge_main, p)) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p->rbuf);
        free(p);
        close(fd);
        return NULL;
    }
    return p;
}

tf_forge *tf_forge_start(tlsflow_role role, const char *priority, tf_forge_script *script,
                         void *arg, int *dut_fd)
{
    int port, l = tf_tcp_listen(&port), a, b;

    *dut_fd = -1;
    if (l < 0)
        return NULL;
    a = tf_tcp_connect(port);
    b = a >= 0 ? accept4(l, NULL, NULL, SOCK_CLOEXEC) : -1;
    close(l);
    if (a < 0 || b < 0) {
        if (a >= 0)
            close(a);
        return NULL;
    }
    *dut_fd = b;
    return tf_forge_start_fd(a, role, priority, script, arg);
}

void tf_forge_go(tf_forge *p)
{
    pthread_mutex_lock(&p->mu);
    p->go = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool tf_forge_done(void *arg)
{
    tf_forge *p = arg;

    return __atomic_load_n(&p->done, __ATOMIC_ACQUIRE) != 0;
}

void tf_forge_free(tf_forge *p)
{
    if (!p)
        return;
    pthread_join(p->th, NULL);
    if (p->tx.aead)
        gnutls_aead_cipher_deinit(p->tx.aead);
    if (p->rx.aead)
        gnutls_aead_cipher_deinit(p->rx.aead);
    if (p->s)
        gnutls_deinit(p->s);
    if (p->cred)
        gnutls_certificate_free_credentials(p->cred);
    close(p->fd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    explicit_bzero(p->tx.iv, sizeof(p->tx.iv));   /* GnuTLS wipes the keys; the IVs are ours */
    explicit_bzero(p->rx.iv, sizeof(p->rx.iv));
    free(p->rbuf);
    free(p);
}

unsigned tf_forge_version(const tf_forge *p) { return p->version; }
const char *tf_forge_error(const tf_forge *p) { return p->error; }
int tf_forge_fd(const tf_forge *p) { return p->fd; }

/* ---- protection ---- */

static void make_nonce(const struct dir *d, uint64_t seq, const uint8_t *explicit_part, uint8_t nonce[12])
{
    uint8_t s[8];

    if (explicit_part) {
        memcpy(nonce, d->iv, 4);
        memcpy(nonce + 4, explicit_part, 8);
        return;
    }
    memcpy(nonce, d->iv, 12);
    put_be64(s, seq);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] ^= s[i];
}

static int send_all(tf_forge *p, const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w = send(p->fd, b, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int tf_forge_send_record(tf_forge *p, uint8_t outer_type, uint8_t inner_type, const void *body,
                         size_t len, unsigned flags)
{
    size_t cap = 5 + 8 + len + 1 + p->tag_len + 1, off = 5, ct_len, rec_len;
    uint8_t *rec, *plain = NULL, nonce[12], aad[13];
    uint8_t type = p->version == 0x0304 ? (outer_type ? outer_type : REC_DATA)
                                        : (outer_type ? outer_type : inner_type);
    int ret;

    if (!p->tx.aead && !(flags & TF_FORGE_PLAINTEXT))
        return -EINVAL;
    rec = malloc(cap);
    if (!rec)
        return -ENOMEM;
    if (flags & TF_FORGE_PLAINTEXT) {
        if (len)
            memcpy(rec + 5, body, len);
        rec_len = len;
    } else if (p->version == 0x0304) {
        plain = malloc(len + 1);
        if (!plain) {
            free(rec);
            return -ENOMEM;
        }
        if (len)
            memcpy(plain, body, len);
        plain[len] = inner_type;
        rec_len = len + 1 + p->tag_len;
        aad[0] = type;
        aad[1] = aad[2] = 0x03;
        aad[3] = (uint8_t)(rec_len >> 8);
        aad[4] = (uint8_t)rec_len;
        make_nonce(&p->tx, p->tx.seq, NULL, nonce);
        ct_len = cap - off;
        ret = gnutls_aead_cipher_encrypt(p->tx.aead, nonce, 12, aad, 5, p->tag_len, plain, len + 1,
                                         rec + off, &ct_len);
        p->tx.seq++;
        if (ret < 0 || ct_len != rec_len) {
            free(plain);
            free(rec);
            return -EIO;
        }
    } else {
        put_be64(aad, p->tx.seq);
        aad[8] = type;
        aad[9] = aad[10] = 0x03;
        aad[11] = (uint8_t)(len >> 8);
        aad[12] = (uint8_t)len;
        if (p->explicit_nonce) {
            put_be64(rec + off, p->tx.seq);
            make_nonce(&p->tx, p->tx.seq, rec + off, nonce);
            off += 8;
        } else {
            make_nonce(&p->tx, p->tx.seq, NULL, nonce);
        }
        ct_len = cap - off;
        ret = gnutls_aead_cipher_encrypt(p->tx.aead, nonce, 12, aad, 13, p->tag_len,
                                         len ? body : (const void *)aad, len, rec + off, &ct_len);
        p->tx.seq++;
        if (ret < 0 || ct_len != len + p->tag_len) {
            free(rec);
            return -EIO;
        }
        rec_len = off - 5 + ct_len;
    }
    free(plain);
    if (flags & TF_FORGE_TAMPER_TAG)
        rec[5 + rec_len - 1] ^= 0x01;
    if (flags & TF_FORGE_TAMPER_CIPHERTEXT)
        rec[off] ^= 0x80;
    rec[0] = type;
    rec[1] = rec[2] = 0x03;
    if (flags & TF_FORGE_LENGTH_PLUS1)
        rec[5 + rec_len++] = 0;
    rec[3] = (uint8_t)(rec_len >> 8);
    rec[4] = (uint8_t)rec_len;
    ret = send_all(p, rec, 5 + rec_len);
    free(rec);
    return ret;
}

int tf_forge_send_data(tf_forge *p, const void *buf, size_t len)
{
    return tf_forge_send_record(p, 0, REC_DATA, buf, len, 0);
}

int tf_forge_send_alert(tf_forge *p, uint8_t level, uint8_t desc)
{
    const uint8_t a[2] = { level, desc };

    return tf_forge_send_record(p, 0, REC_ALERT, a, 2, 0);
}

/* ---- reading ---- */

/* Exactly n bytes by the deadline: 1, 0 at EOF, -ETIMEDOUT or -errno. */
static int read_exact(tf_forge *p, uint8_t *b, size_t n, long long deadline, size_t *got)
{
    *got = 0;
    while (*got < n) {
        struct pollfd pf = { p->fd, POLLIN, 0 };
        long long left = deadline - tf_now_ms();
        ssize_t r;

        if (left <= 0)
            return -ETIMEDOUT;
        r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        r = recv(p->fd, b + *got, n - *got, MSG_DONTWAIT);
        if (r == 0)
            return 0;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        *got += (size_t)r;
    }
    return 1;
}

/* Opens one record: 0 with *type and the content in b[0..*len), or -1. */
static int open_record(tf_forge *p, const uint8_t hdr[5], uint8_t *b, size_t *len, uint8_t *type)
{
    uint8_t nonce[12], aad[13], *out;
    size_t n = *len, plen;
    int ret;

    if (!p->rx.aead)
        return -1;
    out = malloc(n ? n : 1);
    if (!out)
        return -1;
    if (p->version == 0x0304) {
        if (n < p->tag_len + 1)
            goto bad;
        make_nonce(&p->rx, p->rx.seq, NULL, nonce);
        plen = n;
        ret = gnutls_aead_cipher_decrypt(p->rx.aead, nonce, 12, hdr, 5, p->tag_len, b, n, out, &plen);
        if (ret < 0)
            goto bad;
        while (plen && out[plen - 1] == 0)   /* padding */
            plen--;
        if (!plen)
            goto bad;
        *type = out[--plen];
    } else {
        size_t skip = p->explicit_nonce ? 8 : 0;

        if (n < skip + p->tag_len)
            goto bad;
        plen = n - skip - p->tag_len;
        put_be64(aad, p->rx.seq);
        aad[8] = hdr[0];
        aad[9] = hdr[1];
        aad[10] = hdr[2];
        aad[11] = (uint8_t)(plen >> 8);
        aad[12] = (uint8_t)plen;
        make_nonce(&p->rx, p->rx.seq, skip ? b : NULL, nonce);
        plen = n;
        ret = gnutls_aead_cipher_decrypt(p->rx.aead, nonce, 12, aad, 13, p->tag_len, b + skip, n - skip,
                                         out, &plen);
        if (ret < 0)
            goto bad;
        *type = hdr[0];
    }
    p->rx.seq++;
    memcpy(b, out, plen);
    *len = plen;
    free(out);
    return 0;
bad:
    free(out);
    return -1;
}

static void note(tf_forge *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(tf_forge *p, const char *fmt, ...)
{
    va_list ap;
    size_t used;

    va_start(ap, fmt);
    vsnprintf(p->seen, sizeof(p->seen), fmt, ap);
    va_end(ap);
    used = strlen(p->seen);
    snprintf(p->seen + used, sizeof(p->seen) - used, " (after %u handshake record%s and %zu data bytes)",
             p->hs_records, p->hs_records == 1 ? "" : "s", p->data_len);
}

tf_forge_end tf_forge_read_alert(tf_forge *p, int timeout_ms, int *level, int *desc)
{
    long long deadline = tf_now_ms() + tf_ms(timeout_ms);
    uint8_t hdr[5], type;
    size_t got, len;
    int ret;

    if (level)
        *level = -1;
    if (desc)
        *desc = -1;
    p->alert_plaintext = false;
    for (;;) {
        ret = read_exact(p, hdr, 5, deadline, &got);
        if (ret == 1) {
            len = (size_t)hdr[3] << 8 | hdr[4];
            ret = read_exact(p, p->rbuf, len, deadline, &got);
            if (ret == 1)
                goto record;
            got += 5;
        }
        if (ret == -ETIMEDOUT) {
            note(p, "timeout: nothing decisive within %d ms%s", timeout_ms,
                 got ? " (a record cut short)" : "");
            return TF_FORGE_TIMEOUT;
        }
        if (ret == 0) {
            note(p, "closed without alert%s", got ? " (inside a record)" : "");
            return TF_FORGE_CLOSED;
        }
        if (ret == -ECONNRESET || ret == -EPIPE) {
            note(p, "reset");
            return TF_FORGE_RESET;
        }
        note(p, "receive failed: %s", strerror(-ret));
        return TF_FORGE_RESET;
record:
        if (hdr[0] == REC_ALERT && len == 2 &&
            (p->version == 0x0304 || open_record(p, hdr, p->rbuf, &len, &type) < 0)) {
            p->alert_plaintext = true;    /* unprotected: the receiver could not even read it */
            type = REC_ALERT;
        } else if (open_record(p, hdr, p->rbuf, &len, &type) < 0) {
            note(p, "garbage: a record of type %u and %zu bytes that does not decrypt (read seq %llu)",
                 hdr[0], len, (unsigned long long)p->rx.seq);
            return TF_FORGE_GARBAGE;
        }
        switch (type) {
        case REC_ALERT:
            if (len != 2) {
                note(p, "garbage: an alert record of %zu bytes", len);
                return TF_FORGE_GARBAGE;
            }
            if (level)
                *level = p->rbuf[0];
            if (desc)
                *desc = p->rbuf[1];
            note(p, "%s%s alert %s (%u)", p->alert_plaintext ? "UNPROTECTED " : "",
                 p->rbuf[0] == 2 ? "fatal" : p->rbuf[0] == 1 ? "warning" : "bad-level",
                 tf_forge_alert_name(p->rbuf[1]), p->rbuf[1]);
            return TF_FORGE_ALERT;
        case REC_DATA:
            for (size_t i = 0; i < len && p->data_len + i < KEPT_DATA; i++)
                p->data[p->data_len + i] = p->rbuf[i];
            p->data_len += len;
            p->data_records++;
            break;
        case REC_HANDSHAKE:
            p->hs_records++;
            break;
        default:
            note(p, "garbage: a protected record of content type %u", type);
            return TF_FORGE_GARBAGE;
        }
    }
}

const char *tf_forge_seen(const tf_forge *p)
{
    return p->seen[0] ? p->seen : "(nothing read yet)";
}

size_t tf_forge_data(const tf_forge *p, const uint8_t **data)
{
    if (data)
        *data = p->data;
    return p->data_len;
}

unsigned tf_forge_data_records(const tf_forge *p)
{
    return p->data_records;
}

bool tf_forge_alert_was_plaintext(const tf_forge *p)
{
    return p->alert_plaintext;
}

const char *tf_forge_alert_name(int desc)
{
    static const struct { int desc; const char *name; } names[] = {
        { 0, "close_notify" },       { 10, "unexpected_message" },  { 20, "bad_record_mac" },
        { 22, "record_overflow" },   { 40, "handshake_failure" },   { 42, "bad_certificate" },
        { 47, "illegal_parameter" }, { 50, "decode_error" },        { 51, "decrypt_error" },
        { 70, "protocol_version" },  { 80, "internal_error" },      { 90, "user_canceled" },
        { 100, "no_renegotiation" }, { 109, "missing_extension" },  { 110, "unsupported_extension" },
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].desc == desc)
            return names[i].name;
    return "?";
}
