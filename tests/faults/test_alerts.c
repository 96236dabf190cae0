/* An alert for every fatal error after the handshake (DESIGN.md, "Semantics
 * added with them"): a forging peer (tests/common/forge.c) completes a real
 * handshake with a tlsflow flow, then sends, under the negotiated keys, a
 * record GnuTLS itself would never send, while the flow has a read pending.
 * Each case checks the alert that reaches the wire (decrypted by the forge),
 * and that the application's read ends with the error it always had.  The
 * same executable runs in the VM (label ktls), where flows take the kernel
 * path.
 *
 * What the RFCs ask, and what GnuTLS 3.7.9 does (lib/record.c, cipher.c;
 * gnutls-serv answers every receive error with gnutls_alert_send_appropriate,
 * i.e. gnutls_error_to_alert of the error; this forge against gnutls-serv
 * --echo saw the alerts named below):
 * - bad tag / ciphertext / record length: GNUTLS_E_DECRYPTION_FAILED ->
 *   bad_record_mac (RFC 8446 §5.2, RFC 5246 §6.2.3.3).
 * - too long: RFC 8446 §5.2/§5.4 (inner plaintext > 2^14+1, or ciphertext >
 *   2^14+256) and RFC 5246 §6.2.3/§7.2.2 (ciphertext > 2^14+2048) ask for
 *   record_overflow; GnuTLS: GNUTLS_E_RECORD_OVERFLOW -> record_overflow.
 *   (GnuTLS is stricter in TLS 1.2: it refuses a plaintext over 2^14, a
 *   ciphertext over 2^14 + its own overhead; so does the kernel.)
 * - an empty alert: RFC 8446 §5.1 says a record of type alert holds exactly
 *   one alert, and §6 answers a message that cannot be parsed with
 *   decode_error; GnuTLS in TLS 1.3 says GNUTLS_E_UNEXPECTED_PACKET ->
 *   unexpected_message (so does gnutls-serv).  Either is accepted in TLS 1.3.
 *   RFC 5246 §6.2.1 only forbids sending zero-length alert fragments, and
 *   GnuTLS skips every empty record in TLS 1.2 (its CBC-era rule; gnutls-serv
 *   echoes on): there the flow may also go on.
 * - an alert of 3 bytes: the same §5.1/§6 rule -> decode_error.  GnuTLS
 *   reads the first two bytes and ignores the third: {1, 0, 0} is to it a
 *   close_notify (gnutls-serv answers with its own close_notify) and the flow
 *   reports EOF, so on the userspace path GnuTLS alone cannot pass this case.
 * - an unknown content type, a heartbeat never negotiated (RFC 6520),
 *   ChangeCipherSpec after the handshake (RFC 8446 §5: an unexpected record
 *   type; RFC 5246 §7.1, §7.2.2) -> unexpected_message; GnuTLS:
 *   GNUTLS_E_UNEXPECTED_PACKET -> unexpected_message.
 * - handshake messages TLS 1.3 forbids after the handshake (ClientHello,
 *   Finished: RFC 8446 §4 and §4.1.2) -> unexpected_message, as GnuTLS.
 * - TLS 1.2: a ClientHello to the server is renegotiation: the library answers
 *   no_renegotiation (a fatal one today, RFC 5246 §7.2.2 calls it "always a
 *   warning"; either level passes) and fails the flow; a HelloRequest to a
 *   server is unexpected_message; to a client a warning no_renegotiation and
 *   the flow goes on (as tests/faults/test_hostile.c has it). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "tf_test.h"
#include "tf_forge.h"

#define TLS12 "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM"
#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM"

#define A_CLOSE_NOTIFY       0
#define A_UNEXPECTED_MESSAGE 10
#define A_BAD_RECORD_MAC     20
#define A_RECORD_OVERFLOW    22
#define A_DECODE_ERROR       50
#define A_NO_RENEGOTIATION   100

#define REC_CCS       20
#define REC_ALERT     21
#define REC_HANDSHAKE 22
#define REC_DATA      23
#define REC_HEARTBEAT 24
#define REC_UNKNOWN   0x19

/* What the forge sends after the handshake (then "hello", unless noted). */
enum act {
    SEND_DATA,            /* just "hello": the sanity case */
    TAMPER_TAG,
    TAMPER_CIPHERTEXT,
    WRONG_LENGTH,         /* the header one byte longer than the record */
    OVERFLOW_PLAINTEXT,   /* 1.3: inner plaintext 2^14+2; 1.2: plaintext 2^14+1 */
    OVERFLOW_CIPHERTEXT,  /* 1.3: ciphertext 2^14+257; 1.2: 2^14+2049 */
    EMPTY_ALERT,
    LONG_ALERT,           /* {warning, close_notify, 0} */
    UNKNOWN_TYPE,
    CCS,                  /* 1.3: in plaintext; 1.2: protected */
    CLIENT_HELLO,
    FINISHED,
    HELLO_REQUEST,
    HEARTBEAT,
};

enum level { FATAL = 2, WARNING = 1, ANY_LEVEL = 0 };

struct acase {
    const char     *name;
    bool            tls13, dut_server;
    enum act        act;
    int             alert;              /* the alert that must come */
    enum level      level;
    tlsflow_errcode code;               /* the read's error; 0: the read goes on and gets "hello" */
    int             alt_alert;          /* another one the RFC allows; 0: none */
    int             kernel_alert;       /* another one when the kernel held the receive key; 0: none */
    bool            may_go_on;          /* the RFC lets the flow ignore it */
    bool            free_in_callback;   /* the application frees the flow as its read fails */
};

/* One run: written by the forge's thread until it is done, by the loop's
 * thread, read after the join. */
struct run {
    const struct acase *c;
    tf_forge      *forge;
    int            send_ret;
    tf_forge_end   end;
    int            level, desc;
    bool           plaintext;
    char           seen[400];

    tlsflow       *flow;
    int            open_done, read_done, close_done;
    tlsflow_result open_res, read_res;
    char           open_msg[256], read_msg[256];
    char           got[8];
    size_t         ngot;
    bool           ktls_tx, ktls_rx;    /* when the forge was let go */
    bool           rx_kernel_at_end;    /* the kernel held the receive key as the read ended */
};

/* ---- the forge's side ---- */

static int send_act(tf_forge *p, const struct acase *c)
{
    static const uint8_t long_alert[3] = { 1, 0, 0 };
    static const uint8_t ccs[1] = { 1 };
    static const uint8_t hello_request[4] = { 0, 0, 0, 0 };
    static uint8_t big[2 * 16384 + 4096];
    uint8_t client_hello[4 + 41] = { 1, 0, 0, 41, 0x03, 0x03 };
    uint8_t finished[4 + 32] = { 20, 0, 0, 32 };
    uint8_t heartbeat[3 + 16 + 16] = { 1, 0, 16 };   /* request, 16 bytes, 16 of padding */
    bool v13 = c->tls13;

    switch (c->act) {
    case SEND_DATA:
        return tf_forge_send_data(p, "hello", 5);
    case TAMPER_TAG:
        return tf_forge_send_record(p, 0, REC_DATA, "hello", 5, TF_FORGE_TAMPER_TAG);
    case TAMPER_CIPHERTEXT:
        return tf_forge_send_record(p, 0, REC_DATA, "hello", 5, TF_FORGE_TAMPER_CIPHERTEXT);
    case WRONG_LENGTH:
        return tf_forge_send_record(p, 0, REC_DATA, "hello", 5, TF_FORGE_LENGTH_PLUS1);
    case OVERFLOW_PLAINTEXT:   /* content 2^14+1: over the limit by one in either version */
        tf_data_fill(big, 16385, 1, 0, TF_DATA_BINARY);
        return tf_forge_send_record(p, 0, REC_DATA, big, 16385, 0);
    case OVERFLOW_CIPHERTEXT:  /* 1.3: 16624 + 1 type + 16 tag; 1.2: 8 nonce + 18409 + 16 tag */
        tf_data_fill(big, sizeof(big), 2, 0, TF_DATA_BINARY);
        return tf_forge_send_record(p, 0, REC_DATA, big, v13 ? 16384 + 257 - 17 : 16384 + 2049 - 24, 0);
    case EMPTY_ALERT:
        return tf_forge_send_record(p, 0, REC_ALERT, NULL, 0, 0);
    case LONG_ALERT:
        return tf_forge_send_record(p, 0, REC_ALERT, long_alert, sizeof(long_alert), 0);
    case UNKNOWN_TYPE:
        return tf_forge_send_record(p, 0, REC_UNKNOWN, "hello", 5, 0);
    case CCS:
        return tf_forge_send_record(p, REC_CCS, REC_CCS, ccs, 1, v13 ? TF_FORGE_PLAINTEXT : 0);
    case CLIENT_HELLO:         /* legacy_version, random, no session id, one suite, null compression */
        tf_data_fill(client_hello + 6, 32, 3, 0, TF_DATA_BINARY);
        client_hello[38] = 0;
        client_hello[39] = 0;
        client_hello[40] = 2;
        client_hello[41] = 0x13;
        client_hello[42] = 0x01;
        client_hello[43] = 1;
        client_hello[44] = 0;
        return tf_forge_send_record(p, 0, REC_HANDSHAKE, client_hello, sizeof(client_hello), 0);
    case FINISHED:
        tf_data_fill(finished + 4, 32, 4, 0, TF_DATA_BINARY);
        return tf_forge_send_record(p, 0, REC_HANDSHAKE, finished, sizeof(finished), 0);
    case HELLO_REQUEST:
        return tf_forge_send_record(p, 0, REC_HANDSHAKE, hello_request, sizeof(hello_request), 0);
    case HEARTBEAT:
        tf_data_fill(heartbeat + 3, 32, 5, 0, TF_DATA_BINARY);
        return tf_forge_send_record(p, 0, REC_HEARTBEAT, heartbeat, sizeof(heartbeat), 0);
    }
    return -EINVAL;
}

static void script(tf_forge *p, void *arg)
{
    struct run *r = arg;

    r->send_ret = send_act(p, r->c);
    /* Something to read, should the flow go on: it then answers "world" and closes. */
    if (r->c->act != SEND_DATA)
        tf_forge_send_data(p, "hello", 5);
    r->end = tf_forge_read_alert(p, 3000, &r->level, &r->desc);
    r->plaintext = tf_forge_alert_was_plaintext(p);
    snprintf(r->seen, sizeof(r->seen), "%s", tf_forge_seen(p));
}

/* ---- the flow's side ---- */

static void on_close(tlsflow *f, const tlsflow_result *res, void *arg)
{
    struct run *r = arg;

    (void)f;
    (void)res;
    r->close_done = 1;
}

static void on_write(tlsflow *f, const tlsflow_result *res, void *arg)
{
    (void)f;
    (void)res;
    (void)arg;
}

static void on_read(tlsflow *f, const tlsflow_result *res, void *arg)
{
    struct run *r = arg;
    tlsflow_info info;

    if (res->status == TLSFLOW_OK) {
        size_t n = res->len < sizeof(r->got) - r->ngot ? res->len : sizeof(r->got) - r->ngot;

        memcpy(r->got + r->ngot, res->data, n);
        r->ngot += n;
        if (r->ngot < 5) {
            assert_int_equal(tlsflow_read(f, on_read, r), 0);
            return;
        }
        r->read_res = *res;
        r->read_done = 1;
        assert_int_equal(tlsflow_write(f, "world", 5, on_write, NULL), 0);
        assert_int_equal(tlsflow_close(f, on_close, r), 0);
        return;
    }
    if (tlsflow_get_info(f, &info) == 0)
        r->rx_kernel_at_end = info.ktls_rx;
    r->read_res = *res;
    r->read_done = 1;
    if (res->status == TLSFLOW_ERROR)
        snprintf(r->read_msg, sizeof(r->read_msg), "%s", tlsflow_error_message(res->error));
    if (r->c->free_in_callback && res->status == TLSFLOW_ERROR) {
        tlsflow_free(f);
        r->flow = NULL;
    }
}

static void on_open(tlsflow *f, const tlsflow_result *res, void *arg)
{
    struct run *r = arg;

    r->open_res = *res;
    r->open_done = 1;
    if (res->status == TLSFLOW_OK) {
        r->flow = f;
        assert_int_equal(tlsflow_read(f, on_read, r), 0);
    } else {
        snprintf(r->open_msg, sizeof(r->open_msg), "%s", tlsflow_error_message(res->error));
    }
}

/* The forge goes once the read is pending and, where the kernel took the
 * send key, once it has the receive key too (it takes it at the first record
 * boundary; a record that comes before goes through GnuTLS), or after 300 ms. */
static bool ready_to_go(struct run *r, long long opened_at)
{
    tlsflow_info info;

    if (!r->open_done)
        return false;
    if (!r->flow)
        return true;
    if (tlsflow_get_info(r->flow, &info) == 0) {
        r->ktls_tx = info.ktls_tx;
        r->ktls_rx = info.ktls_rx;
    }
    return !r->ktls_tx || r->ktls_rx || (long long)tf_now_ms() - opened_at > tf_ms(300);
}

static const char *code_name(tlsflow_errcode c)
{
    switch (c) {
    case TLSFLOW_E_TLS:        return "TLS";
    case TLSFLOW_E_ALERT:      return "ALERT";
    case TLSFLOW_E_BAD_RECORD: return "BAD_RECORD";
    case TLSFLOW_E_TRUNCATED:  return "TRUNCATED";
    case TLSFLOW_E_SYSTEM:     return "SYSTEM";
    case TLSFLOW_E_TIMEOUT:    return "TIMEOUT";
    default:                   return "other";
    }
}

/* The read's end in words, with the GnuTLS error and the alert GnuTLS
 * would name for it (gnutls_error_to_alert). */
static void describe_read(const struct run *r, char *buf, size_t n)
{
    const tlsflow_result *res = &r->read_res;
    int level = -1, desc;

    if (!r->read_done) {
        snprintf(buf, n, "still pending");
        return;
    }
    if (res->status == TLSFLOW_OK) {
        snprintf(buf, n, "OK, %zu bytes", r->ngot);
        return;
    }
    if (res->status == TLSFLOW_EOF) {
        snprintf(buf, n, "EOF");
        return;
    }
    if ((res->error.code == TLSFLOW_E_TLS || res->error.code == TLSFLOW_E_BAD_RECORD) &&
        res->error.detail < 0) {
        desc = gnutls_error_to_alert(res->error.detail, &level);
        snprintf(buf, n, "error %s/%d %s; gnutls_error_to_alert: %s %s (%d)", code_name(res->error.code),
                 res->error.detail, gnutls_strerror_name(res->error.detail),
                 level == GNUTLS_AL_FATAL ? "fatal" : "warning", tf_forge_alert_name(desc), desc);
        return;
    }
    snprintf(buf, n, "error %s/%d (%s)", code_name(res->error.code), res->error.detail, r->read_msg);
}

static bool alert_is(const struct run *r, const struct acase *c)
{
    bool desc_ok = r->desc == c->alert || (c->alt_alert && r->desc == c->alt_alert) ||
                   (c->kernel_alert && r->rx_kernel_at_end && r->desc == c->kernel_alert);

    return r->end == TF_FORGE_ALERT && !r->plaintext && desc_ok &&
           (c->level == ANY_LEVEL || r->level == (int)c->level);
}

/* The flow read "hello", answered "world" and closed. */
static bool went_on(const struct run *r)
{
    const uint8_t *data;
    size_t n = tf_forge_data(r->forge, &data);

    return r->read_done && r->read_res.status == TLSFLOW_OK && r->ngot == 5 &&
           memcmp(r->got, "hello", 5) == 0 && r->end == TF_FORGE_ALERT && r->desc == A_CLOSE_NOTIFY &&
           n == 5 && memcmp(data, "world", 5) == 0;
}

static void run_case(void **state)
{
    const struct acase *c = *state;
    const char *prio = c->tls13 ? TLS13 : TLS12;
    tlsflow_config *cfg = tf_config(c->dut_server ? TLSFLOW_SERVER : TLSFLOW_CLIENT, prio, 3000);
    struct run r = { .c = c, .end = TF_FORGE_TIMEOUT, .level = -1, .desc = -1 };
    char readw[400], forge_err[200];
    tlsflow_loop *loop;
    long long end, opened_at = 0, failed_at = 0;
    int fd, fds = tf_fd_count();
    bool forge_done, went, gone = false;

    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    r.forge = tf_forge_start(c->dut_server ? TLSFLOW_CLIENT : TLSFLOW_SERVER, prio, script, &r, &fd);
    assert_non_null(r.forge);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, fd, c->dut_server ? NULL : "localhost", on_open, &r), 0);

    /* Until the forge has its answer.  A flow that failed without a word
     * would leave it waiting: 250 ms after the failed read the application
     * frees the flow, so that the forge sees the end instead. */
    end = tf_now_ms() + tf_ms(10000);
    while (!tf_forge_done(r.forge) && (long long)tf_now_ms() < end) {
        tlsflow_loop_run_once(loop, 10);
        if (r.open_done && !opened_at)
            opened_at = tf_now_ms();
        if (!gone && ready_to_go(&r, opened_at)) {
            tf_forge_go(r.forge);
            gone = true;
        }
        if (r.read_done && r.read_res.status != TLSFLOW_OK && !failed_at)
            failed_at = tf_now_ms();
        if (failed_at && r.flow && (long long)tf_now_ms() - failed_at > tf_ms(250)) {
            tlsflow_free(r.flow);
            r.flow = NULL;
        }
    }
    forge_done = tf_forge_done(r.forge);
    if (r.flow)
        tlsflow_free(r.flow);
    r.flow = NULL;
    snprintf(forge_err, sizeof(forge_err), "%s", tf_forge_error(r.forge));
    describe_read(&r, readw, sizeof(readw));
    print_message("alert-case %s: keys %s/%s (tx/rx), read ended with rx in %s; wire: %s; read: %s\n",
                  c->name, r.ktls_tx ? "kernel" : "user", r.ktls_rx ? "kernel" : "user",
                  r.rx_kernel_at_end ? "the kernel" : "userspace", r.seen, readw);
    assert_true(forge_done);   /* else it is left running: fail before freeing what it uses */
    went = went_on(&r);        /* reads the forge's data: before it is freed */
    tf_forge_free(r.forge);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    assert_int_equal(tf_fd_count(), fds);

    if (forge_err[0])
        fail_msg("the forge could not do its part: %s", forge_err);
    if (r.open_res.status != TLSFLOW_OK)
        fail_msg("the flow did not open: %s", r.open_msg);
    if (getenv("TLSFLOW_EXPECT_KTLS") && !strcmp(getenv("TLSFLOW_EXPECT_KTLS"), "1") && !r.ktls_tx)
        fail_msg("TLSFLOW_EXPECT_KTLS=1 but the flow's send key is not in the kernel");
    if (r.send_ret < 0 && r.send_ret != -EPIPE && r.send_ret != -ECONNRESET)
        fail_msg("the forge could not send its record: %s", strerror(-r.send_ret));

    if (!c->code) {   /* the flow goes on: the sanity cases, a HelloRequest to a client */
        if (c->act == SEND_DATA ? !went : !(alert_is(&r, c) && r.read_res.status == TLSFLOW_OK))
            fail_msg("%s: the flow should have gone on; wire: %s; read: %s", c->name, r.seen, readw);
        return;
    }
    if (c->may_go_on && went)
        return;
    /* GnuTLS 3.7.9 reads an alert by its first two bytes: on the userspace
     * path {1, 0, 0} is a close_notify to it, and the read ends with EOF.
     * Only the kernel path (exactly two bytes) can hold the RFC here. */
    if (c->act == LONG_ALERT && !r.rx_kernel_at_end && r.read_res.status == TLSFLOW_EOF) {
        print_message("%s: userspace path, GnuTLS took it for close_notify (its known limit)\n", c->name);
        return;
    }
    if (!alert_is(&r, c))
        fail_msg("%s: wanted a %s alert %s (%d)%s%s on the wire; got: %s; read: %s", c->name,
                 c->level == FATAL ? "fatal" : c->level == WARNING ? "warning" : "",
                 tf_forge_alert_name(c->alert), c->alert, c->alt_alert ? " or " : "",
                 c->alt_alert ? tf_forge_alert_name(c->alt_alert) : "", r.seen, readw);
    if (!r.read_done || r.read_res.status != TLSFLOW_ERROR || r.read_res.error.code != c->code)
        fail_msg("%s: the read should have failed with %s; read: %s", c->name, code_name(c->code), readw);
}

/* ---- the cases ---- */

#define S true    /* tlsflow is the server */
#define C false   /* tlsflow is the client */
#define V13 true
#define V12 false
#define BAD TLSFLOW_E_BAD_RECORD

/* name, version, tlsflow's role, what the forge sends, the alert that must
 * come, its level, the read's error; then what differs from the default. */
#define CASE(n, version, role, sends, alert_, level_, code_)                                  \
    .name = (n), .tls13 = (version), .dut_server = (role), .act = (sends), .alert = (alert_),   \
    .level = (level_), .code = (code_)

static const struct acase cases[] = {
    /* Sanity: a record forged by hand is read as data; the flow's answer and
     * its close_notify decrypt. */
    { CASE("tls13_server_forged_data_is_read", V13, S, SEND_DATA, A_CLOSE_NOTIFY, WARNING, 0) },
    { CASE("tls13_client_forged_data_is_read", V13, C, SEND_DATA, A_CLOSE_NOTIFY, WARNING, 0) },
    { CASE("tls12_server_forged_data_is_read", V12, S, SEND_DATA, A_CLOSE_NOTIFY, WARNING, 0) },
    { CASE("tls12_client_forged_data_is_read", V12, C, SEND_DATA, A_CLOSE_NOTIFY, WARNING, 0) },

    { CASE("tls13_server_tampered_tag", V13, S, TAMPER_TAG, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls13_server_tampered_ciphertext", V13, S, TAMPER_CIPHERTEXT, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls13_server_wrong_length_header", V13, S, WRONG_LENGTH, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls13_server_overflow_plaintext", V13, S, OVERFLOW_PLAINTEXT, A_RECORD_OVERFLOW, FATAL, BAD) },
    { CASE("tls13_server_overflow_ciphertext", V13, S, OVERFLOW_CIPHERTEXT, A_RECORD_OVERFLOW, FATAL, BAD) },
    { CASE("tls13_server_empty_alert", V13, S, EMPTY_ALERT, A_DECODE_ERROR, FATAL, BAD),
      .alt_alert = A_UNEXPECTED_MESSAGE },
    { CASE("tls13_server_three_byte_alert", V13, S, LONG_ALERT, A_DECODE_ERROR, FATAL, BAD) },
    { CASE("tls13_server_unknown_content_type", V13, S, UNKNOWN_TYPE, A_UNEXPECTED_MESSAGE, FATAL, BAD) },
    /* A plaintext record under TLS 1.3 reaches a kernel that holds the receive
     * key as one that does not authenticate (tls_rx_msg_size and the AEAD check
     * look at no type): there bad_record_mac is all the flow can know. */
    { CASE("tls13_server_ccs_after_handshake", V13, S, CCS, A_UNEXPECTED_MESSAGE, FATAL, BAD),
      .kernel_alert = A_BAD_RECORD_MAC },
    { CASE("tls13_server_client_hello_after_handshake", V13, S, CLIENT_HELLO, A_UNEXPECTED_MESSAGE, FATAL,
           BAD) },
    { CASE("tls13_server_second_finished", V13, S, FINISHED, A_UNEXPECTED_MESSAGE, FATAL, BAD) },
    { CASE("tls13_server_heartbeat", V13, S, HEARTBEAT, A_UNEXPECTED_MESSAGE, FATAL, BAD) },
    /* The application frees the flow in its failed read's callback: the alert
     * was on its way before the read completed. */
    { CASE("tls13_server_tampered_tag_freed_in_callback", V13, S, TAMPER_TAG, A_BAD_RECORD_MAC, FATAL, BAD),
      .free_in_callback = true },
    { CASE("tls13_client_tampered_tag", V13, C, TAMPER_TAG, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls13_client_tampered_ciphertext", V13, C, TAMPER_CIPHERTEXT, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls13_client_overflow_plaintext", V13, C, OVERFLOW_PLAINTEXT, A_RECORD_OVERFLOW, FATAL, BAD) },
    { CASE("tls13_client_unknown_content_type", V13, C, UNKNOWN_TYPE, A_UNEXPECTED_MESSAGE, FATAL, BAD) },

    { CASE("tls12_server_tampered_tag", V12, S, TAMPER_TAG, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls12_server_tampered_ciphertext", V12, S, TAMPER_CIPHERTEXT, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls12_server_wrong_length_header", V12, S, WRONG_LENGTH, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls12_server_overflow_plaintext", V12, S, OVERFLOW_PLAINTEXT, A_RECORD_OVERFLOW, FATAL, BAD) },
    { CASE("tls12_server_overflow_ciphertext", V12, S, OVERFLOW_CIPHERTEXT, A_RECORD_OVERFLOW, FATAL, BAD) },
    { CASE("tls12_server_empty_alert", V12, S, EMPTY_ALERT, A_DECODE_ERROR, FATAL, BAD),
      .alt_alert = A_UNEXPECTED_MESSAGE, .may_go_on = true },
    { CASE("tls12_server_three_byte_alert", V12, S, LONG_ALERT, A_DECODE_ERROR, FATAL, BAD) },
    { CASE("tls12_server_unknown_content_type", V12, S, UNKNOWN_TYPE, A_UNEXPECTED_MESSAGE, FATAL, BAD) },
    { CASE("tls12_server_ccs_after_handshake", V12, S, CCS, A_UNEXPECTED_MESSAGE, FATAL, BAD) },
    { CASE("tls12_server_client_hello_renegotiation", V12, S, CLIENT_HELLO, A_NO_RENEGOTIATION, ANY_LEVEL,
           TLSFLOW_E_TLS) },
    { CASE("tls12_server_hello_request", V12, S, HELLO_REQUEST, A_UNEXPECTED_MESSAGE, FATAL, BAD) },
    { CASE("tls12_server_heartbeat", V12, S, HEARTBEAT, A_UNEXPECTED_MESSAGE, FATAL, BAD) },
    { CASE("tls12_server_tampered_tag_freed_in_callback", V12, S, TAMPER_TAG, A_BAD_RECORD_MAC, FATAL, BAD),
      .free_in_callback = true },
    { CASE("tls12_client_tampered_tag", V12, C, TAMPER_TAG, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls12_client_tampered_ciphertext", V12, C, TAMPER_CIPHERTEXT, A_BAD_RECORD_MAC, FATAL, BAD) },
    { CASE("tls12_client_overflow_plaintext", V12, C, OVERFLOW_PLAINTEXT, A_RECORD_OVERFLOW, FATAL, BAD) },
    { CASE("tls12_client_hello_request_refused", V12, C, HELLO_REQUEST, A_NO_RENEGOTIATION, WARNING, 0) },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* The frame's TF_TEST, with the case's name (TF_ONLY=glob matches it). */
static void test_alert_case(void **state)
{
    tf_test_begin(((const struct acase *)*state)->name, 30);
    run_case(state);
    tf_test_end();
}

int main(void)
{
    struct CMUnitTest tests[NCASES];

    for (size_t i = 0; i < NCASES; i++) {
        struct CMUnitTest t = TF_CASE_WITH(test_alert_case, cases[i].name, &cases[i]);
        tests[i] = t;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
