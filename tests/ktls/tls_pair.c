/* See tls_pair.h. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <gnutls/x509.h>

#include "tls_pair.h"

static gnutls_certificate_credentials_t srv_cred, cli_cred;
static gnutls_datum_t ticket_key;

int tp_creds_init(void)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    static const unsigned char serial[1] = { 1 };
    time_t now = time(NULL);
    int ret;

    ret = gnutls_x509_privkey_init(&key);
    if (ret == 0)
        ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
    if (ret == 0)
        ret = gnutls_x509_crt_init(&crt);
    if (ret == 0)
        ret = gnutls_x509_crt_set_version(crt, 3);
    if (ret == 0)
        ret = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (ret == 0)
        ret = gnutls_x509_crt_set_activation_time(crt, now - 3600);
    if (ret == 0)
        ret = gnutls_x509_crt_set_expiration_time(crt, now + 86400);
    if (ret == 0)
        ret = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9);
    if (ret == 0)
        ret = gnutls_x509_crt_set_key(crt, key);
    if (ret == 0)
        ret = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
    if (ret == 0)
        ret = gnutls_certificate_allocate_credentials(&srv_cred);
    if (ret == 0)
        ret = gnutls_certificate_set_x509_key(srv_cred, &crt, 1, key);
    if (ret == 0)
        ret = gnutls_certificate_allocate_credentials(&cli_cred);   /* verifies nothing */
    if (ret == 0)
        ret = gnutls_session_ticket_key_generate(&ticket_key);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (ret < 0)
        fprintf(stderr, "test credentials: %s\n", gnutls_strerror(ret));
    return ret;
}

void tp_creds_free(void)
{
    gnutls_certificate_free_credentials(srv_cred);
    gnutls_certificate_free_credentials(cli_cred);
    if (ticket_key.data) {
        gnutls_memset(ticket_key.data, 0, ticket_key.size);
        gnutls_free(ticket_key.data);
    }
    srv_cred = cli_cred = NULL;
    ticket_key.data = NULL;
}

int tp_session(gnutls_session_t *s, unsigned version, const char *cipher, int server,
               int tickets, int fd)
{
    char prio[160];
    unsigned flags = server ? GNUTLS_SERVER : GNUTLS_CLIENT;
    int ret;

    if (server && !tickets)
        flags |= GNUTLS_NO_TICKETS;
    snprintf(prio, sizeof(prio), "NORMAL:-VERS-ALL:+VERS-TLS1.%d:-CIPHER-ALL:+%s",
             version == 0x0304 ? 3 : version == 0x0303 ? 2 : 1, cipher);
    ret = gnutls_init(s, flags);
    if (ret < 0)
        return ret;
    ret = gnutls_priority_set_direct(*s, prio, NULL);
    if (ret == 0)
        ret = gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, server ? srv_cred : cli_cred);
    if (ret == 0 && server && tickets)
        ret = gnutls_session_ticket_enable_server(*s, &ticket_key);
    if (ret < 0) {
        gnutls_deinit(*s);
        *s = NULL;
        return ret;
    }
    gnutls_transport_set_int(*s, fd);
    gnutls_handshake_set_timeout(*s, 30000);
    return 0;
}

int tp_handshake(gnutls_session_t s)
{
    int ret;

    do
        ret = gnutls_handshake(s);
    while (ret < 0 && ret != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(ret));
    return ret;
}

struct hs { gnutls_session_t s; int ret; };

static void *hs_thread(void *arg)
{
    struct hs *h = arg;

    h->ret = tp_handshake(h->s);
    return NULL;
}

int tp_handshake_pair(gnutls_session_t client, gnutls_session_t server)
{
    struct hs h = { .s = server };
    pthread_t t;
    int ret;

    if (pthread_create(&t, NULL, hs_thread, &h) != 0)
        return GNUTLS_E_INTERNAL_ERROR;
    ret = tp_handshake(client);
    pthread_join(t, NULL);
    return ret < 0 ? ret : h.ret;
}
