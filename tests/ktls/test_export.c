/* handshake/export.c and ktls/crypto_info.c without a kernel: a real GnuTLS
 * handshake over a socketpair, then
 *  - each side's exported TX equals the other's RX (key, IV, sequence);
 *  - a record built the way the kernel builds it from our crypto_info (nonce
 *    from salt/iv/rec_seq, per version) is accepted by the GnuTLS peer, and a
 *    record from the peer opens with our RX crypto_info — so the salt/iv split
 *    is proven here before the VM proves it on real kernels;
 *  - ciphers the kernel has no form for give -EOPNOTSUPP, and errors wipe. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "handshake/handshake.h"
#include "ktls/ktls.h"
#include "tls_pair.h"

struct pair {
    gnutls_session_t cli, srv;
    int fds[2];
};

static int open_pair(struct pair *p, unsigned version, const char *cipher, int tickets)
{
    int ret;

    memset(p, 0, sizeof(*p));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fds) < 0)
        return GNUTLS_E_INTERNAL_ERROR;
    ret = tp_session(&p->srv, version, cipher, 1, tickets, p->fds[1]);
    if (ret == 0)
        ret = tp_session(&p->cli, version, cipher, 0, 0, p->fds[0]);
    if (ret == 0)
        ret = tp_handshake_pair(p->cli, p->srv);
    return ret;
}

static void close_pair(struct pair *p)
{
    if (p->cli)
        gnutls_deinit(p->cli);
    if (p->srv)
        gnutls_deinit(p->srv);
    close(p->fds[0]);
    close(p->fds[1]);
}

static void assert_same_secret(const tf_ktls_secret *a, const tf_ktls_secret *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->cipher, b->cipher);
    assert_int_equal(a->key_len, b->key_len);
    assert_int_equal(a->iv_len, b->iv_len);
    assert_memory_equal(a->key, b->key, a->key_len);
    assert_memory_equal(a->iv, b->iv, a->iv_len);
    assert_memory_equal(a->seq, b->seq, 8);
}

/* ---- the kernel's record protection, from a crypto_info ---- */

struct kview {
    unsigned version;
    gnutls_cipher_algorithm_t alg;
    const uint8_t *key, *salt, *iv, *seq;
    size_t key_len, salt_len, iv_len;
};

static struct kview view(const tf_ktls_crypto_info *ci)
{
    struct kview v = { .version = ci->info.version };

    switch (ci->info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
        v = (struct kview){ v.version, GNUTLS_CIPHER_AES_128_GCM, ci->gcm128.key, ci->gcm128.salt,
                            ci->gcm128.iv, ci->gcm128.rec_seq, 16, 4, 8 };
        break;
    case TLS_CIPHER_AES_GCM_256:
        v = (struct kview){ v.version, GNUTLS_CIPHER_AES_256_GCM, ci->gcm256.key, ci->gcm256.salt,
                            ci->gcm256.iv, ci->gcm256.rec_seq, 32, 4, 8 };
        break;
    case TLS_CIPHER_AES_CCM_128:
        v = (struct kview){ v.version, GNUTLS_CIPHER_AES_128_CCM, ci->ccm128.key, ci->ccm128.salt,
                            ci->ccm128.iv, ci->ccm128.rec_seq, 16, 4, 8 };
        break;
    case TLS_CIPHER_CHACHA20_POLY1305:
        v = (struct kview){ v.version, GNUTLS_CIPHER_CHACHA20_POLY1305, ci->chacha.key, NULL,
                            ci->chacha.iv, ci->chacha.rec_seq, 32, 0, 12 };
        break;
    default:
        fail_msg("cipher_type %u", ci->info.cipher_type);
    }
    return v;
}

/* The per-record nonce: salt || iv with the sequence XORed into the last 8
 * bytes (TLS 1.3, and ChaCha in 1.2); TLS 1.2 AES: salt || explicit nonce. */
static void nonce(const struct kview *v, const uint8_t *explicit_nonce, uint8_t out[12])
{
    int i;

    if (v->salt_len) {
        memcpy(out, v->salt, 4);
        memcpy(out + 4, explicit_nonce ? explicit_nonce : v->iv, 8);
    } else {
        memcpy(out, v->iv, 12);
    }
    if (!explicit_nonce)
        for (i = 0; i < 8; i++)
            out[4 + i] ^= v->seq[i];
}

static int is_tls12_aes(const struct kview *v)
{
    return v->version == 0x0303 && v->salt_len;
}

/* Seals one application-data record as the kernel's TLS_TX would. */
static size_t seal(const tf_ktls_crypto_info *ci, const uint8_t *pt, size_t n, uint8_t *rec)
{
    struct kview v = view(ci);
    gnutls_datum_t key = { (unsigned char *)v.key, (unsigned)v.key_len };
    gnutls_aead_cipher_hd_t h;
    uint8_t nc[12], aad[13], inner[64];
    size_t off = 5, clen, alen, plen = n;

    assert_true(n < sizeof(inner) - 1);
    memcpy(inner, pt, n);
    if (v.version == 0x0304) {
        inner[plen++] = TF_REC_DATA;   /* TLSInnerPlaintext content type */
        nonce(&v, NULL, nc);
    } else if (is_tls12_aes(&v)) {
        memcpy(rec + off, v.iv, 8);    /* explicit nonce of the first record = iv */
        off += 8;
        nonce(&v, v.iv, nc);
    } else {
        nonce(&v, NULL, nc);
    }
    clen = plen + 16;
    rec[0] = TF_REC_DATA, rec[1] = 3, rec[2] = 3;
    rec[3] = (uint8_t)((off - 5 + clen) >> 8), rec[4] = (uint8_t)(off - 5 + clen);
    if (v.version == 0x0304) {
        memcpy(aad, rec, 5), alen = 5;
    } else {
        memcpy(aad, v.seq, 8);
        aad[8] = TF_REC_DATA, aad[9] = 3, aad[10] = 3;
        aad[11] = (uint8_t)(n >> 8), aad[12] = (uint8_t)n, alen = 13;
    }
    assert_int_equal(gnutls_aead_cipher_init(&h, v.alg, &key), 0);
    assert_int_equal(gnutls_aead_cipher_encrypt(h, nc, 12, aad, alen, 16, inner, plen, rec + off, &clen), 0);
    gnutls_aead_cipher_deinit(h);
    return off + clen;
}

/* Opens one application-data record as the kernel's TLS_RX would. */
static size_t open_rec(const tf_ktls_crypto_info *ci, const uint8_t *rec, size_t len, uint8_t *pt)
{
    struct kview v = view(ci);
    gnutls_datum_t key = { (unsigned char *)v.key, (unsigned)v.key_len };
    gnutls_aead_cipher_hd_t h;
    uint8_t nc[12], aad[13];
    size_t off = 5, plen, alen;

    assert_true(len > 5 + 16);
    if (is_tls12_aes(&v)) {
        nonce(&v, rec + 5, nc);
        off += 8;
    } else {
        nonce(&v, NULL, nc);
    }
    plen = len - off;
    if (v.version == 0x0304) {
        memcpy(aad, rec, 5), alen = 5;
    } else {
        memcpy(aad, v.seq, 8);
        memcpy(aad + 8, rec, 3);
        aad[11] = (uint8_t)((len - off - 16) >> 8), aad[12] = (uint8_t)(len - off - 16), alen = 13;
    }
    assert_int_equal(gnutls_aead_cipher_init(&h, v.alg, &key), 0);
    assert_int_equal(gnutls_aead_cipher_decrypt(h, nc, 12, aad, alen, 16, rec + off, len - off, pt, &plen), 0);
    gnutls_aead_cipher_deinit(h);
    if (v.version == 0x0304)
        assert_int_equal(pt[--plen], TF_REC_DATA);
    return plen;
}

static void read_full(int fd, uint8_t *b, size_t n)
{
    ssize_t r;

    while (n) {
        r = read(fd, b, n);
        assert_true(r > 0);
        b += r, n -= (size_t)r;
    }
}

static void one(unsigned version, enum tf_ktls_cipher c, const char *name)
{
    static const char up[] = "kernel-built record", down[] = "gnutls-built record";
    tf_ktls_secret ctx, crx, stx, srx;
    tf_ktls_crypto_info ci;
    uint8_t rec[256], pt[256];
    size_t n, len;
    struct pair p;
    ssize_t r;

    print_message("    TLS 1.%d %s\n", version == 0x0304 ? 3 : 2, name);
    assert_int_equal(open_pair(&p, version, name, 0), 0);
    assert_int_equal(tf_hs_export_secret(p.cli, TF_KTLS_TX, &ctx), 0);
    assert_int_equal(tf_hs_export_secret(p.cli, TF_KTLS_RX, &crx), 0);
    assert_int_equal(tf_hs_export_secret(p.srv, TF_KTLS_TX, &stx), 0);
    assert_int_equal(tf_hs_export_secret(p.srv, TF_KTLS_RX, &srx), 0);
    assert_int_equal(ctx.version, version);
    assert_int_equal(ctx.cipher, c);
    assert_same_secret(&ctx, &srx);
    assert_same_secret(&stx, &crx);
    assert_memory_not_equal(ctx.key, crx.key, ctx.key_len);

    /* client -> server through "kernel" TX */
    assert_int_equal(tf_ktls_build_crypto_info(&ctx, &ci, &len), 0);
    n = seal(&ci, (const uint8_t *)up, sizeof(up), rec);
    assert_int_equal(write(p.fds[0], rec, n), (ssize_t)n);
    r = gnutls_record_recv(p.srv, pt, sizeof(pt));
    assert_int_equal(r, (ssize_t)sizeof(up));
    assert_memory_equal(pt, up, sizeof(up));

    /* server -> client through "kernel" RX */
    assert_int_equal(gnutls_record_send(p.srv, down, sizeof(down)), (ssize_t)sizeof(down));
    read_full(p.fds[0], rec, 5);
    len = ((size_t)rec[3] << 8) | rec[4];
    assert_true(len + 5 <= sizeof(rec));
    read_full(p.fds[0], rec + 5, len);
    assert_int_equal(tf_ktls_build_crypto_info(&crx, &ci, &n), 0);
    n = open_rec(&ci, rec, len + 5, pt);
    assert_int_equal(n, sizeof(down));
    assert_memory_equal(pt, down, sizeof(down));

    explicit_bzero(&ci, sizeof(ci));
    tf_ktls_secret_wipe(&ctx), tf_ktls_secret_wipe(&crx);
    tf_ktls_secret_wipe(&stx), tf_ktls_secret_wipe(&srx);
    close_pair(&p);
}

static void test_every_cipher(void **state)
{
    static const struct { enum tf_ktls_cipher c; const char *name; } ciphers[] = {
        { TF_CIPHER_AES_128_GCM, "AES-128-GCM" },
        { TF_CIPHER_AES_256_GCM, "AES-256-GCM" },
        { TF_CIPHER_CHACHA20_POLY1305, "CHACHA20-POLY1305" },
        { TF_CIPHER_AES_128_CCM, "AES-128-CCM" },
    };
    size_t i;

    (void)state;
    for (i = 0; i < 4; i++) {
        one(0x0303, ciphers[i].c, ciphers[i].name);
        one(0x0304, ciphers[i].c, ciphers[i].name);
    }
}

/* With tickets, a TLS 1.3 server's TX has already protected them when its
 * handshake returns: the sequence must be read, not assumed to be 0. */
static void test_tickets_move_sequence(void **state)
{
    tf_ktls_secret stx, crx;
    struct pair p;

    (void)state;
    assert_int_equal(open_pair(&p, 0x0304, "AES-128-GCM", 1), 0);
    assert_int_equal(tf_hs_export_secret(p.srv, TF_KTLS_TX, &stx), 0);
    assert_int_equal(tf_hs_export_secret(p.cli, TF_KTLS_RX, &crx), 0);
    print_message("    server tx seq %u, client rx seq %u (tickets not yet read)\n",
                  stx.seq[7], crx.seq[7]);
    assert_memory_equal(stx.key, crx.key, stx.key_len);
    tf_ktls_secret_wipe(&stx), tf_ktls_secret_wipe(&crx);
    close_pair(&p);
}

static void unsupported(unsigned version, const char *prio_cipher)
{
    tf_ktls_secret s;
    static const uint8_t zero[sizeof(tf_ktls_secret)];
    struct pair p;

    assert_int_equal(open_pair(&p, version, prio_cipher, 0), 0);
    memset(&s, 0x5a, sizeof(s));
    assert_int_equal(tf_hs_export_secret(p.cli, TF_KTLS_TX, &s), -EOPNOTSUPP);
    assert_memory_equal(&s, zero, sizeof(s));
    close_pair(&p);
}

static void test_unsupported(void **state)
{
    (void)state;
    unsupported(0x0303, "AES-128-CBC");
    unsupported(0x0304, "AES-128-CCM-8");
}

static void test_bad_args(void **state)
{
    tf_ktls_secret s;
    static const uint8_t zero[sizeof(tf_ktls_secret)];
    struct pair p;

    (void)state;
    memset(&s, 0x5a, sizeof(s));
    assert_int_equal(tf_hs_export_secret(NULL, TF_KTLS_TX, &s), -EINVAL);
    assert_memory_equal(&s, zero, sizeof(s));
    assert_int_equal(open_pair(&p, 0x0304, "AES-128-GCM", 0), 0);
    assert_int_equal(tf_hs_export_secret(p.cli, (enum tf_ktls_dir)7, &s), -EINVAL);
    assert_int_equal(tf_hs_export_secret(p.cli, TF_KTLS_RX, NULL), -EINVAL);
    close_pair(&p);
}

static int setup(void **state)
{
    (void)state;
    return tp_creds_init() < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_creds_free();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cipher),
        cmocka_unit_test(test_tickets_move_sequence),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
