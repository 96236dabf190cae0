/* Writes the seed corpus of every fuzz target into OUTDIR/<target>/ (the
 * committed tests/fuzz/corpus was made by it):
 *     fuzz_gen_corpus OUTDIR
 * Handshake flights are captured from real in-memory handshakes between two
 * tf_sessions, so the seeds carry real ClientHellos, server flights and
 * tickets; the rest is written by hand below. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <gnutls/x509.h>

#include "fuzz_common.h"
#include "ktls/ktls.h"

static const char *outdir;

static void put_file(const char *target, const char *name, unsigned prefix, const void *p,
                     size_t n)
{
    char path[4096];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", outdir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    fp = fopen(path, "wb");
    if (!fp || (prefix <= 255 && fputc((int)prefix, fp) == EOF) || (n && fwrite(p, 1, n, fp) != n) ||
        fclose(fp)) {
        perror(path);
        exit(1);
    }
}

#define NO_PREFIX 256u

/* ---- fuzz_flow: flights of a real handshake ---- */

static void flights(unsigned version)
{
    fz_side cli, srv;
    tf_buf ch = { 0 }, sflight = { 0 }, cfin = { 0 }, all_srv = { 0 };
    const char *v = version == 0x0303 ? "12" : "13";
    unsigned m12 = version == 0x0303 ? 2 : 0;
    char name[64];

    if (fz_side_init(&cli, fz_client_config(version)) || fz_side_init(&srv, fz_server_config()))
        exit(1);
    tf_hs_handshake(&cli.hs);                     /* ClientHello */
    fz_buf_put(&ch, tf_buf_head(&cli.out), cli.out.len);
    fz_transfer(&cli, &srv);
    tf_hs_handshake(&srv.hs);                     /* ServerHello ... Finished / HelloDone */
    fz_buf_put(&sflight, tf_buf_head(&srv.out), srv.out.len);
    fz_buf_put(&all_srv, tf_buf_head(&srv.out), srv.out.len);
    fz_transfer(&srv, &cli);
    tf_hs_handshake(&cli.hs);                     /* the client's second flight */
    fz_buf_put(&cfin, tf_buf_head(&cli.out), cli.out.len);
    fz_transfer(&cli, &srv);
    for (int i = 0; i < 4 && tf_hs_handshake(&srv.hs) == GNUTLS_E_AGAIN; i++)
        ;
    tf_hs_handshake(&cli.hs);
    fz_buf_put(&all_srv, tf_buf_head(&srv.out), srv.out.len);   /* tickets, Finished (1.2) */

    snprintf(name, sizeof(name), "raw-srv-clienthello-%s", v);
    put_file("fuzz_flow", name, 0x01 | m12, tf_buf_head(&ch), ch.len);
    snprintf(name, sizeof(name), "raw-srv-clienthello-eof-%s", v);
    put_file("fuzz_flow", name, 0x11 | m12, tf_buf_head(&ch), ch.len);
    snprintf(name, sizeof(name), "raw-srv-whole-%s", v);
    put_file("fuzz_flow", name, 0x09 | m12, tf_buf_head(&ch), ch.len);
    snprintf(name, sizeof(name), "raw-srv-both-flights-%s", v);
    fz_buf_put(&ch, tf_buf_head(&cfin), cfin.len);
    put_file("fuzz_flow", name, 0x01 | m12, tf_buf_head(&ch), ch.len);
    snprintf(name, sizeof(name), "raw-cli-server-flight-%s", v);
    put_file("fuzz_flow", name, 0x00 | m12, tf_buf_head(&sflight), sflight.len);
    snprintf(name, sizeof(name), "raw-cli-server-all-%s", v);
    put_file("fuzz_flow", name, 0x10 | m12, tf_buf_head(&all_srv), all_srv.len);

    tf_buf_free(&ch);
    tf_buf_free(&sflight);
    tf_buf_free(&cfin);
    tf_buf_free(&all_srv);
    fz_side_deinit(&cli);
    fz_side_deinit(&srv);
}

/* Programs for the live mode (see run_live in fuzz_flow.c). */
static void live_programs(void)
{
    static const uint8_t data[] = { 1, 0, 5, 'h', 'e', 'l', 'l', 'o', 6, 3, 'a', 'b', 'c' };
    static const uint8_t alerts[] = { 2, 1, 0, 2, 1, 100, 2, 1, 90, 2, 2, 40 };
    static const uint8_t bye[] = { 1, 0, 2, 'h', 'i', 3 };
    static const uint8_t keyupd[] = { 4, 1, 1, 0, 3, 'a', 'b', 'c', 6, 1, 'z', 9, 1, 0, 1, 'q' };
    static const uint8_t reneg[] = { 5, 0, 1, 0, 1, 'x', 6, 1, 'y', 1, 0, 1, 'z' };
    static const uint8_t corrupt[] = { 1, 0, 4, 'd', 'a', 't', 'a', 7, 0, 1, 0x40, 4, 'd', 'a', 't', 'a' };
    static const uint8_t trunc[] = { 1, 0, 4, 'd', 'a', 't', 'a', 8 };
    static const uint8_t garbage[] = { 0, 10, 0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5 };
    static const uint8_t ccs[] = { 0, 6, 0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 1, 0, 1, 'k' };
    static const uint8_t big[] = { 0, 5, 0x17, 0x03, 0x03, 0xff, 0xff };
    static const uint8_t whole[] = { 10, 1, 1, 0, 3, 'a', 'b', 'c', 0, 3, 0x17, 0x03, 0x03 };
    static const uint8_t storm[] = { 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0,
                                     2, 1, 0, 2, 1, 0, 2, 1, 100, 2, 1, 100, 1, 0, 1, 'x' };
    /* Asked for our KeyUpdate, then small, record-sized and file writes:
     * the answer must precede the data (tf_hs_cork / tf_hs_sent_uncorked). */
    static const uint8_t ku_writes[] = { 4, 1, 6, 3, 'a', 'b', 'c', 4, 1, 11, 1, 0, 2, 'x', 'y', 0x41,
                                         4, 3, 11, 2, 0, 1, 'q', 2 | 8 << 2, 5, 1, 9, 4, 1, 11, 0,
                                         2 | 40 << 2, 0, 6, 1, 'z' };
    static const uint8_t writes[] = { 11, 2, 0, 3, 'o', 'n', 'e', 1 | 16 << 2, 0, 2, 't', 'w',
                                      11, 0, 2 | 32 << 2, 0x80, 6, 0, 11, 1, 1 | 63 << 2, 1 };
    /* More KeyUpdates than GnuTLS takes in a second: refused, with an alert. */
    static const uint8_t ku_storm[] = { 4, 31, 6, 1, 'a', 4, 30, 1, 0, 1, 'b' };
    /* Failed records answered with an alert the peer must read back. */
    static const uint8_t bad_mac[] = { 6, 2, 'h', 'i', 7, 0, 20, 0x10, 5, 'h', 'e', 'l', 'l', 'o' };
    static const uint8_t bad_type[] = { 0, 6, 0x18, 0x03, 0x03, 0x00, 0x01, 0x00 };
    static const uint8_t short_rec[] = { 0, 6, 0x17, 0x03, 0x03, 0x00, 0x01, 0x00, 9, 1, 0, 1, 'x' };
    static const struct { const char *name; const uint8_t *p; size_t n; } progs[] = {
        { "data", data, sizeof(data) },       { "alerts", alerts, sizeof(alerts) },
        { "bye", bye, sizeof(bye) },          { "keyupdate", keyupd, sizeof(keyupd) },
        { "reneg-ticket", reneg, sizeof(reneg) }, { "corrupt", corrupt, sizeof(corrupt) },
        { "truncated", trunc, sizeof(trunc) }, { "garbage", garbage, sizeof(garbage) },
        { "ccs", ccs, sizeof(ccs) },          { "oversized", big, sizeof(big) },
        { "whole-records", whole, sizeof(whole) }, { "alert-storm", storm, sizeof(storm) },
        { "keyupdate-writes", ku_writes, sizeof(ku_writes) }, { "writes", writes, sizeof(writes) },
        { "keyupdate-storm", ku_storm, sizeof(ku_storm) }, { "bad-mac", bad_mac, sizeof(bad_mac) },
        { "bad-type", bad_type, sizeof(bad_type) }, { "short-record", short_rec, sizeof(short_rec) },
    };
    char name[64];

    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++)
        for (unsigned mode = 4; mode < 8; mode++) {
            snprintf(name, sizeof(name), "live-%s-%s-%s", progs[i].name,
                     mode & 1 ? "srv" : "cli", mode & 2 ? "12" : "13");
            put_file("fuzz_flow", name, mode, progs[i].p, progs[i].n);
        }
}

/* ---- fuzz_control ---- */

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static size_t cmsg_put(uint8_t *buf, size_t off, int level, int type, const void *p, size_t n)
{
    struct cmsghdr c;

    memset(&c, 0, sizeof(c));
    c.cmsg_level = level;
    c.cmsg_type = type;
    c.cmsg_len = CMSG_LEN(n);
    memcpy(buf + off, &c, sizeof(c));
    memcpy(buf + off + CMSG_LEN(0), p, n);
    return off + CMSG_SPACE(n);
}

/* Mode 4 of fuzz_control: handshake streams cut into records (see
 * stream_mode there).  NST: a NewSessionTicket body (25 bytes). */
#define NST 0, 0, 0x1c, 0x20, 1, 2, 3, 4, 4, 'n', 'o', 'n', 'c', 0, 8, 't', 'i', 'c', 'k', 'e', 't', \
            '0', '1', 0, 0
#define KU(req) 0, 24, 0, 1, req
static void streams(void)
{
    /* byte 0: mode 4; byte 1: bit 0 server, bit 1 TLS 1.2 */
    static const uint8_t ku_split[] = { 4, 0, 3, 0, 2, 3, 0, 4, KU(1) };
    static const uint8_t ku_followed[] = { 4, 0, KU(0), 0, 4, 0, 25, NST };
    static const uint8_t tickets_ku[] = { 4, 0, 0, 4, 0, 25, NST, 0, 4, 0, 25, NST, KU(1), 2, KU(0) };
    static const uint8_t nst_split[] = { 4, 0, 3, 0, 1, 3, 0, 7, 3, 0, 20, 3, 0, 29, 3, 0, 31,
                                         0, 4, 0, 25, NST, 0, 4, 0, 25, NST };
    static const uint8_t ku_row[] = { 4, 1, KU(0), 2, KU(1), 4, KU(0), 2, KU(0), 2, KU(1), 4,
                                      KU(0), 2, KU(0), 2, KU(0), 2, KU(0), 2, KU(0) };
    static const uint8_t big[] = { 4, 0, 5, 4, 132, 2, KU(0) };
    static const uint8_t big_next[] = { 4, 0, 3, 0, 100, 5, 4, 132, KU(0) };
    static const uint8_t too_big[] = { 4, 0, 5, 4, 133 };
    static const uint8_t lying[] = { 4, 0, 1, 4, 0x01, 0x00, 0x00, 8, 1, 2, 3, 4, 5, 6, 7, 8, 2,
                                     1, 24, 0, 0, 0, 0 };
    static const uint8_t hello_req12[] = { 4, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 3, 0, 2, 0, 0, 0, 0,
                                           0, 1, 0, 2, 3, 3 };
    static const uint8_t client_hello12[] = { 4, 3, 0, 1, 0, 4, 3, 3, 0, 0 };
    static const uint8_t hello_req13[] = { 4, 0, 0, 0, 0, 0 };
    static const struct { const char *name; const uint8_t *p; size_t n; } s[] = {
        { "stream-keyupdate-split", ku_split, sizeof(ku_split) },
        { "stream-keyupdate-followed", ku_followed, sizeof(ku_followed) },
        { "stream-tickets-keyupdate", tickets_ku, sizeof(tickets_ku) },
        { "stream-ticket-split", nst_split, sizeof(nst_split) },
        { "stream-keyupdate-row-server", ku_row, sizeof(ku_row) },
        { "stream-at-limit", big, sizeof(big) },
        { "stream-at-limit-then-keyupdate", big_next, sizeof(big_next) },
        { "stream-over-limit", too_big, sizeof(too_big) },
        { "stream-lying-header", lying, sizeof(lying) },
        { "stream-hello-request-12", hello_req12, sizeof(hello_req12) },
        { "stream-client-hello-12-server", client_hello12, sizeof(client_hello12) },
        { "stream-hello-request-13", hello_req13, sizeof(hello_req13) },
    };

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        put_file("fuzz_control", s[i].name, NO_PREFIX, s[i].p, s[i].n);
}

static void control(void)
{
    union { struct cmsghdr h; uint8_t b[256]; } u;
    static const uint8_t types[] = { 20, 21, 22, 23 };
    static const uint8_t ku0[] = { 2, 22, 0, 24, 0, 0, 1, 0 };       /* mode, type, how, KeyUpdate */
    static const uint8_t ku1[] = { 2, 22, 2, 24, 0, 0, 1, 1 };
    static const uint8_t ku_srv[] = { 2, 22, 1, 24, 0, 0, 1, 1 };
    static const uint8_t nst[] = { 2, 22, 8, 4, 0, 0, 25, 0, 0, 0x1c, 0x20, 1, 2, 3, 4, 4, 'n', 'o', 'n',
                                   'c', 0, 8, 't', 'i', 'c', 'k', 'e', 't', '0', '1', 0, 0 };
    static const uint8_t alert_rec[] = { 2, 21, 0, 2, 40 };
    static const uint8_t notify_rec[] = { 2, 21, 0, 1, 0 };
    static const uint8_t ccs_rec[] = { 2, 20, 0, 1 };
    static const uint8_t data_rec[] = { 2, 23, 0, 'd', 'a', 't', 'a' };
    static const uint8_t seq[] = { 3, 22, 0, 0, 5, 24, 0, 0, 1, 0, 21, 0, 0, 2, 1, 0, 22, 0, 0, 2, 24, 0 };
    static const uint8_t alerts[][3] = { { 1, 1, 0 }, { 1, 2, 40 }, { 1, 1, 100 }, { 1, 1, 90 },
                                         { 1, 1, 10 }, { 1, 3, 0 } };
    char name[64];
    size_t off;
    int one = 1;

    for (size_t i = 0; i < sizeof(types); i++) {
        memset(&u, 0, sizeof(u));
        off = cmsg_put(u.b, 0, SOL_TLS, TLS_GET_RECORD_TYPE, &types[i], 1);
        snprintf(name, sizeof(name), "cmsg-type-%u", types[i]);
        put_file("fuzz_control", name, 0, u.b, off);
    }
    memset(&u, 0, sizeof(u));
    off = cmsg_put(u.b, 0, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof(one));
    off = cmsg_put(u.b, off, SOL_TLS, TLS_GET_RECORD_TYPE, &types[1], 1);
    put_file("fuzz_control", "cmsg-two", 0, u.b, off);
    put_file("fuzz_control", "cmsg-short", 0, u.b, CMSG_LEN(1) - 1);
    for (size_t i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++) {
        snprintf(name, sizeof(name), "alert-%u-%u", alerts[i][1], alerts[i][2]);
        put_file("fuzz_control", name, NO_PREFIX, alerts[i], 3);
    }
    put_file("fuzz_control", "rec-keyupdate", NO_PREFIX, ku0, sizeof(ku0));
    put_file("fuzz_control", "rec-keyupdate-requested-split", NO_PREFIX, ku1, sizeof(ku1));
    put_file("fuzz_control", "rec-keyupdate-server", NO_PREFIX, ku_srv, sizeof(ku_srv));
    put_file("fuzz_control", "rec-ticket", NO_PREFIX, nst, sizeof(nst));
    put_file("fuzz_control", "rec-alert", NO_PREFIX, alert_rec, sizeof(alert_rec));
    put_file("fuzz_control", "rec-close-notify", NO_PREFIX, notify_rec, sizeof(notify_rec));
    put_file("fuzz_control", "rec-ccs", NO_PREFIX, ccs_rec, sizeof(ccs_rec));
    put_file("fuzz_control", "rec-data", NO_PREFIX, data_rec, sizeof(data_rec));
    put_file("fuzz_control", "recs-sequence", NO_PREFIX, seq, sizeof(seq));
    streams();
}

/* ---- fuzz_http ---- */

static void http(void)
{
    static const char *reqs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "\r\n\r\nGET /a/b/../c?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    };
    static const char *paths[] = { "/a%20b/c.html", "/x/./y//z/", "/%00", "/..", "/a?b#c" };
    static const char *resps[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.0 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
    };
    char name[64], buf[512];

    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        snprintf(name, sizeof(name), "request-%zu", i);
        buf[0] = 0;
        buf[1] = (char)(i % 3 ? 0 : 64);
        memcpy(buf + 2, reqs[i], strlen(reqs[i]));
        put_file("fuzz_http", name, NO_PREFIX, buf, 2 + strlen(reqs[i]));
    }
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        snprintf(name, sizeof(name), "path-%zu", i);
        buf[0] = 1;
        buf[1] = (char)(i == 0 ? 8 : 200);
        memcpy(buf + 2, paths[i], strlen(paths[i]));
        put_file("fuzz_http", name, NO_PREFIX, buf, 2 + strlen(paths[i]));
    }
    for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
        snprintf(name, sizeof(name), "response-%zu", i);
        buf[0] = 2;
        buf[1] = 0;
        memcpy(buf + 2, resps[i], strlen(resps[i]));
        put_file("fuzz_http", name, NO_PREFIX, buf, 2 + strlen(resps[i]));
    }
}

/* ---- fuzz_config ---- */

static void config(void)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    gnutls_datum_t kpem = { 0 }, cpem = { 0 };
    unsigned char serial[4] = { 9, 9, 9, 9 };
    static const char *prios[] = {
        "NORMAL", "NORMAL:-VERS-ALL:+VERS-TLS1.2", "SECURE256:%SERVER_PRECEDENCE",
        "NONE:+VERS-TLS1.3:+AES-128-GCM:+GROUP-X25519:+SIGN-ALL:+AEAD", "NORMAL:+BOGUS", "",
        "@SYSTEM",
    };
    static const char *alpns[] = { "h2\nhttp/1.1", "h2", "\nempty", "a\nb\nc\nd\ne\nf\ng\nh\ni" };
    char name[64];
    tf_buf b = { 0 };

    gnutls_x509_privkey_init(&key);
    gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
    gnutls_x509_crt_init(&crt);
    gnutls_x509_crt_set_version(crt, 3);
    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    gnutls_x509_crt_set_activation_time(crt, 1700000000);
    gnutls_x509_crt_set_expiration_time(crt, 4000000000L);
    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, FZ_NAME, strlen(FZ_NAME));
    gnutls_x509_crt_set_key(crt, key);
    gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
    gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem);
    gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kpem);

    fz_buf_put(&b, cpem.data, cpem.size);
    fz_buf_put(&b, "\n--KEY--\n", 9);
    fz_buf_put(&b, kpem.data, kpem.size);
    put_file("fuzz_config", "cert-key", 0, tf_buf_head(&b), b.len);
    put_file("fuzz_config", "ca", 1, cpem.data, cpem.size);
    put_file("fuzz_config", "ca-der-garbage", 1, "\x30\x82\x01\x00\x30", 5);
    for (size_t i = 0; i < sizeof(prios) / sizeof(prios[0]); i++) {
        snprintf(name, sizeof(name), "priority-%zu", i);
        put_file("fuzz_config", name, 2, prios[i], strlen(prios[i]));
    }
    for (size_t i = 0; i < sizeof(alpns) / sizeof(alpns[0]); i++) {
        snprintf(name, sizeof(name), "alpn-%zu", i);
        put_file("fuzz_config", name, 3, alpns[i], strlen(alpns[i]));
    }
    tf_buf_free(&b);
    gnutls_free(cpem.data);
    gnutls_free(kpem.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    flights(0x0304);
    flights(0x0303);
    live_programs();
    control();
    http();
    config();
    return 0;
}
