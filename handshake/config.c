/* Configurations: credentials and policy, frozen at first use, reference
 * counted (flows, connects and listeners keep the config they started with). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "handshake/handshake.h"

/* Servers choose by their own order (%SERVER_PRECEDENCE): clients such as
 * Safari list ChaCha20 first, and GnuTLS's userspace ChaCha20 runs ~14x
 * slower than its AES-GCM on a CPU with AES instructions.  The kernel's
 * ChaCha20 is fast: where the kernel takes both keys, a client that lists
 * ChaCha20 first (likely one without AES instructions) gets it
 * (session.c, the ClientHello hook), as OpenSSL's PRIORITIZE_CHACHA does.
 * Every cipher here is one the kernel takes. */
static const char aes_first[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:"
    "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM";
static const char server_aes_first[] =
    "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:"
    "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM";
static const char server_chacha_first[] =
    "NORMAL:%SERVER_PRECEDENCE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:"
    "+CHACHA20-POLY1305:+AES-128-GCM:+AES-256-GCM:+AES-128-CCM";

bool tf_hs_cpu_has_aes(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("aes");
#elif defined(__aarch64__)
    return (getauxval(AT_HWCAP) & HWCAP_AES) != 0;
#else
    return true;     /* unknown: AES-GCM first, as before */
#endif
}

bool tf_hs_kernel_chacha(const tlsflow_config *cfg)
{
    static const unsigned versions[] = { TLS_1_2_VERSION, TLS_1_3_VERSION };

    if (cfg->ktls == TLSFLOW_KTLS_OFF || cfg->test_ktls_tx_only)
        return false;
    /* The probe ran at tlsflow_loop_new: these are cached answers. */
    for (size_t i = 0; i < 2; i++)
        if (tf_ktls_probe(versions[i], TF_CIPHER_CHACHA20_POLY1305, TF_KTLS_TX) < 0 ||
            tf_ktls_probe(versions[i], TF_CIPHER_CHACHA20_POLY1305, TF_KTLS_RX) < 0)
            return false;
    return true;
}

static void init_gnutls_once(void)
{
    gnutls_global_init();
}

/* A config and its live part come and go together: one allocation, the
 * config at its start. */
struct config_block {
    tlsflow_config        cfg;
    struct tf_config_live live;
};

TLSFLOW_PUBLIC int tlsflow_config_new(tlsflow_config **out, tlsflow_role role)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct config_block *block;
    tlsflow_config *cfg;

    if (!out || (role != TLSFLOW_CLIENT && role != TLSFLOW_SERVER))
        return -EINVAL;
    pthread_once(&once, init_gnutls_once);
    block = calloc(1, sizeof(*block));
    if (!block)
        return -ENOMEM;
    cfg = &block->cfg;
    cfg->live = &block->live;
    cfg->role = role;
    cfg->verify = role == TLSFLOW_CLIENT ? TLSFLOW_VERIFY_REQUIRED : TLSFLOW_VERIFY_NONE;
    cfg->ktls = TLSFLOW_KTLS_AUTO;
    cfg->handshake_timeout_ms = 30000;
    cfg->ocsp = TLSFLOW_OCSP_CHECK;
    cfg->receive_budget = 64 * 1024;
    if (gnutls_certificate_allocate_credentials(&cfg->cred) < 0) {
        free(block);
        return -ENOMEM;
    }
    pthread_mutex_init(&cfg->live->lock, NULL);
    atomic_init(&cfg->live->refs, 1);
    *out = cfg;
    return 0;
}

static void config_destroy(struct config_block *block)
{
    tlsflow_config *cfg = &block->cfg;
    struct tf_config_live *live = &block->live;

    gnutls_certificate_free_credentials(cfg->cred);
    if (cfg->priority)
        gnutls_priority_deinit(cfg->priority);
    free(cfg->priority_str);
    for (size_t i = 0; i < cfg->nalpn; i++)
        free(cfg->alpn[i].data);
    if (live->default_priority)
        gnutls_priority_deinit(live->default_priority);
    if (live->chacha_priority)
        gnutls_priority_deinit(live->chacha_priority);
    if (live->ticket_key.data) {
        gnutls_memset(live->ticket_key.data, 0, live->ticket_key.size);
        gnutls_free(live->ticket_key.data);
    }
    for (size_t i = 0; i < TF_CACHE_SLOTS; i++) {
        free(live->cache[i].key);
        tf_hs_datum_wipe(&live->cache[i].data);
    }
    pthread_mutex_destroy(&live->lock);
    free(block);
}

void tf_hs_config_ref(const tlsflow_config *cfg)
{
    atomic_fetch_add_explicit(&cfg->live->refs, 1, memory_order_relaxed);
}

/* The block is reached through the live part, which is mutable by design:
 * no const is cast away. */
void tf_hs_config_unref(const tlsflow_config *cfg)
{
    struct tf_config_live *live = cfg->live;

    if (atomic_fetch_sub_explicit(&live->refs, 1, memory_order_acq_rel) == 1)
        config_destroy((struct config_block *)(void *)((char *)live - offsetof(struct config_block, live)));
}

/* Drops the caller's reference: flows and listeners still using the config
 * keep it alive, and the last of them frees it. */
TLSFLOW_PUBLIC void tlsflow_config_free(tlsflow_config *cfg)
{
    if (cfg)
        tf_hs_config_unref(cfg);
}

/* Setters check and write in one step under the config's lock, the lock
 * tf_hs_config_freeze takes: a flow in another thread cannot freeze the
 * config between a setter's check and its write, so a setter that returns 0
 * changed the config before any flow used it, and one that returns -EBUSY
 * changed nothing.  0 with the lock held (the caller unlocks), else an error
 * without it. */
int tf_hs_config_lock(tlsflow_config *cfg)
{
    if (!cfg)
        return -EINVAL;
    pthread_mutex_lock(&cfg->live->lock);
    if (!cfg->live->frozen)
        return 0;
    pthread_mutex_unlock(&cfg->live->lock);
    return -EBUSY;
}

static int gnutls_to_errno(int ret)
{
    switch (ret) {
    case GNUTLS_E_MEMORY_ERROR: return -ENOMEM;
    case GNUTLS_E_FILE_ERROR: return -ENOENT;
    default: return -EINVAL;
    }
}

TLSFLOW_PUBLIC int tlsflow_config_set_ca_file(tlsflow_config *cfg, const char *ca_pem)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (!ca_pem) {
        ret = -EINVAL;
        goto out;
    }
    ret = gnutls_certificate_set_x509_trust_file(cfg->cred, ca_pem, GNUTLS_X509_FMT_PEM);
    if (ret <= 0) {
        /* 0: a file without a single certificate */
        ret = ret < 0 ? gnutls_to_errno(ret) : -ENOENT;
        goto out;
    }
    cfg->has_ca = true;
    ret = 0;
out:
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_verify(tlsflow_config *cfg, tlsflow_verify mode)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (mode == TLSFLOW_VERIFY_REQUIRED || mode == TLSFLOW_VERIFY_OPTIONAL ||
        mode == TLSFLOW_VERIFY_NONE)
        cfg->verify = mode;
    else
        ret = -EINVAL;
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_priority(tlsflow_config *cfg, const char *prio)
{
    gnutls_priority_t p = NULL, old;
    char *copy = NULL, *old_str;
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    /* Checked now, so that a typo is an error at configuration time. */
    if (!prio || gnutls_priority_init2(&p, prio, NULL, 0) < 0) {
        ret = -EINVAL;
        goto out;
    }
    copy = strdup(prio);
    if (!copy) {
        ret = -ENOMEM;
        goto out;
    }
    /* The new policy in; p and copy then hold the old one, freed below. */
    old = cfg->priority;
    cfg->priority = p;
    p = old;
    old_str = cfg->priority_str;
    cfg->priority_str = copy;
    copy = old_str;
out:
    pthread_mutex_unlock(&cfg->live->lock);
    if (p)
        gnutls_priority_deinit(p);
    free(copy);
    return ret;
}

/* RFC 7301 allows names of 1..255 bytes, but GnuTLS 3.7.9 refuses names of 32
 * bytes or more when the session is set up (gnutls_alpn_set_protocols:
 * GNUTLS_E_INVALID_REQUEST): refused here, or every handshake would fail. */
#define ALPN_NAME_MAX 31

TLSFLOW_PUBLIC int tlsflow_config_set_alpn(tlsflow_config *cfg, const char *const *protocols,
                                           size_t count)
{
    gnutls_datum_t list[TF_ALPN_MAX] = { { 0 } };
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if ((count && !protocols) || count > TF_ALPN_MAX) {
        ret = -EINVAL;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        size_t n = protocols[i] ? strlen(protocols[i]) : 0;
        if (n == 0 || n > ALPN_NAME_MAX) {
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
    /* The new list in, the old one out: `list` then holds what is freed. */
    for (size_t i = 0; i < TF_ALPN_MAX; i++) {
        gnutls_datum_t old = cfg->alpn[i];
        cfg->alpn[i] = list[i];
        list[i] = old;
    }
    cfg->nalpn = count;
out:
    pthread_mutex_unlock(&cfg->live->lock);
    for (size_t i = 0; i < TF_ALPN_MAX; i++)
        free(list[i].data);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_ktls(tlsflow_config *cfg, tlsflow_ktls_mode mode)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (mode == TLSFLOW_KTLS_AUTO || mode == TLSFLOW_KTLS_REQUIRE || mode == TLSFLOW_KTLS_OFF)
        cfg->ktls = mode;
    else
        ret = -EINVAL;
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_handshake_timeout(tlsflow_config *cfg, unsigned ms)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    cfg->handshake_timeout_ms = ms;
    pthread_mutex_unlock(&cfg->live->lock);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_receive_budget(tlsflow_config *cfg, size_t bytes)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (bytes >= TLSFLOW_RECEIVE_BUDGET_MIN && bytes <= TLSFLOW_RECEIVE_BUDGET_MAX)
        cfg->receive_budget = bytes;
    else
        ret = -EINVAL;
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}

TLSFLOW_PUBLIC int tlsflow_config_set_resumption(tlsflow_config *cfg, int enabled)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    cfg->no_resumption = !enabled;
    pthread_mutex_unlock(&cfg->live->lock);
    return 0;
}

TLSFLOW_PUBLIC int tlsflow_config_set_ktls_flags(tlsflow_config *cfg, unsigned flags)
{
    int ret = tf_hs_config_lock(cfg);

    if (ret)
        return ret;
    if (flags & ~(TLSFLOW_KTLS_ZEROCOPY_RO | TLSFLOW_KTLS_RX_NO_PAD))
        ret = -EINVAL;
    else
        cfg->ktls_flags = flags;
    pthread_mutex_unlock(&cfg->live->lock);
    return ret;
}

gnutls_priority_t tf_hs_config_priority(const tlsflow_config *cfg)
{
    return cfg->priority ? cfg->priority : cfg->live->default_priority;
}

int tf_hs_config_freeze(const tlsflow_config *cfg)
{
    struct tf_config_live *live = cfg->live;
    int ret = 0;

    pthread_mutex_lock(&live->lock);
    if (live->frozen)
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
    if (!cfg->priority && !live->default_priority) {
        bool server = cfg->role == TLSFLOW_SERVER;
        /* Without AES instructions ChaCha20 is the faster one everywhere. */
        ret = gnutls_priority_init2(&live->default_priority,
                                    !server ? aes_first
                                            : tf_hs_cpu_has_aes() ? server_aes_first
                                                                  : server_chacha_first,
                                    NULL, 0);
        if (ret == 0 && server)
            ret = gnutls_priority_init2(&live->chacha_priority, server_chacha_first, NULL, 0);
        if (ret < 0) {
            if (live->default_priority)
                gnutls_priority_deinit(live->default_priority);
            live->default_priority = live->chacha_priority = NULL;
            ret = -EINVAL;
            goto out;
        }
    }
    if (cfg->role == TLSFLOW_SERVER && !cfg->no_resumption && !live->ticket_key.data) {
        ret = gnutls_session_ticket_key_generate(&live->ticket_key);
        if (ret < 0) {
            ret = -ENOMEM;
            goto out;
        }
    }
    live->frozen = true;
    ret = 0;
out:
    pthread_mutex_unlock(&live->lock);
    return ret;
}
