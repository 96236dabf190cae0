/* handshake/session.c tf_hs_handshake against handshake messages cut into
 * many records.  A tlsflow server handshakes with a real GnuTLS client whose
 * records are rewritten on their way out: its ClientHello re-fragmented into
 * 256-byte and 1-byte records, a ~20 KiB ClientHello (an unknown extension
 * inflates it) over two records and over many, and its Finished decrypted
 * and encrypted again over many records.  Each flight reaches the server in
 * one receive, so a server that took one record per wake-up (GnuTLS says
 * AGAIN after each piece of a message not yet whole) would sit until its
 * handshake timeout; every handshake here must complete within 1 s, and the
 * flow then carries data both ways. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "tf_test.h"

#define HS_TIMEOUT_MS 5000    /* a stalled server fails after this */
#define WITHIN_MS     1000    /* what a handshake may take */
#define PAD_EXT_TYPE  0xfde8  /* unassigned: servers ignore it */

enum { CT_HANDSHAKE = 22, CT_APPDATA = 23 };

/* The client: a GnuTLS session on its end of a socketpair.  Its pushes go
 * through a rewriter that cuts records; its pulls read the socket. */
struct client {
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    int      fd;
    size_t   hello_frag;      /* 0: the ClientHello's records as sent; else this many bytes a record */
    uint16_t hello_version;   /* the record version of those records */
    size_t   fin_frag;        /* 0: the Finished as sent; else re-encrypted, this many bytes a record */
    size_t   pad;             /* bytes of an unknown extension in the ClientHello */
    /* client handshake traffic key, from the key log (TLS_AES_128_GCM_SHA256) */
    gnutls_aead_cipher_hd_t aead;
    uint8_t  iv[12];
    uint64_t seq_in, seq_out;
    bool     fin_done;
    uint8_t *pend;            /* pushed bytes not yet a whole record */
    size_t   npend, cappend;
    uint8_t *out;             /* rewritten records, written at the end of a push */
    size_t   nout, capout;
    size_t   hello_left;      /* bytes of the ClientHello GnuTLS has still to push */
    unsigned hello_records, fin_records;
};

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pfd = { fd, POLLOUT, 0 };
            poll(&pfd, 1, 100);
            continue;
        }
        if (w < 0)
            fail_msg("client send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

static void append(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *buf = realloc(*buf, *cap);
        assert_non_null(*buf);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

/* Queues one record; the push writes them all at once (one send: the
 * socket's buffer counts every send, and nothing reads it meanwhile). */
static void emit(struct client *c, uint8_t type, uint16_t version, const uint8_t *p, size_t n)
{
    uint8_t hdr[5] = { type, (uint8_t)(version >> 8), (uint8_t)version, (uint8_t)(n >> 8), (uint8_t)n };

    assert_true(n <= 16384 + 256);
    append(&c->out, &c->nout, &c->capout, hdr, sizeof(hdr));
    append(&c->out, &c->nout, &c->capout, p, n);
}

/* ---- TLS 1.3 record protection, for the Finished ---- */

static void expand_label(const gnutls_datum_t *secret, const char *label, uint8_t *out, size_t len)
{
    uint8_t info[64];
    size_t ll = strlen(label), n = 0;
    gnutls_datum_t d;

    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0;   /* no context */
    d.data = info;
    d.size = (unsigned)n;
    assert_int_equal(gnutls_hkdf_expand(GNUTLS_MAC_SHA256, secret, &d, out, len), 0);
}

static int on_keylog(gnutls_session_t s, const char *label, const gnutls_datum_t *secret)
{
    struct client *c = gnutls_session_get_ptr(s);
    uint8_t key[16];
    gnutls_datum_t k = { key, sizeof(key) };

    if (strcmp(label, "CLIENT_HANDSHAKE_TRAFFIC_SECRET") || c->aead)
        return 0;
    assert_int_equal(secret->size, 32);
    expand_label(secret, "key", key, sizeof(key));
    expand_label(secret, "iv", c->iv, sizeof(c->iv));
    assert_int_equal(gnutls_aead_cipher_init(&c->aead, GNUTLS_CIPHER_AES_128_GCM, &k), 0);
    gnutls_memset(key, 0, sizeof(key));
    return 0;
}

static void nonce_for(const struct client *c, uint64_t seq, uint8_t nonce[12])
{
    memcpy(nonce, c->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
}

/* One record of the client's handshake epoch (its Finished) becomes
 * len / fin_frag records, each sealed with the next sequence number. */
static void refragment_encrypted(struct client *c, const uint8_t *rec, size_t len)
{
    uint8_t nonce[12], plain[512], sealed[512 + 16 + 1], aad[5];
    size_t n = sizeof(plain), k;

    assert_non_null(c->aead);
    assert_true(len - 5 <= sizeof(plain) + 16);
    nonce_for(c, c->seq_in++, nonce);
    assert_int_equal(gnutls_aead_cipher_decrypt(c->aead, nonce, 12, rec, 5, 16, rec + 5, len - 5,
                                                plain, &n), 0);
    while (n && plain[n - 1] == 0)   /* padding */
        n--;
    assert_true(n > 1);
    assert_int_equal(plain[n - 1], CT_HANDSHAKE);
    n--;
    assert_int_equal(plain[0], 20);  /* finished */
    for (size_t off = 0; off < n; off += k) {
        uint8_t piece[65];
        size_t sn = sizeof(sealed);
        k = n - off < c->fin_frag ? n - off : c->fin_frag;
        assert_true(k < sizeof(piece));
        memcpy(piece, plain + off, k);
        piece[k] = CT_HANDSHAKE;
        aad[0] = CT_APPDATA;
        aad[1] = 3;
        aad[2] = 3;
        aad[3] = (uint8_t)((k + 1 + 16) >> 8);
        aad[4] = (uint8_t)(k + 1 + 16);
        nonce_for(c, c->seq_out++, nonce);
        assert_int_equal(gnutls_aead_cipher_encrypt(c->aead, nonce, 12, aad, 5, 16, piece, k + 1,
                                                    sealed, &sn), 0);
        assert_int_equal(sn, k + 1 + 16);
        emit(c, CT_APPDATA, 0x0303, sealed, sn);
        c->fin_records++;
    }
    c->fin_done = true;
}

/* One whole record as GnuTLS made it, rewritten or as it is. */
static void rewrite(struct client *c, const uint8_t *rec, size_t len)
{
    uint8_t type = rec[0];
    uint16_t version = (uint16_t)(rec[1] << 8 | rec[2]);
    const uint8_t *p = rec + 5;
    size_t n = len - 5;

    if (type == CT_HANDSHAKE) {        /* in the clear: the ClientHello */
        size_t step = c->hello_frag ? c->hello_frag : n;
        if (!c->hello_left && n >= 4)
            c->hello_left = 4 + ((size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
        c->hello_left -= n < c->hello_left ? n : c->hello_left;
        for (size_t off = 0; off < n; off += step) {
            emit(c, CT_HANDSHAKE, c->hello_frag ? c->hello_version : version, p + off,
                 n - off < step ? n - off : step);
            c->hello_records++;
        }
    } else if (type == CT_APPDATA && c->fin_frag && !c->fin_done) {
        refragment_encrypted(c, rec, len);
    } else {
        emit(c, type, version, p, n);
    }
}

static ssize_t client_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
    struct client *c = ptr;
    size_t used = 0;

    append(&c->pend, &c->npend, &c->cappend, data, len);
    while (c->npend - used >= 5) {
        size_t rl = 5 + ((size_t)c->pend[used + 3] << 8 | c->pend[used + 4]);
        if (c->npend - used < rl)
            break;
        rewrite(c, c->pend + used, rl);
        used += rl;
    }
    memmove(c->pend, c->pend + used, c->npend - used);
    c->npend -= used;
    /* GnuTLS pushes a ClientHello of two records in two calls, and the loop
     * would receive between them (io_uring runs its work as the client's
     * send returns): the records go out together, in one receive. */
    if (!c->hello_left) {
        send_all(c->fd, c->out, c->nout);
        c->nout = 0;
    }
    return (ssize_t)len;
}

static ssize_t client_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    struct client *c = ptr;
    ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);

    if (n < 0)
        gnutls_transport_set_errno(c->s, errno);
    return n;
}

static int pad_send(gnutls_session_t s, gnutls_buffer_t ext)
{
    struct client *c = gnutls_session_get_ptr(s);
    uint8_t *zeros = calloc(1, c->pad);
    int ret;

    assert_non_null(zeros);
    ret = gnutls_buffer_append_data(ext, zeros, c->pad);
    free(zeros);
    return ret < 0 ? ret : (int)c->pad;
}

static int pad_recv(gnutls_session_t s, const unsigned char *data, size_t len)
{
    (void)s;
    (void)data;
    (void)len;
    return 0;
}

static void client_init(struct client *c, int fd)
{
    /* TLS_AES_128_GCM_SHA256 only: the Finished rewriter knows that suite. */
    static const char prio[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM";

    c->fd = fd;
    assert_int_equal(gnutls_certificate_allocate_credentials(&c->cred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(c->cred, TF_CA, GNUTLS_X509_FMT_PEM) > 0);
    assert_int_equal(gnutls_init(&c->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(c->s, prio, NULL), 0);
    assert_int_equal(gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, c->cred), 0);
    assert_int_equal(gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, "localhost", 9), 0);
    gnutls_session_set_verify_cert(c->s, "localhost", 0);
    gnutls_session_set_ptr(c->s, c);
    gnutls_session_set_keylog_function(c->s, on_keylog);
    if (c->pad)
        assert_int_equal(gnutls_session_ext_register(c->s, "tf-pad", PAD_EXT_TYPE, GNUTLS_EXT_TLS,
                                                     pad_recv, pad_send, NULL, NULL, NULL,
                                                     GNUTLS_EXT_FLAG_CLIENT_HELLO | GNUTLS_EXT_FLAG_TLS), 0);
    gnutls_transport_set_ptr(c->s, c);
    gnutls_transport_set_push_function(c->s, client_push);
    gnutls_transport_set_pull_function(c->s, client_pull);
}

static void client_fini(struct client *c)
{
    gnutls_deinit(c->s);
    gnutls_certificate_free_credentials(c->cred);
    if (c->aead)
        gnutls_aead_cipher_deinit(c->aead);
    free(c->pend);
    free(c->out);
    close(c->fd);
}

/* ---- The server side and the run ---- */

struct server {
    tf_done open, read;
    char    got[16];
    size_t  ngot;
    int     wrote;
};

static void srv_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct server *sv = arg;

    (void)f;
    sv->wrote = r->status == TLSFLOW_OK ? 1 : -1;
}

static void srv_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct server *sv = arg;

    tf_on_done(f, r, &sv->read);
    if (r->status != TLSFLOW_OK)
        return;
    assert_true(sv->ngot + r->len <= sizeof(sv->got));
    memcpy(sv->got + sv->ngot, r->data, r->len);
    sv->ngot += r->len;
    if (sv->ngot < 4)
        assert_int_equal(tlsflow_read(f, srv_read, sv), 0);
    else
        assert_int_equal(tlsflow_write(f, "pong", 4, srv_written, sv), 0);
}

/* Runs the loop and the client's handshake side by side until both ended;
 * fails unless the server's flow opened within WITHIN_MS. */
static void handshake(struct client *c)
{
    tlsflow_loop *loop = tf_loop_new();
    /* A stall still shows under TF_TIME_SCALE: the server's timeout stretches
     * like the times here. */
    tlsflow_config *scfg = tf_config(TLSFLOW_SERVER, NULL, HS_TIMEOUT_MS);
    struct server sv = { 0 };
    long long t0, opened = -1;
    int sp[2], cret = GNUTLS_E_AGAIN;
    char buf[16];
    size_t got = 0;

    /* Receives from the loop's shared ring (32 KiB buffers): a whole flight
     * comes in one, even the 20 KiB ClientHello's two records. */
    assert_int_equal(tlsflow_config_set_ktls(scfg, TLSFLOW_KTLS_OFF), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(tlsflow_wrap_fd(loop, scfg, sp[0], NULL, tf_on_done, &sv.open), 0);
    client_init(c, sp[1]);
    t0 = tf_now_ms();
    while ((!sv.open.n || cret == GNUTLS_E_AGAIN) && tf_now_ms() - t0 < tf_ms(HS_TIMEOUT_MS + 2000)) {
        assert_true(tlsflow_loop_run_once(loop, 1) >= 0);
        if (sv.open.n && opened < 0)
            opened = tf_now_ms() - t0;
        if (cret == GNUTLS_E_AGAIN || (cret < 0 && !gnutls_error_is_fatal(cret)))
            cret = gnutls_handshake(c->s);
        if (cret < 0 && gnutls_error_is_fatal(cret) && sv.open.n)
            break;
    }
    if (!sv.open.n)
        fail_msg("the server's handshake did not end in %d ms", tf_ms(HS_TIMEOUT_MS + 2000));
    if (sv.open.status != TLSFLOW_OK)
        fail_msg("server: %s after %lld ms (client: %s)", sv.open.message, opened,
                 cret ? gnutls_strerror(cret) : "done");
    if (cret != 0)
        fail_msg("client: %s", gnutls_strerror(cret));
    print_message("handshake in %lld ms; ClientHello in %u records, Finished in %u\n", opened,
                  c->hello_records, c->fin_records);
    if (opened > tf_ms(WITHIN_MS))
        fail_msg("the handshake took %lld ms (want at most %d)", opened, tf_ms(WITHIN_MS));

    /* The flow carries data both ways. */
    assert_int_equal(tlsflow_read(sv.open.flow, srv_read, &sv), 0);
    assert_int_equal(gnutls_record_send(c->s, "ping", 4), 4);
    t0 = tf_now_ms();
    while (got < 4 && tf_now_ms() - t0 < tf_ms(5000)) {
        ssize_t n;
        assert_true(tlsflow_loop_run_once(loop, 1) >= 0);
        n = gnutls_record_recv(c->s, buf + got, sizeof(buf) - got);
        if (n > 0)
            got += (size_t)n;
        else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED)
            fail_msg("client read: %s", n ? gnutls_strerror((int)n) : "EOF");
    }
    assert_int_equal(sv.ngot, 4);
    assert_memory_equal(sv.got, "ping", 4);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "pong", 4);

    tlsflow_free(sv.open.flow);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    client_fini(c);
}

TF_TEST(client_hello_256_byte_records, 30)
{
    struct client c = { .hello_frag = 256, .hello_version = 0x0301 };

    handshake(&c);
    assert_true(c.hello_records > 1);
}

TF_TEST(client_hello_1_byte_records, 30)
{
    struct client c = { .hello_frag = 1, .hello_version = 0x0303 };

    handshake(&c);
    assert_true(c.hello_records > 200);
}

TF_TEST(client_hello_20k_two_records, 30)
{
    struct client c = { .pad = 20 * 1024 };

    handshake(&c);
    assert_int_equal(c.hello_records, 2);   /* GnuTLS's own: 16 KiB and the rest */
}

TF_TEST(client_hello_20k_many_records, 30)
{
    struct client c = { .pad = 20 * 1024, .hello_frag = 1000, .hello_version = 0x0301 };

    handshake(&c);
    assert_true(c.hello_records > 20);
}

TF_TEST(client_finished_1_byte_records, 30)
{
    struct client c = { .fin_frag = 1 };

    handshake(&c);
    assert_true(c.fin_records > 30);
}

TF_TEST(client_finished_7_byte_records_after_fragmented_hello, 30)
{
    struct client c = { .hello_frag = 64, .hello_version = 0x0303, .fin_frag = 7 };

    handshake(&c);
    assert_true(c.hello_records > 1);
    assert_true(c.fin_records > 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(client_hello_256_byte_records),
        TF_CASE(client_hello_1_byte_records),
        TF_CASE(client_hello_20k_two_records),
        TF_CASE(client_hello_20k_many_records),
        TF_CASE(client_finished_1_byte_records),
        TF_CASE(client_finished_7_byte_records_after_fragmented_hello),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
