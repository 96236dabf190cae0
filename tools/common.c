/* Shared helpers of the tools (see common.h). */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

static int set_alpn(tlsflow_config *cfg, const char *list)
{
    const char *protos[16];
    size_t n = 0;
    char *copy = strdup(list);
    int ret;

    if (!copy)
        return -ENOMEM;
    for (char *save = NULL, *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n == sizeof(protos) / sizeof(protos[0])) {
            free(copy);
            return -E2BIG;
        }
        protos[n++] = p;
    }
    ret = n ? tlsflow_config_set_alpn(cfg, protos, n) : -EINVAL;
    free(copy);
    return ret;
}

/* What tlsflow_config_set_cert_file's errno means for the files. */
static int cert_failed(tlsflow_config *cfg, const char *cert, const char *key, int ret)
{
    const char *why;

    switch (ret) {
    case -ENOENT: why = "a file is missing or unreadable"; break;
    case -EBADMSG: why = "not a PEM certificate chain and private key"; break;
    case -EKEYREJECTED: why = "the key does not belong to the certificate"; break;
    default: why = strerror(-ret); break;
    }
    fprintf(stderr, "certificate %s, key %s: %s\n", cert, key, why);
    tlsflow_config_free(cfg);
    return -1;
}

/* A response that does not load is not stapled: said, and not fatal. */
static void set_ocsp(tlsflow_config *cfg, const char *file)
{
    const char *why;
    int ret;

    if (!file)
        return;
    ret = tlsflow_config_set_ocsp_file(cfg, file);
    switch (ret) {
    case 0: return;
    case -ENOENT: why = "missing or unreadable"; break;
    case -EBADMSG: why = "not a DER OCSP response"; break;
    case -EKEYREJECTED: why = "a response for another certificate"; break;
    case -ESTALE: why = "stale (past its nextUpdate)"; break;
    case -EKEYREVOKED: why = "it says the certificate is revoked"; break;
    default: why = strerror(-ret); break;
    }
    fprintf(stderr, "OCSP response %s: %s; not stapled\n", file, why);
}

int tf_tool_config(tlsflow_config **out, tlsflow_role role, const struct tf_tls_opts *o)
{
    tlsflow_config *cfg = NULL;
    const char *what = "tlsflow_config_new";
    int ret = tlsflow_config_new(&cfg, role);

    if (ret == 0 && o->cert) {
        what = "certificate/key";
        ret = tlsflow_config_set_cert_file(cfg, o->cert, o->key ? o->key : o->cert);
        if (ret < 0)
            return cert_failed(cfg, o->cert, o->key ? o->key : o->cert, ret);
        set_ocsp(cfg, o->ocsp);
    }
    for (size_t i = 0; ret == 0 && i < o->nmore; i++) {
        const char *key = o->more_keys[i] ? o->more_keys[i] : o->more_certs[i];
        ret = tlsflow_config_add_cert_file(cfg, o->more_certs[i], key);
        if (ret < 0)
            return cert_failed(cfg, o->more_certs[i], key, ret);
        set_ocsp(cfg, o->more_ocsp[i]);
    }
    if (ret == 0 && o->ca) {
        what = "CA file";
        ret = tlsflow_config_set_ca_file(cfg, o->ca);
    }
    if (ret == 0 && o->insecure) {
        what = "verify";
        ret = tlsflow_config_set_verify(cfg, TLSFLOW_VERIFY_NONE);
    }
    if (ret == 0 && o->priority) {
        what = "priority string";
        ret = tlsflow_config_set_priority(cfg, o->priority);
    }
    if (ret == 0 && o->alpn) {
        what = "ALPN list";
        ret = set_alpn(cfg, o->alpn);
    }
    if (ret == 0) {
        what = "kTLS mode";
        ret = tlsflow_config_set_ktls(cfg, o->ktls);
    }
    if (ret == 0 && o->ktls_flags) {
        what = "kTLS flags";
        ret = tlsflow_config_set_ktls_flags(cfg, o->ktls_flags);
    }
    if (ret == 0 && o->no_resumption) {
        what = "resumption";
        ret = tlsflow_config_set_resumption(cfg, 0);
    }
    if (ret == 0 && o->ticket_key) {
        ret = tlsflow_config_set_ticket_key_file(cfg, o->ticket_key);
        if (ret < 0) {
            fprintf(stderr, "ticket key %s: %s\n", o->ticket_key,
                    ret == -EBADMSG ? "not 64 bytes (make one with: openssl rand 64 > FILE)"
                                    : strerror(-ret));
            tlsflow_config_free(cfg);
            return -1;
        }
    }
    if (ret < 0) {
        fprintf(stderr, "%s: %s\n", what, strerror(-ret));
        if (cfg)
            tlsflow_config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

int tf_parse_ktls(const char *s, tlsflow_ktls_mode *out)
{
    if (strcmp(s, "auto") == 0)
        *out = TLSFLOW_KTLS_AUTO;
    else if (strcmp(s, "require") == 0)
        *out = TLSFLOW_KTLS_REQUIRE;
    else if (strcmp(s, "off") == 0)
        *out = TLSFLOW_KTLS_OFF;
    else
        return -1;
    return 0;
}

int tf_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    if (!s || *s < '0' || *s > '9')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int tf_split_hostport(const char *s, const char *def_port, char *host, size_t host_size,
                      char *port, size_t port_size)
{
    const char *h = s, *p = NULL;
    size_t hn;

    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close[1] && close[1] != ':'))
            return -1;
        h = s + 1;
        hn = (size_t)(close - h);
        p = close[1] ? close + 2 : NULL;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon)
            colon = NULL;   /* a bare IPv6 address */
        hn = colon ? (size_t)(colon - s) : strlen(s);
        p = colon ? colon + 1 : NULL;
    }
    if (!p || !*p)
        p = def_port;
    if (hn == 0 || hn >= host_size || !p || strlen(p) >= port_size)
        return -1;
    memcpy(host, h, hn);
    host[hn] = '\0';
    strcpy(port, p);
    return 0;
}

const char *tf_version_name(unsigned v)
{
    switch (v) {
    case 0x0304: return "TLS1.3";
    case 0x0303: return "TLS1.2";
    case 0x0302: return "TLS1.1";
    case 0x0301: return "TLS1.0";
    default:     return "unknown";
    }
}

uint64_t tf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double tf_now_s(void)
{
    return (double)tf_now_ns() / 1e9;
}

double tf_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void tf_print_error(const char *prog, const char *what, tlsflow_error err)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, tlsflow_error_message(err));
}

/* ---- self-signed certificate ---- */

static int add_san(gnutls_x509_crt_t crt, const char *name)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, name, ip) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND);
    if (inet_pton(AF_INET6, name, ip) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND);
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
}

static int write_file(const char *path, const gnutls_datum_t *d)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, d->data, d->size);
    int ret = (n == (ssize_t)d->size) ? 0 : -1;
    if (close(fd) < 0)
        ret = -1;
    return ret;
}

int tf_self_signed(const char *host, char *dir, char *cert_path, char *key_path)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t pem_key = {NULL, 0}, pem_crt = {NULL, 0};
    unsigned char serial[16];
    time_t now = time(NULL);
    const char *tmp = getenv("TMPDIR");
    int ret = -1, g;

    snprintf(dir, PATH_MAX, "%s/tlsflow-serve.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "self-signed: mkdtemp %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(cert_path, PATH_MAX, "%s/cert.pem", dir);
    snprintf(key_path, PATH_MAX, "%s/key.pem", dir);

    if ((g = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0)
        goto out;
    serial[0] &= 0x7f;   /* a positive INTEGER */
    if ((g = gnutls_x509_privkey_init(&key)) < 0 ||
        (g = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                          GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
        (g = gnutls_x509_crt_init(&crt)) < 0 ||
        (g = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
        (g = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
        (g = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
        (g = gnutls_x509_crt_set_expiration_time(crt, now + 30 * 86400)) < 0 ||
        (g = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                           host, (unsigned)strlen(host))) < 0 ||
        (g = gnutls_x509_crt_set_key(crt, key)) < 0 ||
        (g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
        (g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
        (g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
        (g = add_san(crt, host)) < 0)
        goto out;
    if ((strcmp(host, "localhost") != 0 && (g = add_san(crt, "localhost")) < 0) ||
        (strcmp(host, "127.0.0.1") != 0 && (g = add_san(crt, "127.0.0.1")) < 0) ||
        (strcmp(host, "::1") != 0 && (g = add_san(crt, "::1")) < 0))
        goto out;
    if ((g = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
        (g = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem_key)) < 0 ||
        (g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem_crt)) < 0)
        goto out;
    g = 0;
    if (write_file(key_path, &pem_key) < 0 || write_file(cert_path, &pem_crt) < 0) {
        fprintf(stderr, "self-signed: writing %s: %s\n", dir, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    if (g < 0)
        fprintf(stderr, "self-signed: %s\n", gnutls_strerror(g));
    if (ret < 0)
        tf_self_signed_cleanup(dir, cert_path, key_path);
    if (pem_key.data) {
        gnutls_memset(pem_key.data, 0, pem_key.size);
        gnutls_free(pem_key.data);
    }
    gnutls_free(pem_crt.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return ret;
}

void tf_self_signed_cleanup(const char *dir, const char *cert_path, const char *key_path)
{
    unlink(key_path);
    unlink(cert_path);
    rmdir(dir);
}

static void print_time(FILE *f, time_t t)
{
    struct tm tm;
    char buf[32];
    if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
        !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm))
        fputs("?", f);
    else
        fputs(buf, f);
}

size_t tf_print_peer_chain(FILE *f, const tlsflow *flow)
{
    size_t i;
    for (i = 0;; i++) {
        const void *der;
        size_t len;
        if (tlsflow_get_peer_certificate(flow, i, &der, &len) < 0)
            break;
        gnutls_datum_t d = {(unsigned char *)(uintptr_t)der, (unsigned)len}, dn = {NULL, 0};
        gnutls_x509_crt_t crt;
        unsigned char md[32];
        fprintf(f, "  certificate  [%zu] %zu bytes DER\n", i, len);
        if (gnutls_x509_crt_init(&crt) < 0)
            continue;
        if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
            fprintf(f, "    (not an X.509 certificate GnuTLS can parse)\n");
            gnutls_x509_crt_deinit(crt);
            continue;
        }
        if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
            fprintf(f, "    subject    %s\n", (const char *)dn.data);
            gnutls_free(dn.data);
        }
        if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) == 0) {
            fprintf(f, "    issuer     %s\n", (const char *)dn.data);
            gnutls_free(dn.data);
        }
        fputs("    validity   ", f);
        print_time(f, gnutls_x509_crt_get_activation_time(crt));
        fputs(" to ", f);
        print_time(f, gnutls_x509_crt_get_expiration_time(crt));
        fputc('\n', f);
        unsigned bits = 0;
        int alg = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
        if (alg >= 0)
            fprintf(f, "    key        %s %u bits\n",
                    gnutls_pk_algorithm_get_name((gnutls_pk_algorithm_t)alg), bits);
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, md) == 0) {
            fputs("    sha256     ", f);
            for (size_t k = 0; k < sizeof(md); k++)
                fprintf(f, "%02X%s", md[k], k + 1 < sizeof(md) ? ":" : "\n");
        }
        gnutls_x509_crt_deinit(crt);
    }
    if (i == 0)
        fprintf(f, "  certificate  (none sent)\n");
    return i;
}
