/* Sessions: GnuTLS set-up over ring-owned buffers, the non-blocking handshake,
 * resumption tickets and what the application may know of the result. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <gnutls/ocsp.h>
#include <gnutls/socket.h>
#include <gnutls/x509.h>

#include "handshake/handshake.h"

/* ---- Transport: GnuTLS reads `in` and appends to `out`; ring/ moves them. ---- */

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t n)
{
    tf_session *hs = ptr;

    size_t avail = hs->in->len, missing;

    /* Whole records only: a record is granted once it is all here, and GnuTLS
     * then reads it (header, then body) from the grant. */
    if (hs->whole_records) {
        if (hs->granted == 0 && tf_hs_whole_prefix(tf_buf_head(hs->in), hs->in->len, &missing))
            hs->granted = 5 + ((size_t)tf_buf_head(hs->in)[3] << 8 | tf_buf_head(hs->in)[4]);
        avail = hs->granted;
    }
    if (avail == 0) {
        if (*hs->in_eof)
            return 0;
        gnutls_transport_set_errno(hs->s, EAGAIN);
        return -1;
    }
    if (n > avail)
        n = avail;
    if (hs->whole_records)
        hs->granted -= n;
    memcpy(buf, tf_buf_head(hs->in), n);
    tf_buf_consume(hs->in, n);
    return (ssize_t)n;
}

static ssize_t vec_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
    tf_session *hs = ptr;
    size_t total = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (tf_buf_reserve(hs->out, total)) {
        gnutls_transport_set_errno(hs->s, ENOMEM);
        return -1;
    }
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_len)
            continue;
        memcpy(tf_buf_tail(hs->out), iov[i].iov_base, iov[i].iov_len);
        hs->out->len += iov[i].iov_len;
    }
    return (ssize_t)total;
}

/* ---- Resumption: clients keep the newest ticket per server. ---- */

static struct tf_ticket *cache_find(struct tf_config_live *live, const char *key)
{
    for (size_t i = 0; i < TF_CACHE_SLOTS; i++)
        if (live->cache[i].key && strcmp(live->cache[i].key, key) == 0)
            return &live->cache[i];
    return NULL;
}

static void cache_load(tf_session *hs)
{
    struct tf_config_live *live = hs->cfg->live;
    struct tf_ticket *t;

    pthread_mutex_lock(&live->lock);
    t = cache_find(live, hs->cache_key);
    if (t) {
        t->used = ++live->cache_clock;
        gnutls_session_set_data(hs->s, t->data.data, t->data.size);
    }
    pthread_mutex_unlock(&live->lock);
}

/* Session data holds the resumption secret: its bytes are wiped before the
 * memory goes back to the allocator, where the next malloc could show them. */
void tf_hs_datum_wipe(gnutls_datum_t *d)
{
    if (d->data) {
        gnutls_memset(d->data, 0, d->size);
        gnutls_free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

static void cache_store(tf_session *hs, gnutls_datum_t *data)
{
    struct tf_config_live *live = hs->cfg->live;
    struct tf_ticket *t;

    pthread_mutex_lock(&live->lock);
    t = cache_find(live, hs->cache_key);
    if (!t) {
        t = &live->cache[0];
        for (size_t i = 1; i < TF_CACHE_SLOTS && t->key; i++)
            if (!live->cache[i].key || live->cache[i].used < t->used)
                t = &live->cache[i];
        free(t->key);
        t->key = strdup(hs->cache_key);
    }
    tf_hs_datum_wipe(&t->data);
    t->data = *data;
    t->used = ++live->cache_clock;
    if (!t->key)               /* out of memory: forget the slot */
        tf_hs_datum_wipe(&t->data);
    pthread_mutex_unlock(&live->lock);
}

void tf_hs_note_ticket(tf_session *hs)
{
    gnutls_datum_t data;
    unsigned flags;

    if (hs->ticket_saved || !hs->cache_key || !hs->handshake_done || hs->cfg->no_resumption)
        return;
    flags = gnutls_session_get_flags(hs->s);
    /* TLS 1.3 tickets come after the handshake; asking for session data before
     * one arrived would make GnuTLS read the transport itself. */
    if (gnutls_protocol_get_version(hs->s) == GNUTLS_TLS1_3 && !(flags & GNUTLS_SFLAGS_SESSION_TICKET))
        return;
    hs->ticket_saved = true;
    if (gnutls_session_get_data2(hs->s, &data) < 0)
        return;
    if (data.size)
        cache_store(hs, &data);
    else
        tf_hs_datum_wipe(&data);
}

/* ---- Server cipher order: ChaCha20 for clients that ask for it first ----
 * Only where the kernel takes ChaCha20 keys both ways (config.c says why). */

static bool is_grease(unsigned v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);   /* RFC 8701 */
}

static bool is_chacha_suite(unsigned v)
{
    return v == 0x1303 || v == 0xcca8 || v == 0xcca9 || v == 0xccaa;
}

/* Hostile bytes: every length is checked before it is followed. */
bool tf_hs_lists_chacha_first(const uint8_t *p, size_t len)
{
    size_t off, n;

    /* Tolerate the 4-byte handshake header in front of the body. */
    if (len >= 4 && p[0] == 1 && (((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3]) == len - 4) {
        p += 4;
        len -= 4;
    }
    off = 2 + 32;                         /* legacy_version, random */
    if (len < off + 1)
        return false;
    off += 1 + (size_t)p[off];            /* legacy_session_id */
    if (len < off + 2)
        return false;
    n = ((size_t)p[off] << 8) | p[off + 1];
    off += 2;
    if (n > len - off)
        return false;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v = ((unsigned)p[off + i] << 8) | p[off + i + 1];
        if (!is_grease(v))
            return is_chacha_suite(v);
    }
    return false;
}

void tf_hs_client_hello(tf_session *hs, const gnutls_datum_t *msg)
{
    if (hs->cfg->role == TLSFLOW_SERVER && hs->may_prefer_chacha && msg && msg->data)
        hs->chacha_first = tf_hs_lists_chacha_first(msg->data, msg->size);
}

/* After the ClientHello is parsed, before a suite is chosen. */
static int post_client_hello(gnutls_session_t s)
{
    tf_session *hs = gnutls_transport_get_ptr(s);

    if (hs->chacha_first && hs->cfg->live->chacha_priority)
        return gnutls_priority_set(s, hs->cfg->live->chacha_priority);
    return 0;
}

/* ---- Set-up ---- */

static bool is_ip_literal(const char *name)
{
    unsigned char tmp[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
}

static int setup_verify(tf_session *hs)
{
    const tlsflow_config *cfg = hs->cfg;

    if (cfg->role == TLSFLOW_SERVER) {
        if (cfg->verify == TLSFLOW_VERIFY_NONE)
            return 0;
        gnutls_certificate_server_set_request(hs->s, cfg->verify == TLSFLOW_VERIFY_REQUIRED
                                                         ? GNUTLS_CERT_REQUIRE
                                                         : GNUTLS_CERT_REQUEST);
        /* OPTIONAL verifies after the handshake, and only what was sent. */
        if (cfg->verify == TLSFLOW_VERIFY_REQUIRED)
            gnutls_session_set_verify_cert(hs->s, NULL, 0);
        return 0;
    }
    if (cfg->verify == TLSFLOW_VERIFY_REQUIRED)
        gnutls_session_set_verify_cert(hs->s, hs->server_name, 0);
    return 0;
}

int tf_hs_session_init(tf_session *hs, const tlsflow_config *cfg, const char *server_name,
                       const char *cache_key, tf_buf *in, tf_buf *out, bool *in_eof)
{
    unsigned flags;
    int ret;

    memset(hs, 0, sizeof(*hs));
    hs->cfg = cfg;
    hs->in = in;
    hs->out = out;
    hs->in_eof = in_eof;
    flags = (cfg->role == TLSFLOW_SERVER ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
            GNUTLS_NO_SIGNAL;
    if (cfg->no_resumption)
        flags |= GNUTLS_NO_TICKETS;
    ret = gnutls_init(&hs->s, flags);
    if (ret < 0)
        return ret;
    if ((server_name && !(hs->server_name = strdup(server_name))) ||
        (cache_key && !(hs->cache_key = strdup(cache_key)))) {
        ret = GNUTLS_E_MEMORY_ERROR;
        goto fail;
    }
    ret = gnutls_priority_set(hs->s, tf_hs_config_priority(cfg));
    if (ret < 0)
        goto fail;
    ret = gnutls_credentials_set(hs->s, GNUTLS_CRD_CERTIFICATE, cfg->cred);
    if (ret < 0)
        goto fail;
    if (cfg->nalpn) {
        unsigned af = cfg->role == TLSFLOW_SERVER ? GNUTLS_ALPN_SERVER_PRECEDENCE | GNUTLS_ALPN_MANDATORY : 0;
        ret = gnutls_alpn_set_protocols(hs->s, cfg->alpn, (unsigned)cfg->nalpn, af);
        if (ret < 0)
            goto fail;
    }
    if (cfg->role == TLSFLOW_SERVER) {
        /* Our default order prefers AES-GCM (an AES CPU): a ChaCha20-first
         * client is let have ChaCha20 where the kernel will run it. */
        if (!cfg->priority && tf_hs_cpu_has_aes() && tf_hs_kernel_chacha(cfg)) {
            hs->may_prefer_chacha = true;     /* tf_hs_client_hello looks */
            gnutls_handshake_set_post_client_hello_function(hs->s, post_client_hello);
        }
        if (!cfg->no_resumption) {
            ret = gnutls_session_ticket_enable_server(hs->s, &cfg->live->ticket_key);
            if (ret < 0)
                goto fail;
        }
    } else {
        if (server_name && *server_name && !is_ip_literal(server_name)) {
            ret = gnutls_server_name_set(hs->s, GNUTLS_NAME_DNS, server_name, strlen(server_name));
            if (ret < 0)
                goto fail;
        }
        if (hs->cache_key && !cfg->no_resumption)
            cache_load(hs);
    }
    setup_verify(hs);
    gnutls_transport_set_ptr(hs->s, hs);
    gnutls_transport_set_pull_function(hs->s, pull);
    gnutls_transport_set_vec_push_function(hs->s, vec_push);
    return 0;
fail:
    tf_hs_session_deinit(hs);
    return ret;
}

void tf_hs_session_deinit(tf_session *hs)
{
    tf_hs_seal_deinit(hs);
    if (hs->s)
        gnutls_deinit(hs->s);
    free(hs->server_name);
    free(hs->cache_key);
    tf_buf_free(&hs->post_in);
    memset(hs, 0, sizeof(*hs));
}

/* One gnutls_handshake call takes at most one record of a handshake message
 * that is not complete yet and then says AGAIN, though `in` may hold the
 * message's other records: a ClientHello cut into many small records would
 * wait for a receive that never comes.  While it took input, call again. */
static int handshake_step(tf_session *hs)
{
    size_t before;
    int ret;

    do {
        before = hs->in->len;
        ret = gnutls_handshake(hs->s);
    } while ((ret < 0 && ret != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(ret)) ||
             (ret == GNUTLS_E_AGAIN && hs->in->len < before));
    return ret;
}

static void remember_names(tf_session *hs);

/* ---- OCSP: what the server stapled, as tlsflow_info.ocsp_status ---- */
enum { OCSP_NONE = 0, OCSP_GOOD = 1, OCSP_REVOKED = 2, OCSP_INVALID = 3 };
/* RFC 6066 bad_certificate_status_response; GnuTLS 3.7 has no name for it. */
#define ALERT_BAD_STATUS_RESPONSE ((gnutls_alert_description_t)113)

/* Believed only when it is about the leaf the server sent, signed by a
 * signer our trust list vouches for, and not past its nextUpdate. */
static int read_ocsp(tf_session *hs)
{
    gnutls_ocsp_resp_t resp = NULL;
    gnutls_x509_crt_t leaf = NULL;
    gnutls_x509_trust_list_t tl = NULL;
    const gnutls_datum_t *peers;
    gnutls_datum_t d;
    unsigned n = 0, verify = 0, cs = 0;
    time_t next = -1, this_upd, revoked_at;   /* GnuTLS 3.7.9 wants every pointer for a revoked one */
    unsigned reason;
    int st = OCSP_INVALID;

    if (gnutls_ocsp_status_request_get(hs->s, &d) < 0)
        return OCSP_NONE;
    peers = gnutls_certificate_get_peers(hs->s, &n);
    if (!peers || n == 0)
        return OCSP_INVALID;
    if (gnutls_ocsp_resp_init(&resp) < 0 || gnutls_x509_crt_init(&leaf) < 0)
        goto out;
    if (gnutls_ocsp_resp_import(resp, &d) < 0 || gnutls_x509_crt_import(leaf, &peers[0], GNUTLS_X509_FMT_DER) < 0)
        goto out;
    if (gnutls_ocsp_resp_check_crt(resp, 0, leaf) < 0 ||
        gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL, &cs, &this_upd, &next, &revoked_at,
                                    &reason) < 0)
        goto out;
    gnutls_certificate_get_trust_list(hs->cfg->cred, &tl);
    if (!tl || gnutls_ocsp_resp_verify(resp, tl, &verify, 0) < 0 || verify)
        goto out;
    if (next != -1 && next < time(NULL))
        goto out;   /* stale */
    st = cs == GNUTLS_OCSP_CERT_GOOD ? OCSP_GOOD : cs == GNUTLS_OCSP_CERT_REVOKED ? OCSP_REVOKED : OCSP_INVALID;
out:
    if (leaf)
        gnutls_x509_crt_deinit(leaf);
    if (resp)
        gnutls_ocsp_resp_deinit(resp);
    return st;
}

/* Clients: the stapled response's verdict; with TLSFLOW_OCSP_REQUIRE only a
 * good one lets the handshake finish.  0 or a GnuTLS error. */
static int check_ocsp(tf_session *hs)
{
    /* A resumed session sees no certificate: the handshake it resumes
     * was checked. */
    if (hs->cfg->role != TLSFLOW_CLIENT || hs->cfg->ocsp == TLSFLOW_OCSP_OFF || gnutls_session_is_resumed(hs->s))
        return 0;
    hs->ocsp_status = read_ocsp(hs);
    if (hs->ocsp_status == OCSP_REVOKED || (hs->cfg->ocsp == TLSFLOW_OCSP_REQUIRE && hs->ocsp_status != OCSP_GOOD)) {
        if (hs->ocsp_status == OCSP_REVOKED && hs->cfg->ocsp != TLSFLOW_OCSP_REQUIRE &&
            hs->cfg->verify != TLSFLOW_VERIFY_REQUIRED)
            return 0;   /* OPTIONAL/NONE report it, they do not fail */
        hs->optional_status = GNUTLS_CERT_INVALID |
                              (hs->ocsp_status == OCSP_NONE      ? GNUTLS_CERT_MISSING_OCSP_STATUS
                               : hs->ocsp_status == OCSP_REVOKED ? GNUTLS_CERT_REVOKED
                                                                 : GNUTLS_CERT_INVALID_OCSP_STATUS);
        gnutls_alert_send(hs->s, GNUTLS_AL_FATAL, hs->ocsp_status == OCSP_REVOKED
                                                      ? GNUTLS_A_CERTIFICATE_REVOKED
                                                      : ALERT_BAD_STATUS_RESPONSE);
        return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    }
    return 0;
}

int tf_hs_handshake(tf_session *hs)
{
    int ret = handshake_step(hs);

    if (ret == 0 && hs->cfg->role == TLSFLOW_CLIENT && hs->cfg->verify == TLSFLOW_VERIFY_OPTIONAL) {
        gnutls_typed_vdata_st name = { GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)hs->server_name, 0 };
        unsigned status = GNUTLS_CERT_INVALID;
        if (gnutls_certificate_verify_peers(hs->s, hs->server_name ? &name : NULL,
                                            hs->server_name ? 1 : 0, &status) < 0)
            status = GNUTLS_CERT_INVALID;
        hs->optional_status = status;   /* reported in tlsflow_info, never fatal */
    }
    if (ret == 0 && hs->cfg->role == TLSFLOW_SERVER && hs->cfg->verify == TLSFLOW_VERIFY_OPTIONAL) {
        unsigned n = 0, status = 0;
        if (gnutls_certificate_get_peers(hs->s, &n) && n &&
            (gnutls_certificate_verify_peers2(hs->s, &status) < 0 || status)) {
            hs->optional_status = status ? status : GNUTLS_CERT_INVALID;
            ret = GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
            gnutls_alert_send(hs->s, GNUTLS_AL_FATAL, GNUTLS_A_BAD_CERTIFICATE);
            return ret;
        }
    }
    /* A server that asked: what tlsflow_info says of the client's
     * certificate.  Sent ones were verified above (OPTIONAL) or by GnuTLS
     * (REQUIRED); none sent (OPTIONAL) is not trusted. */
    if (ret == 0 && hs->cfg->role == TLSFLOW_SERVER && hs->cfg->verify != TLSFLOW_VERIFY_NONE) {
        unsigned n = 0;
        hs->optional_status = gnutls_certificate_get_peers(hs->s, &n) && n ? 0 : GNUTLS_CERT_INVALID;
        hs->peer_cert_checked = true;
    }
    if (ret == 0 && (ret = check_ocsp(hs)) < 0)
        return ret;
    if (ret == 0) {
        hs->handshake_done = true;
        remember_names(hs);
        tf_hs_note_ticket(hs);
    } else if (ret != GNUTLS_E_AGAIN) {
        /* Tell the peer why, where an alert fits; ring/ flushes `out`. */
        gnutls_alert_send_appropriate(hs->s, ret);
    }
    return ret;
}

/* What tf_hs_info reports by name is copied once, when the handshake is
 * done: the agreed ALPN and, on a server, the client's SNI. */
static void remember_names(tf_session *hs)
{
    gnutls_datum_t proto;
    char name[256];
    size_t len = sizeof(name);
    unsigned type;

    if (gnutls_alpn_get_selected_protocol(hs->s, &proto) == 0 && proto.size > 0 &&
        proto.size < sizeof(hs->alpn)) {
        memcpy(hs->alpn, proto.data, proto.size);
        hs->alpn[proto.size] = 0;
    }
    if (hs->cfg->role == TLSFLOW_SERVER && !hs->server_name &&
        gnutls_server_name_get(hs->s, name, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS)
        hs->server_name = strdup(name);
}

void tf_hs_info(const tf_session *hs, tlsflow_info *out)
{
    memset(out, 0, sizeof(*out));
    if (!hs->s || !hs->handshake_done)
        return;
    switch (gnutls_protocol_get_version(hs->s)) {
    case GNUTLS_TLS1_2: out->tls_version = 0x0303; break;
    case GNUTLS_TLS1_3: out->tls_version = 0x0304; break;
    default: out->tls_version = 0; break;
    }
    out->cipher = gnutls_cipher_get_name(gnutls_cipher_get(hs->s));
    out->alpn = hs->alpn[0] ? hs->alpn : NULL;
    out->server_name = hs->server_name;
    out->resumed = gnutls_session_is_resumed(hs->s) != 0;
    if (hs->cfg->role == TLSFLOW_CLIENT ? hs->cfg->verify == TLSFLOW_VERIFY_OPTIONAL
                                        : hs->peer_cert_checked)
        out->peer_verify_status = hs->optional_status;
    out->ocsp_status = hs->ocsp_status;
}

bool tf_hs_gnutls_owns_ktls(const tf_session *hs)
{
    /* GnuTLS's own kTLS (its config file's "ktls = true") would fight ours
     * for the socket; with our transport callbacks it stays off, and we check. */
    return gnutls_transport_is_ktls_enabled(hs->s) != 0;
}

int tf_hs_peer_certificate(const tf_session *hs, size_t index, const void **der, size_t *len)
{
    const gnutls_datum_t *list;
    unsigned n = 0;

    if (!hs->s || !hs->handshake_done)
        return -EINVAL;
    list = gnutls_certificate_get_peers(hs->s, &n);
    if (!list || index >= n)
        return -ENOENT;
    *der = list[index].data;
    *len = list[index].size;
    return 0;
}

tlsflow_error tf_hs_error(const tf_session *hs, int ret)
{
    tlsflow_error e = { TLSFLOW_E_TLS, ret };

    switch (ret) {
    case GNUTLS_E_FATAL_ALERT_RECEIVED:
        e.code = TLSFLOW_E_ALERT;
        e.detail = (int)gnutls_alert_get(hs->s);
        break;
    case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
    case GNUTLS_E_CERTIFICATE_ERROR:
        e.code = TLSFLOW_E_CERTIFICATE;
        e.detail = hs->optional_status ? (int)hs->optional_status
                                       : (int)gnutls_session_get_verify_cert_status(hs->s);
        if (e.detail == 0 || e.detail == -1)   /* no status: a missing or unusable certificate */
            e.detail = GNUTLS_CERT_INVALID;
        break;
    case GNUTLS_E_NO_CERTIFICATE_FOUND:
    case GNUTLS_E_CERTIFICATE_REQUIRED:
            e.code = TLSFLOW_E_CERTIFICATE;
        e.detail = GNUTLS_CERT_INVALID;
        break;
    case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
    case GNUTLS_E_PULL_ERROR:
        /* A record cut short by the end of the transport is truncation. */
        if (hs->in_eof && *hs->in_eof) {
            e.code = TLSFLOW_E_TRUNCATED;
            e.detail = 0;
            break;
        }
        if (ret == GNUTLS_E_PULL_ERROR)
            break;
        /* fall through */
    case GNUTLS_E_DECRYPTION_FAILED:
    case GNUTLS_E_RECORD_OVERFLOW:
    case GNUTLS_E_UNEXPECTED_PACKET:
    case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
        e.code = TLSFLOW_E_BAD_RECORD;
        break;
    case GNUTLS_E_PREMATURE_TERMINATION:
        e.code = TLSFLOW_E_TRUNCATED;
        e.detail = 0;
        break;
    default:
        break;
    }
    return e;
}
