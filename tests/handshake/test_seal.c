/* handshake/seal.c: records sealed by us with GnuTLS's write key, read by a
 * real GnuTLS session, for every AEAD suite we seal in TLS 1.2 and 1.3: the
 * bytes intact and in order around GnuTLS's own records (the sequence goes
 * on both ways), a KeyUpdate in the middle (the new key is picked up), and
 * no sealing before GnuTLS showed the peer takes full records, nor ever
 * when the peer asked for smaller ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <tlsflow.h>
#include "handshake/handshake.h"
#include "tf_hs_pair.h"
#include "tf_test.h"

struct suite { const char *name, *prio; bool tls13; };

#define P12 "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:"
#define P13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
static const struct suite suites[] = {
    { "tls13-aes128gcm", P13 "+AES-128-GCM", true },
    { "tls13-aes256gcm", P13 "+AES-256-GCM", true },
    { "tls13-chacha20", P13 "+CHACHA20-POLY1305", true },
    { "tls13-aes128ccm", P13 "+AES-128-CCM", true },
    { "tls12-aes128gcm", P12 "+AES-128-GCM", false },
    { "tls12-aes256gcm", P12 "+AES-256-GCM", false },
    { "tls12-chacha20", P12 "+CHACHA20-POLY1305", false },
    { "tls12-aes128ccm", P12 "+AES-128-CCM", false },
    { "tls12-aes256ccm", P12 "+AES-256-CCM", false },
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

struct pair {
    tlsflow_config *ccfg, *scfg;
    tf_hs_end c, s;
    uint8_t *want, *got;        /* what the server sent, what the client read */
    size_t sent, read;
};

#define STREAM (512 * 1024)

static void open_pair(struct pair *p, const char *prio, size_t client_max_record)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(tlsflow_config_new(&p->scfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(p->scfg, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_set_priority(p->scfg, prio), 0);
    assert_int_equal(tlsflow_config_new(&p->ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(p->ccfg, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_priority(p->ccfg, prio), 0);
    assert_int_equal(tf_hs_config_freeze(p->ccfg), 0);
    assert_int_equal(tf_hs_config_freeze(p->scfg), 0);
    tf_hs_pair_init(&p->c, &p->s, p->ccfg, p->scfg, "localhost:1");
    if (client_max_record)
        assert_true(gnutls_record_set_max_size(p->c.hs.s, client_max_record) >= 0);
    tf_hs_pair_handshake(&p->c, &p->s);
    p->want = malloc(STREAM);
    p->got = malloc(STREAM);
    assert_non_null(p->want);
    assert_non_null(p->got);
    tf_data_fill(p->want, STREAM, 0x5e, 0, TF_DATA_BINARY);
}

static void close_pair(struct pair *p)
{
    tf_hs_pair_free(&p->c, &p->s);
    tlsflow_config_free(p->ccfg);
    tlsflow_config_free(p->scfg);
    free(p->want);
    free(p->got);
}

/* The server sends the next len bytes of the stream through GnuTLS. */
static void gnutls_sends(struct pair *p, size_t len)
{
    while (len) {
        ssize_t n = tf_hs_send(&p->s.hs, p->want + p->sent, len);
        if (n <= 0)
            fail_msg("gnutls_record_send: %s", gnutls_strerror((int)n));
        tf_hs_seal_note_sent(&p->s.hs, len, n);
        p->sent += (size_t)n;
        len -= (size_t)n;
    }
}

/* The server seals the next len bytes: what tf_hs_seal took. */
static size_t seals(struct pair *p, size_t len)
{
    ssize_t n = tf_hs_seal(&p->s.hs, p->want + p->sent, len);

    if (n < 0)
        fail_msg("tf_hs_seal: %s", gnutls_strerror((int)n));
    p->sent += (size_t)n;
    return (size_t)n;
}

/* The client reads everything the server wrote, checked. */
static void client_reads(struct pair *p)
{
    tf_hs_pump(&p->s, &p->c);
    for (;;) {
        size_t before = p->c.in.len;
        ssize_t n = gnutls_record_recv(p->c.hs.s, p->got + p->read, STREAM - p->read);
        if (n == GNUTLS_E_AGAIN && p->c.in.len < before)
            continue;                 /* it took a ticket or a KeyUpdate */
        if (n == GNUTLS_E_AGAIN)
            break;
        if (n <= 0)
            fail_msg("client gnutls_record_recv after %zu bytes: %s", p->read,
                     gnutls_strerror((int)n));
        p->read += (size_t)n;
    }
    assert_int_equal(p->read, p->sent);
    assert_memory_equal(p->got, p->want, p->read);
}

TF_TEST(sealed_between_gnutls_records, 30)
{
    const struct suite *su = *state;
    struct pair p;

    open_pair(&p, su->prio, 0);
    /* Before GnuTLS sent a full record: not sealed. */
    assert_int_equal(seals(&p, 40000), 0);
    gnutls_sends(&p, 1000);                 /* a short record teaches nothing */
    assert_int_equal(seals(&p, 40000), 0);
    gnutls_sends(&p, TF_SEAL_RECORD);       /* a full one: sealing from now on */
    assert_int_equal(p.s.hs.seal.state, SEAL_READY);
    assert_int_equal(seals(&p, 100000), 100000);
    client_reads(&p);
    gnutls_sends(&p, 777);                  /* GnuTLS's sequence went on */
    assert_int_equal(seals(&p, 3 * TF_SEAL_RECORD + 1), 3 * TF_SEAL_RECORD + 1);
    gnutls_sends(&p, 20000);
    client_reads(&p);
    if (su->tls13) {
        /* A KeyUpdate: GnuTLS sends it and takes a new write key; what is
         * sealed after it goes under that key. */
        assert_int_equal(gnutls_session_key_update(p.s.hs.s, 0), 0);
        assert_int_equal(seals(&p, 50000), 50000);
        client_reads(&p);
        gnutls_sends(&p, 5000);
        client_reads(&p);
        /* One the server owes the peer (it asked for one): sealing waits
         * until GnuTLS has sent it with its next record. */
        p.s.hs.key_update_due = true;
        assert_int_equal(seals(&p, 10000), 0);
        p.s.hs.key_update_due = false;
    }
    assert_int_equal(seals(&p, 1), 1);
    client_reads(&p);
    close_pair(&p);
}

/* A client that takes records of at most 4 KiB: GnuTLS cuts to that, and
 * nothing is ever sealed (seal.c cuts at 16 KiB). */
TF_TEST(smaller_records_never_sealed, 30)
{
    const struct suite *su = *state;
    struct pair p;

    open_pair(&p, su->prio, 4096);
    gnutls_sends(&p, TF_SEAL_RECORD);
    assert_int_equal(p.s.hs.seal.state, SEAL_NEVER);
    assert_int_equal(seals(&p, 40000), 0);
    gnutls_sends(&p, 40000);
    client_reads(&p);
    close_pair(&p);
}

int main(void)
{
    static struct CMUnitTest tests[2 * NSUITES];   /* static: the names stay reachable */

    for (size_t i = 0; i < NSUITES; i++) {
        tests[2 * i] = (struct CMUnitTest)TF_CASE_WITH(
            sealed_between_gnutls_records, tf_name("sealed %s", suites[i].name), &suites[i]);
        tests[2 * i + 1] = (struct CMUnitTest)TF_CASE_WITH(
            smaller_records_never_sealed, tf_name("4k records %s", suites[i].name), &suites[i]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
