/* Certificates of a config: certificate/key pairs (several, chosen per
 * handshake by SNI and signature algorithms), the OCSP responses servers
 * staple and clients check, and the session ticket key from a file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/ocsp.h>

#include "handshake/handshake.h"

/* A certificate or key file: missing or unreadable -ENOENT, the key not the
 * certificate's -EKEYREJECTED, not PEM or not parsable -EBADMSG. */
static int cert_file_errno(int ret)
{
    switch (ret) {
    case GNUTLS_E_MEMORY_ERROR: return -ENOMEM;
    case GNUTLS_E_FILE_ERROR: return -ENOENT;
    case GNUTLS_E_CERTIFICATE_KEY_MISMATCH: return -EKEYREJECTED;
    default: return -EBADMSG;
    }
}

/* Each pair is added beside those before it: GnuTLS picks, per handshake,
 * the pair whose names match the client's SNI and whose key the client's
 * signature algorithms allow (an RSA and an ECDSA certificate for one name);
 * with no SNI, or a name no pair has, the first pair that suits the client. */
static int add_pair(tlsflow_config *cfg, const char *cert_pem, const char *key_pem)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (!cert_pem || !key_pem || !*cert_pem || !*key_pem) {
        ret = -EINVAL;
        goto out;
    }
    ret = gnutls_certificate_set_x509_key_file(cfg->cred, cert_pem, key_pem, GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        ret = cert_file_errno(ret);
        goto out;
    }
    cfg->has_cert = true;
    cfg->ncerts++;
    ret = 0;
out:
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_cert_file(tlsflow_config *cfg, const char *cert_pem,
                                                const char *key_pem)
{
    return add_pair(cfg, cert_pem, key_pem);
}

TLSFLOW_PUBLIC int tlsflow_config_add_cert_file(tlsflow_config *cfg, const char *cert_pem,
                                                const char *key_pem)
{
    return add_pair(cfg, cert_pem, key_pem);
}

/* ---- OCSP ---- */

/* Servers: the DER OCSP response stapled for the pair added last.  It is
 * checked now: one for another certificate (-EKEYREJECTED) or past its
 * nextUpdate (-ESTALE) or saying revoked (-EKEYREVOKED: GnuTLS 3.7 will not
 * staple that) is refused, so the caller can say so; GnuTLS also stops
 * stapling a response once it goes stale later. */
TLSFLOW_PUBLIC int tlsflow_config_set_ocsp_file(tlsflow_config *cfg, const char *der_file)
{
    gnutls_datum_t data = { NULL, 0 };
    gnutls_ocsp_resp_t resp = NULL;
    time_t next = -1, this_upd, revoked_at;   /* GnuTLS 3.7.9 wants every pointer for a revoked one */
    unsigned status, reason;
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (!der_file || !*der_file || cfg->role != TLSFLOW_SERVER || !cfg->ncerts) {
        ret = -EINVAL;
        goto out;
    }
    ret = gnutls_load_file(der_file, &data);
    if (ret < 0) {
        ret = ret == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -ENOENT;
        goto out;
    }
    if (gnutls_ocsp_resp_init(&resp) < 0) {
        ret = -ENOMEM;
        goto out;
    }
    if (gnutls_ocsp_resp_import(resp, &data) < 0 ||
        gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL, &status, &this_upd, &next, &revoked_at,
                                    &reason) < 0) {
        ret = -EBADMSG;
        goto out;
    }
    if (next != -1 && next < time(NULL)) {
        ret = -ESTALE;
        goto out;
    }
    if (status == GNUTLS_OCSP_CERT_REVOKED) {
        ret = -EKEYREVOKED;     /* GnuTLS 3.7 staples no revoked response */
        goto out;
    }
    ret = gnutls_certificate_set_ocsp_status_request_file2(cfg->cred, der_file, (unsigned)(cfg->ncerts - 1),
                                                           GNUTLS_X509_FMT_DER);
    if (ret < 0)
        ret = ret == GNUTLS_E_OCSP_MISMATCH_WITH_CERTS ? -EKEYREJECTED
              : ret == GNUTLS_E_MEMORY_ERROR           ? -ENOMEM
              : ret == GNUTLS_E_EXPIRED                ? -ESTALE
                                                       : -EBADMSG;
    else
        ret = 0;
out:
    if (resp)
        gnutls_ocsp_resp_deinit(resp);
    gnutls_free(data.data);
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_ocsp(tlsflow_config *cfg, tlsflow_ocsp_mode mode)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (cfg->role == TLSFLOW_CLIENT &&
        (mode == TLSFLOW_OCSP_OFF || mode == TLSFLOW_OCSP_CHECK || mode == TLSFLOW_OCSP_REQUIRE))
        cfg->ocsp = mode;
    else
        ret = -EINVAL;
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}


/* ---- Session ticket keys ---- */

/* GnuTLS 3.7 takes a 64-byte master key and derives from it the key of each
 * time window (a ticket's lifetime, 6 hours by default): tickets rotate by
 * themselves, one from an older window gets a full handshake, and processes
 * that load the same file resume each other's tickets. */
#define TICKET_KEY_SIZE 64

static int read_key_file(const char *path, uint8_t key[TICKET_KEY_SIZE])
{
    uint8_t extra;
    size_t got = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), ret = 0;

    if (fd < 0)
        return -errno;
    while (got < TICKET_KEY_SIZE) {
        n = read(fd, key + got, TICKET_KEY_SIZE - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -errno : -EBADMSG;   /* shorter than a key */
            goto out;
        }
        got += (size_t)n;
    }
    do
        n = read(fd, &extra, 1);
    while (n < 0 && errno == EINTR);
    if (n != 0)
        ret = n < 0 ? -errno : -EBADMSG;       /* longer than a key */
out:
    close(fd);
    if (ret)
        gnutls_memset(key, 0, TICKET_KEY_SIZE);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_ticket_key_file(tlsflow_config *cfg, const char *path)
{
    uint8_t key[TICKET_KEY_SIZE];
    gnutls_datum_t d = { NULL, 0 };
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (!path || !*path || cfg->role != TLSFLOW_SERVER) {
        ret = -EINVAL;
        goto out;
    }
    ret = read_key_file(path, key);
    if (ret)
        goto out;
    d.data = gnutls_malloc(TICKET_KEY_SIZE);
    if (!d.data) {
        ret = -ENOMEM;
        goto out;
    }
    memcpy(d.data, key, TICKET_KEY_SIZE);
    d.size = TICKET_KEY_SIZE;
    tf_hs_datum_wipe(&cfg->live->ticket_key);   /* a key loaded before */
    cfg->live->ticket_key = d;
out:
    gnutls_memset(key, 0, sizeof(key));
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}
