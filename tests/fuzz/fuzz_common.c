/* See fuzz_common.h.  Everything here must be deterministic per input except
 * GnuTLS's own randomness, and must never leak across inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <gnutls/x509.h>

#include "fuzz_common.h"

static gnutls_x509_crt_t crt;
static gnutls_x509_privkey_t key;
static tlsflow_config *srv_cfg, *cli13_cfg, *cli12_cfg;

static void die(const char *what, int ret)
{
    fprintf(stderr, "fuzz set-up: %s: %s\n", what, gnutls_strerror(ret));
    abort();
}

/* A P-256 self-signed certificate for FZ_NAME, trusted by the clients. */
static void make_cert(void)
{
    unsigned char serial[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    time_t now = time(NULL);
    int ret;

    if ((ret = gnutls_x509_privkey_init(&key)) < 0 ||
        (ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0)
        die("key", ret);
    if ((ret = gnutls_x509_crt_init(&crt)) < 0)
        die("crt", ret);
    gnutls_x509_crt_set_version(crt, 3);
    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    gnutls_x509_crt_set_activation_time(crt, now - 3600);
    gnutls_x509_crt_set_expiration_time(crt, now + 10L * 365 * 86400);
    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, FZ_NAME, strlen(FZ_NAME));
    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, FZ_NAME, strlen(FZ_NAME),
                                         GNUTLS_FSAN_SET);
    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    gnutls_x509_crt_set_key(crt, key);
    if ((ret = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
        die("sign", ret);
}

void fz_add_cert(tlsflow_config *cfg)
{
    int ret;

    if (cfg->role == TLSFLOW_SERVER) {
        if ((ret = gnutls_certificate_set_x509_key(cfg->cred, &crt, 1, key)) < 0)
            die("server key", ret);
        cfg->has_cert = true;
    } else {
        if ((ret = gnutls_certificate_set_x509_trust(cfg->cred, &crt, 1)) < 0)
            die("trust", ret);
        cfg->has_ca = true;
    }
}

static tlsflow_config *make_config(tlsflow_role role, const char *priority)
{
    tlsflow_config *cfg;

    if (tlsflow_config_new(&cfg, role) < 0)
        die("config", GNUTLS_E_MEMORY_ERROR);
    fz_add_cert(cfg);
    if (priority && tlsflow_config_set_priority(cfg, priority) < 0)
        die("priority", GNUTLS_E_INVALID_REQUEST);
    if (tf_hs_config_freeze(cfg) < 0)
        die("freeze", GNUTLS_E_INVALID_REQUEST);
    return cfg;
}

static void setup(void)
{
    if (srv_cfg)
        return;
    gnutls_global_init();
    make_cert();
    srv_cfg = make_config(TLSFLOW_SERVER, NULL);
    cli13_cfg = make_config(TLSFLOW_CLIENT, NULL);
    cli12_cfg = make_config(TLSFLOW_CLIENT, "NORMAL:-VERS-ALL:+VERS-TLS1.2");
}

tlsflow_config *fz_server_config(void)
{
    setup();
    return srv_cfg;
}

tlsflow_config *fz_client_config(unsigned version)
{
    setup();
    return version == 0x0303 ? cli12_cfg : cli13_cfg;
}

int fz_side_init(fz_side *s, tlsflow_config *cfg)
{
    int ret;

    memset(s, 0, sizeof(*s));
    ret = tf_hs_session_init(&s->hs, cfg, cfg->role == TLSFLOW_CLIENT ? FZ_NAME : NULL, NULL,
                             &s->in, &s->out, &s->eof);
    s->is_init = ret == 0;
    return ret;
}

void fz_side_deinit(fz_side *s)
{
    if (s->is_init)
        tf_hs_session_deinit(&s->hs);
    tf_buf_free(&s->in);
    tf_buf_free(&s->out);
    tf_buf_free(&s->post_out);
    s->is_init = false;
}

bool fz_buf_put(tf_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return true;
    if (tf_buf_reserve(b, n))
        return false;
    memcpy(tf_buf_tail(b), p, n);
    b->len += n;
    return true;
}

void fz_transfer(fz_side *from, fz_side *to)
{
    if (fz_buf_put(&to->in, tf_buf_head(&from->out), from->out.len))
        tf_buf_consume(&from->out, from->out.len);
}

static int count_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                      const gnutls_datum_t *msg)
{
    fz_side *side = gnutls_transport_get_ptr(s);   /* its tf_session comes first */

    (void)when;
    (void)msg;
    if (htype == GNUTLS_HANDSHAKE_KEY_UPDATE && incoming)
        side->key_updates_in++;
    return 0;
}

void fz_count_key_updates(fz_side *s)
{
    gnutls_handshake_set_hook_function(s->hs.s, GNUTLS_HANDSHAKE_KEY_UPDATE, GNUTLS_HOOK_POST,
                                       count_hook);
}

int fz_handshake_pair(fz_side *cli, fz_side *srv)
{
    int rc = GNUTLS_E_AGAIN, rs = GNUTLS_E_AGAIN;

    for (int i = 0; i < 16 && (rc || rs); i++) {
        if (rc)
            rc = tf_hs_handshake(&cli->hs);
        fz_transfer(cli, srv);
        if (rc && rc != GNUTLS_E_AGAIN)
            return rc;
        if (rs)
            rs = tf_hs_handshake(&srv->hs);
        fz_transfer(srv, cli);
        if (rs && rs != GNUTLS_E_AGAIN)
            return rs;
    }
    return rc ? rc : rs;
}
