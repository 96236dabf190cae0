/* Configurations: credentials and policy, frozen at first use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handshake/handshake.h"

/* AES-GCM first: with AES-NI it is ~14x faster than GnuTLS's ChaCha20 here, and
 * the kernel takes all of these ciphers. */
static const char default_priority[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
    "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM";

static void init_gnutls_once(void)
{
    gnutls_global_init();
}

TLSFLOW_PUBLIC int tlsflow_config_new(tlsflow_config **out, tlsflow_role role)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    tlsflow_config *cfg;

    if (!out || (role != TLSFLOW_CLIENT && role != TLSFLOW_SERVER))
        return -EINVAL;
    pthread_once(&once, init_gnutls_once);
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return -ENOMEM;
    cfg->role = role;
    cfg->verify = role == TLSFLOW_CLIENT ? TLSFLOW_VERIFY_REQUIRED : TLSFLOW_VERIFY_NONE;
    cfg->ktls = TLSFLOW_KTLS_AUTO;
    cfg->handshake_timeout_ms = 30000;
    if (gnutls_certificate_allocate_credentials(&cfg->cred) < 0) {
        free(cfg);
        return -ENOMEM;
    }
    pthread_mutex_init(&cfg->lock, NULL);
    *out = cfg;
    return 0;
}

TLSFLOW_PUBLIC void tlsflow_config_free(tlsflow_config *cfg)
{
    if (!cfg)
        return;
    gnutls_certificate_free_credentials(cfg->cred);
    if (cfg->priority)
        gnutls_priority_deinit(cfg->priority);
    free(cfg->priority_str);
    for (size_t i = 0; i < cfg->nalpn; i++)
        free(cfg->alpn[i].data);
    if (cfg->ticket_key.data) {
        gnutls_memset(cfg->ticket_key.data, 0, cfg->ticket_key.size);
        gnutls_free(cfg->ticket_key.data);
    }
    for (size_t i = 0; i < TF_CACHE_SLOTS; i++) {
        free(cfg->cache[i].key);
        gnutls_free(cfg->cache[i].data.data);
    }
    pthread_mutex_destroy(&cfg->lock);
    free(cfg);
}

/* Setters refuse once a flow used the config: it may be shared by threads. */
static int check_mutable(tlsflow_config *cfg)
{
    int ret;

    if (!cfg)
        return -EINVAL;
    pthread_mutex_lock(&cfg->lock);
    ret = cfg->frozen ? -EBUSY : 0;
    pthread_mutex_unlock(&cfg->lock);
    return ret;
}

static int gnutls_to_errno(int ret)
{
    switch (ret) {
    case GNUTLS_E_MEMORY_ERROR: return -ENOMEM;
    case GNUTLS_E_FILE_ERROR: return -ENOENT;
    default: return -EINVAL;
    }
}

TLSFLOW_PUBLIC int tlsflow_config_set_cert_file(tlsflow_config *cfg, const char *cert_pem,
                                                const char *key_pem)
{
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    if (!cert_pem || !key_pem)
        return -EINVAL;
    ret = gnutls_certificate_set_x509_key_file(cfg->cred, cert_pem, key_pem, GNUTLS_X509_FMT_PEM);
    if (ret < 0)
        return gnutls_to_errno(ret);
    cfg->has_cert = true;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_ca_file(tlsflow_config *cfg, const char *ca_pem)
{
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    if (!ca_pem)
        return -EINVAL;
    ret = gnutls_certificate_set_x509_trust_file(cfg->cred, ca_pem, GNUTLS_X509_FMT_PEM);
    if (ret < 0)
        return gnutls_to_errno(ret);
    if (ret == 0)
        return -ENOENT;   /* a file without a single certificate */
    cfg->has_ca = true;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_verify(tlsflow_config *cfg, tlsflow_verify mode)
{
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    if (mode != TLSFLOW_VERIFY_REQUIRED && mode != TLSFLOW_VERIFY_OPTIONAL &&
        mode != TLSFLOW_VERIFY_NONE)
        return -EINVAL;
    cfg->verify = mode;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_priority(tlsflow_config *cfg, const char *prio)
{
    gnutls_priority_t p;
    char *copy;
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    if (!prio)
        return -EINVAL;
    /* Check it now, so that a typo is an error at configuration time. */
    if (gnutls_priority_init2(&p, prio, NULL, 0) < 0)
        return -EINVAL;
    copy = strdup(prio);
    if (!copy) {
        gnutls_priority_deinit(p);
        return -ENOMEM;
    }
    if (cfg->priority)
        gnutls_priority_deinit(cfg->priority);
    free(cfg->priority_str);
    cfg->priority = p;
    cfg->priority_str = copy;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_alpn(tlsflow_config *cfg, const char *const *protocols,
                                           size_t count)
{
    gnutls_datum_t list[TF_ALPN_MAX] = { { 0 } };
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    if ((count && !protocols) || count > TF_ALPN_MAX)
        return -EINVAL;
    for (size_t i = 0; i < count; i++) {
        size_t n = protocols[i] ? strlen(protocols[i]) : 0;
        if (n == 0 || n > 255) {
            ret = -EINVAL;
            goto out;
        }
        list[i].data = (unsigned char *)strdup(protocols[i]);
        if (!list[i].data) {
            ret = -ENOMEM;
            goto out;
        }
        list[i].size = (unsigned)n;
    }
    for (size_t i = 0; i < cfg->nalpn; i++)
        free(cfg->alpn[i].data);
    memcpy(cfg->alpn, list, sizeof(list));
    cfg->nalpn = count;
    return 0;
out:
    for (size_t i = 0; i < count; i++)
        free(list[i].data);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_ktls(tlsflow_config *cfg, tlsflow_ktls_mode mode)
{
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    if (mode != TLSFLOW_KTLS_AUTO && mode != TLSFLOW_KTLS_REQUIRE && mode != TLSFLOW_KTLS_OFF)
        return -EINVAL;
    cfg->ktls = mode;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_handshake_timeout(tlsflow_config *cfg, unsigned ms)
{
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    cfg->handshake_timeout_ms = ms;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_resumption(tlsflow_config *cfg, int enabled)
{
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    cfg->no_resumption = !enabled;
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_ktls_flags(tlsflow_config *cfg, unsigned flags)
{
    int ret = check_mutable(cfg);

    if (ret)
        return ret;
    if (flags & ~(TLSFLOW_KTLS_ZEROCOPY_RO | TLSFLOW_KTLS_RX_NO_PAD))
        return -EINVAL;
    cfg->ktls_flags = flags;
    return 0;
}

int tf_hs_config_freeze(tlsflow_config *cfg)
{
    int ret = 0;

    pthread_mutex_lock(&cfg->lock);
    if (cfg->frozen)
        goto out;
    if (cfg->role == TLSFLOW_SERVER && !cfg->has_cert) {
        ret = -EINVAL;       /* a server without a certificate cannot handshake */
        goto out;
    }
    if (cfg->role == TLSFLOW_CLIENT && !cfg->has_ca && cfg->verify != TLSFLOW_VERIFY_NONE) {
        if (gnutls_certificate_set_x509_system_trust(cfg->cred) < 0) {
            ret = -ENOENT;
            goto out;
        }
    }
    if (!cfg->priority) {
        ret = gnutls_priority_init2(&cfg->priority, default_priority, NULL, 0);
        if (ret < 0) {
            ret = -EINVAL;
            goto out;
        }
    }
    if (cfg->role == TLSFLOW_SERVER && !cfg->no_resumption) {
        ret = gnutls_session_ticket_key_generate(&cfg->ticket_key);
        if (ret < 0) {
            ret = -ENOMEM;
            goto out;
        }
    }
    cfg->frozen = true;
    ret = 0;
out:
    pthread_mutex_unlock(&cfg->lock);
    return ret;
}
