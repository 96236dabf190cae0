/* A peer's KeyUpdate, against a tlsflow echo flow (userspace here, the
 * kernel path in the VM lane):
 * - with update_requested, our KeyUpdate goes out before the next
 *   application data, also when that data is a small (corked) write — GnuTLS
 *   3.7.9's gnutls_record_cork drops a scheduled KeyUpdate;
 * - a storm of KeyUpdates without data between them ends the flow with an
 *   alert, without a busy loop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_gnutls_peer.h"
#include "handshake/handshake.h"   /* the config's test seams */
#include "ktls/ktls.h"             /* whether this kernel can take a new key */

#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"

struct echo {
    tlsflow *flow;
    int open_done, failed, freed;
    tlsflow_error error;
    uint8_t buf[65536];
};

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg);

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct echo *e = arg;

    if (r->status != TLSFLOW_OK) {
        if (r->status == TLSFLOW_ERROR) {
            e->failed = 1;
            e->error = r->error;
        }
        tlsflow_free(f);
        e->freed = 1;
        return;
    }
    memcpy(e->buf, r->data, r->len);
    assert_int_equal(tlsflow_write(f, e->buf, r->len, on_written, e), 0);
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct echo *e = arg;

    if (r->status == TLSFLOW_OK)
        assert_int_equal(tlsflow_read(f, on_read, e), 0);
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct echo *e = arg;

    e->open_done = 1;
    if (r->status != TLSFLOW_OK)
        return;
    e->flow = f;
    assert_int_equal(tlsflow_read(f, on_read, e), 0);
}

/* The peer's view: KeyUpdates it received, and how many before the echo. */
static int key_updates_seen;

static int count_key_updates(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                             const gnutls_datum_t *msg)
{
    (void)s;
    (void)when;
    (void)msg;
    if (htype == GNUTLS_HANDSHAKE_KEY_UPDATE && incoming)
        key_updates_seen++;
    return 0;
}

static int peer_alert;   /* the fatal alert the peer got instead of the echo, -1 none */

/* KeyUpdate(update_requested), then 18 bytes; the echo must come after our
 * KeyUpdate. */
static void ask_and_echo(tf_gnutls_peer *p)
{
    char buf[64];
    ssize_t n;

    gnutls_handshake_set_hook_function(p->s, GNUTLS_HANDSHAKE_KEY_UPDATE, GNUTLS_HOOK_PRE,
                                       count_key_updates);
    key_updates_seen = 0;
    p->result = gnutls_session_key_update(p->s, GNUTLS_KU_PEER);
    if (p->result < 0)
        return;
    tf_gnutls_peer_send(p, "eighteen bytes!!\r\n", 18);
    do {
        n = gnutls_record_recv(p->s, buf, sizeof(buf));
    } while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
    p->count = n;
    p->arg = (void *)(intptr_t)key_updates_seen;   /* KeyUpdates seen before the echo */
    peer_alert = n == GNUTLS_E_FATAL_ALERT_RECEIVED ? (int)gnutls_alert_get(p->s) : -1;
}

/* 40 KeyUpdates in a row, then data: the flow must end with an alert. */
static void storm(tf_gnutls_peer *p)
{
    char buf[64];
    ssize_t n;

    for (int i = 0; i < 40; i++) {
        p->result = gnutls_session_key_update(p->s, 0);
        if (p->result < 0)
            break;   /* the flow already gave up: its alert waits to be read */
    }
    if (p->result == 0)
        tf_gnutls_peer_send(p, "hello", 5);
    do {
        n = gnutls_record_recv(p->s, buf, sizeof(buf));
    } while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
    p->count = n;   /* the alert GnuTLS received, as an error */
    p->arg = (void *)(intptr_t)gnutls_alert_get(p->s);
}

static bool expect_ktls(void)
{
    const char *v = getenv("TLSFLOW_EXPECT_KTLS");
    return v && !strcmp(v, "1");
}

static void run(tf_gnutls_peer *p, struct echo *e, tlsflow_loop **loopp, tlsflow_config **cfgp)
{
    int a, b;

    *cfgp = tf_config(TLSFLOW_SERVER, TLS13, 3000);
    assert_int_equal(tlsflow_loop_new(loopp, 0), 0);
    tf_tcp_pair(&a, &b);
    assert_int_equal(tlsflow_wrap_fd(*loopp, *cfgp, b, NULL, on_open, e), 0);
    p->server = false;
    p->priority = TLS13;
    tf_gnutls_peer_start(p, a);
    tf_run_until_flag(*loopp, &e->open_done, 8000, "the flow to open");
    assert_non_null(e->flow);
}

static void finish(tf_gnutls_peer *p, struct echo *e, tlsflow_loop *loop, tlsflow_config *cfg)
{
    tf_run_until_flag(loop, &p->done, 8000, "the peer to finish");
    if (!e->freed && e->flow)
        tlsflow_free(e->flow);
    tf_gnutls_peer_join(p, 10000);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
}

static void test_reply_before_small_write(void **s)
{
    static struct echo e;
    tf_gnutls_peer p = { .script = ask_and_echo };
    tlsflow_loop *loop;
    tlsflow_config *cfg;

    tlsflow_info info;
    bool kernel_tx;

    (void)s;
    memset(&e, 0, sizeof(e));
    run(&p, &e, &loop, &cfg);
    assert_int_equal(tlsflow_get_info(e.flow, &info), 0);
    kernel_tx = info.ktls_tx;
    finish(&p, &e, loop, cfg);
    assert_int_equal(p.result, 0);
    if (kernel_tx && !tf_ktls_has_rekey(0x0304)) {
        /* Before 6.14 the kernel takes no second key (receive or send,
         * whichever the KeyUpdate meets first): the flow ends with
         * TLSFLOW_E_REKEY and says internal_error under the old key. */
        print_message("kernel without rekey: the peer got alert %d, %d KeyUpdates\n", peer_alert,
                      (int)(intptr_t)p.arg);
        assert_int_equal(peer_alert, GNUTLS_A_INTERNAL_ERROR);
        assert_int_equal((int)(intptr_t)p.arg, 0);
        return;
    }
    if (p.count != 18)
        fail_msg("the peer read %ld (%s) instead of the 18-byte echo", p.count,
                 p.count < 0 ? gnutls_strerror((int)p.count) : "bytes");
    /* RFC 8446 4.6.3: our KeyUpdate before our next application data. */
    assert_int_equal((int)(intptr_t)p.arg, 1);
}

static void test_key_update_storm(void **s)
{
    static struct echo e;
    tf_gnutls_peer p = { .script = storm };
    tlsflow_loop *loop;
    tlsflow_config *cfg;
    double cpu0 = tf_cpu_seconds();

    (void)s;
    memset(&e, 0, sizeof(e));
    run(&p, &e, &loop, &cfg);
    finish(&p, &e, loop, cfg);
    assert_true(e.failed);
    print_message("storm: read error %d/%d (%s); peer got %ld, alert %d\n", e.error.code,
                  e.error.detail, tlsflow_error_message(e.error), p.count, (int)(intptr_t)p.arg);
    assert_int_equal(p.count, GNUTLS_E_FATAL_ALERT_RECEIVED);
    /* Ours says unexpected_message (the kernel path); GnuTLS's own limit in
     * userspace (GNUTLS_E_TOO_MANY_HANDSHAKE_PACKETS) names internal_error. */
    assert_true((int)(intptr_t)p.arg == GNUTLS_A_UNEXPECTED_MESSAGE ||
                (int)(intptr_t)p.arg == GNUTLS_A_INTERNAL_ERROR);
    assert_true(tf_cpu_seconds() - cpu0 < 5.0);   /* no busy loop */
}

/* ---- The kernel holds only the send key: GnuTLS reads the KeyUpdate in
 * userspace, its answer goes out through the kernel ---- */

static void on_open_check_tx_only(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tlsflow_info info;

    on_open(f, r, arg);
    if (r->status == TLSFLOW_OK && expect_ktls()) {
        assert_int_equal(tlsflow_get_info(f, &info), 0);
        assert_int_equal(info.ktls_tx, 1);
        assert_int_equal(info.ktls_rx, 0);
    }
}

static void test_reply_with_kernel_tx_only(void **s)
{
    static struct echo e;
    tf_gnutls_peer p = { .script = ask_and_echo };
    tlsflow_loop *loop;
    tlsflow_config *cfg;
    tlsflow_info info;
    bool kernel_tx;
    int a, b;

    (void)s;
    memset(&e, 0, sizeof(e));
    cfg = tf_config(TLSFLOW_SERVER, TLS13, 3000);
    cfg->test_ktls_tx_only = true;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    tf_tcp_pair(&a, &b);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, b, NULL, on_open_check_tx_only, &e), 0);
    p.priority = TLS13;
    tf_gnutls_peer_start(&p, a);
    tf_run_until_flag(loop, &e.open_done, 8000, "the flow to open");
    assert_non_null(e.flow);
    assert_int_equal(tlsflow_get_info(e.flow, &info), 0);
    kernel_tx = info.ktls_tx;
    finish(&p, &e, loop, cfg);
    assert_int_equal(p.result, 0);
    if (kernel_tx && !tf_ktls_has_rekey(0x0304)) {
        /* Before 6.14 the kernel takes no second send key: the flow says so
         * under the key the peer reads, and announces no KeyUpdate. */
        print_message("kernel without rekey: the peer got alert %d, %d KeyUpdates\n", peer_alert,
                      (int)(intptr_t)p.arg);
        assert_int_equal(peer_alert, GNUTLS_A_INTERNAL_ERROR);
        assert_int_equal((int)(intptr_t)p.arg, 0);
        return;
    }
    if (p.count != 18)
        fail_msg("the peer read %ld (%s) instead of the 18-byte echo", p.count,
                 p.count < 0 ? gnutls_strerror((int)p.count) : "bytes");
    assert_int_equal((int)(intptr_t)p.arg, 1);
}

/* ---- The AEAD record limit on kTLS TX, lowered: records counted as the
 * kernel cuts them ---- */

#define LIMIT_SLACK 1024     /* the library renews the key this many records early */
#define LIMIT_RECORDS 40     /* records allowed under one key in this test */
#define SMALL 1000           /* bytes per write: 16 writes and more fill one record */
#define SMALL_WRITES 2000

static struct {
    int records_before_ku;   /* data records the peer read before our KeyUpdate */
    int records;
    bool ku_seen;
    long bytes;
} lim;

static int note_ku(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                   const gnutls_datum_t *msg)
{
    (void)s;
    (void)when;
    (void)msg;
    if (htype == GNUTLS_HANDSHAKE_KEY_UPDATE && incoming && !lim.ku_seen) {
        lim.ku_seen = true;
        lim.records_before_ku = lim.records;
    }
    return 0;
}

/* Reads every record (gnutls_record_recv returns at most one record each). */
static void count_records(tf_gnutls_peer *p)
{
    char buf[32768];
    ssize_t n;

    gnutls_handshake_set_hook_function(p->s, GNUTLS_HANDSHAKE_KEY_UPDATE, GNUTLS_HOOK_PRE, note_ku);
    while (lim.bytes < (long)SMALL * SMALL_WRITES) {
        n = gnutls_record_recv(p->s, buf, sizeof(buf));
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0) {
            p->result = (int)n;
            return;
        }
        lim.records++;
        lim.bytes += n;
    }
}

static void on_small_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct echo *e = arg;

    (void)f;
    if (r->status != TLSFLOW_OK) {
        e->failed = 1;
        e->error = r->error;
    }
}

static void on_open_write_small(tlsflow *f, const tlsflow_result *r, void *arg)
{
    static uint8_t data[SMALL];
    struct echo *e = arg;

    e->open_done = 1;
    if (r->status != TLSFLOW_OK)
        return;
    e->flow = f;
    memset(data, 'r', sizeof(data));
    for (int i = 0; i < SMALL_WRITES; i++)
        assert_int_equal(tlsflow_write(f, data, sizeof(data), on_small_written, e), 0);
}

static void test_record_limit_counts_kernel_records(void **s)
{
    static struct echo e;
    tf_gnutls_peer p = { .script = count_records };
    tlsflow_loop *loop;
    tlsflow_config *cfg;
    tlsflow_info info;
    int a, b;

    (void)s;
    memset(&e, 0, sizeof(e));
    memset(&lim, 0, sizeof(lim));
    cfg = tf_config(TLSFLOW_SERVER, TLS13, 3000);
    cfg->test_tx_record_limit = LIMIT_SLACK + LIMIT_RECORDS;
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    tf_tcp_pair(&a, &b);
    assert_int_equal(tlsflow_wrap_fd(loop, cfg, b, NULL, on_open_write_small, &e), 0);
    p.priority = TLS13;
    tf_gnutls_peer_start(&p, a);
    tf_run_until_flag(loop, &e.open_done, 8000, "the flow to open");
    assert_non_null(e.flow);
    assert_int_equal(tlsflow_get_info(e.flow, &info), 0);
    if (!info.ktls_tx) {
        tlsflow_free(e.flow);
        e.freed = 1;
        finish(&p, &e, loop, cfg);
        if (expect_ktls())
            fail_msg("TLSFLOW_EXPECT_KTLS=1 but the send key is not in the kernel");
        print_message("skipped: the kernel does not hold the send key (the limit is GnuTLS's then)\n");
        skip();
    }
    finish(&p, &e, loop, cfg);
    if (e.failed && e.error.code == TLSFLOW_E_REKEY) {
        /* Before 6.14 the kernel cannot take a new key: the flow ends at the
         * limit instead of wearing the key out. */
        print_message("kernel without rekey: %s after %d records\n", tlsflow_error_message(e.error),
                      lim.records);
        assert_true(lim.records >= LIMIT_RECORDS - 4 && lim.records <= LIMIT_RECORDS + 4);
        return;
    }
    print_message("%d records (%ld bytes), KeyUpdate after %d\n", lim.records, lim.bytes,
                  lim.records_before_ku);
    assert_false(e.failed);
    assert_int_equal(lim.bytes, (long)SMALL * SMALL_WRITES);
    assert_true(lim.ku_seen);
    /* Counted per started 16 KiB of each 1000-byte send, 40 records would be
     * 40 sends (40 kB): the kernel cuts 16 KiB records from them. */
    assert_true(lim.records_before_ku >= LIMIT_RECORDS - 4 && lim.records_before_ku <= LIMIT_RECORDS + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_before_small_write),
        cmocka_unit_test(test_key_update_storm),
        cmocka_unit_test(test_reply_with_kernel_tx_only),
        cmocka_unit_test(test_record_limit_counts_kernel_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
