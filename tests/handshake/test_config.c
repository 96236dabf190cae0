/* handshake/config.c: defaults, setters, priority validation, ALPN limits,
 * credentials files, and freezing at first use (setters then -EBUSY). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/x509.h>
#include <tlsflow.h>
#include "handshake/handshake.h"
#include "tf_hs_pair.h"
#include "tf_test.h"

static void test_defaults(void **state)
{
    tlsflow_config *c, *s;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(c->role, TLSFLOW_CLIENT);
    assert_int_equal(s->role, TLSFLOW_SERVER);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_REQUIRED);
    assert_int_equal(s->verify, TLSFLOW_VERIFY_NONE);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_AUTO);
    assert_int_equal(s->ktls, TLSFLOW_KTLS_AUTO);
    assert_int_equal(c->handshake_timeout_ms, 30000);
    assert_int_equal(s->handshake_timeout_ms, 30000);
    assert_false(c->live->frozen);
    assert_false(c->has_ca);
    assert_false(c->has_cert);
    assert_null(c->priority);
    assert_int_equal(c->nalpn, 0);
    assert_non_null(c->cred);
    tlsflow_config_free(c);
    tlsflow_config_free(s);
}

static void test_setters(void **state)
{
    tlsflow_config *c;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_OPTIONAL), 0);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_OPTIONAL);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_NONE), 0);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_NONE);
    assert_int_equal(tlsflow_config_set_verify(c, (tlsflow_verify)9), -EINVAL);
    assert_int_equal(c->verify, TLSFLOW_VERIFY_NONE);   /* unchanged by a refusal */
    assert_int_equal(tlsflow_config_set_ktls(c, TLSFLOW_KTLS_OFF), 0);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_OFF);
    assert_int_equal(tlsflow_config_set_ktls(c, TLSFLOW_KTLS_REQUIRE), 0);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_REQUIRE);
    assert_int_equal(tlsflow_config_set_ktls(c, (tlsflow_ktls_mode)9), -EINVAL);
    assert_int_equal(c->ktls, TLSFLOW_KTLS_REQUIRE);
    assert_int_equal(tlsflow_config_set_handshake_timeout(c, 0), 0);   /* none */
    assert_int_equal(c->handshake_timeout_ms, 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(c, 1234), 0);
    assert_int_equal(c->handshake_timeout_ms, 1234);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), 0);
    assert_true(c->has_ca);
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_CLIENT_CERT, TF_CLIENT_KEY), 0);
    assert_true(c->has_cert);
    tlsflow_config_free(c);
}

static void test_priority(void **state)
{
    static const char *good[] = {
        "NORMAL", "SECURE256", "NORMAL:-VERS-ALL:+VERS-TLS1.2",
        "NORMAL:-VERS-ALL:+VERS-TLS1.3", "PERFORMANCE:%SERVER_PRECEDENCE",
    };
    static const char *bad[] = {
        "", "NOT-A-KEYWORD", "NORMAL:+NO-SUCH-CIPHER", "NORMAL:-VERS-ALL:+VERS-TLS9.9", "NORMAL:%BOGUS",
    };
    tlsflow_config *c;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(tlsflow_config_set_priority(c, good[i]), 0);
        assert_non_null(c->priority);
        assert_string_equal(c->priority_str, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tlsflow_config_set_priority(c, bad[i]) != -EINVAL)
            fail_msg("priority \"%s\" was accepted", bad[i]);
        /* The last good one stays. */
        assert_string_equal(c->priority_str, good[sizeof(good) / sizeof(good[0]) - 1]);
    }
    tlsflow_config_free(c);
}

static void test_alpn(void **state)
{
    tlsflow_config *c;
    char n31[32], n32[33];
    const char *eight[] = { "h2", "http/1.1", "a", "b", "c", "d", "e", "f" };
    const char *nine[] = { "h2", "http/1.1", "a", "b", "c", "d", "e", "f", "g" };
    const char *with_empty[] = { "h2", "" };
    const char *with_null[] = { NULL };
    const char *max[] = { n31 };
    const char *over[] = { "h2", n32 };

    (void)state;
    /* GnuTLS 3.7.9 takes names of at most 31 bytes (RFC 7301 allows 255). */
    memset(n31, 'a', 31);
    n31[31] = 0;
    memset(n32, 'b', 32);
    n32[32] = 0;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_alpn(c, eight, 8), 0);
    assert_int_equal(c->nalpn, 8);
    assert_int_equal(c->alpn[1].size, 8);
    assert_memory_equal(c->alpn[1].data, "http/1.1", 8);
    /* Refusals leave the list as it was. */
    assert_int_equal(tlsflow_config_set_alpn(c, nine, 9), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, with_empty, 2), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, with_null, 1), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, over, 2), -EINVAL);
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 2), -EINVAL);
    assert_int_equal(c->nalpn, 8);
    assert_memory_equal(c->alpn[0].data, "h2", 2);
    assert_int_equal(tlsflow_config_set_alpn(c, max, 1), 0);
    assert_int_equal(c->nalpn, 1);
    assert_int_equal(c->alpn[0].size, 31);
    /* count 0 clears it. */
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 0), 0);
    assert_int_equal(c->nalpn, 0);
    tlsflow_config_free(c);
}

static void test_files(void **state)
{
    tlsflow_config *c;
    char path[] = "/tmp/tlsflow-cfg-XXXXXX";
    int fd;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CERT("missing.pem")), -ENOENT);
    assert_false(c->has_ca);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_true(tlsflow_config_set_ca_file(c, path) < 0);   /* empty: no certificate */
    assert_true(tlsflow_config_set_cert_file(c, path, path) < 0);
    unlink(path);
    assert_true(tlsflow_config_set_cert_file(c, TF_CERT("missing.pem"), TF_ECDSA_KEY) < 0);
    assert_true(tlsflow_config_set_cert_file(c, TF_ECDSA_CERT, TF_RSA_KEY) < 0);   /* mismatch */
    assert_false(c->has_cert);
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_RSA_CERT, TF_RSA_KEY), 0);
    /* A second pair (ECDSA beside RSA) is fine. */
    assert_int_equal(tlsflow_config_set_cert_file(c, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_true(c->has_cert);
    tlsflow_config_free(c);
}

static void assert_all_busy(tlsflow_config *c)
{
    const char *one[] = { "h2" };

    assert_int_equal(tlsflow_config_set_cert_file(c, TF_ECDSA_CERT, TF_ECDSA_KEY), -EBUSY);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), -EBUSY);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_OPTIONAL), -EBUSY);
    assert_int_equal(tlsflow_config_set_priority(c, "NORMAL"), -EBUSY);
    assert_int_equal(tlsflow_config_set_alpn(c, one, 1), -EBUSY);
    assert_int_equal(tlsflow_config_set_alpn(c, NULL, 0), -EBUSY);
    assert_int_equal(tlsflow_config_set_ktls(c, TLSFLOW_KTLS_OFF), -EBUSY);
    assert_int_equal(tlsflow_config_set_handshake_timeout(c, 5), -EBUSY);
    assert_int_equal(tlsflow_config_set_receive_budget(c, TLSFLOW_RECEIVE_BUDGET_MIN), -EBUSY);
    assert_int_equal(tlsflow_config_set_resumption(c, 0), -EBUSY);
    assert_int_equal(tlsflow_config_set_ktls_flags(c, 0), -EBUSY);
}

static void test_freeze(void **state)
{
    tlsflow_config *c, *s;

    (void)state;
    /* A server without a certificate cannot be used, and stays mutable. */
    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(tf_hs_config_freeze(s), -EINVAL);
    assert_false(s->live->frozen);
    assert_int_equal(tlsflow_config_set_cert_file(s, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tf_hs_config_freeze(s), 0);
    assert_true(s->live->frozen);
    assert_null(s->priority);
    assert_non_null(s->live->default_priority);   /* the default policy */
    assert_non_null(s->live->ticket_key.data);    /* resumption tickets */
    assert_int_equal(tf_hs_config_freeze(s), 0);   /* idempotent */
    assert_all_busy(s);

    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_priority(c, "NORMAL:-VERS-ALL:+VERS-TLS1.2"), 0);
    assert_int_equal(tf_hs_config_freeze(c), 0);
    assert_string_equal(c->priority_str, "NORMAL:-VERS-ALL:+VERS-TLS1.2");   /* kept */
    assert_null(c->live->default_priority);
    assert_null(c->live->ticket_key.data);
    assert_all_busy(c);
    tlsflow_config_free(c);
    tlsflow_config_free(s);

    /* A client that verifies nothing needs no trust store. */
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_verify(c, TLSFLOW_VERIFY_NONE), 0);
    assert_int_equal(tf_hs_config_freeze(c), 0);
    tlsflow_config_free(c);
    /* One relying on the system store: frozen, or refused when there is none. */
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    {
        int ret = tf_hs_config_freeze(c);
        assert_true(ret == 0 || ret == -ENOENT);
        assert_true(c->live->frozen == (ret == 0));
    }
    tlsflow_config_free(c);
}

/* ---- Freezing races with setters in other threads ---- */

static void never_called(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)r;
    (void)arg;
    fail_msg("a callback ran outside tlsflow_loop_run");
}

/* The trust list holds more than our one CA: the system store was loaded. */
static bool has_system_trust(tlsflow_config *c)
{
    gnutls_x509_trust_list_t tl;
    gnutls_x509_trust_list_iter_t it = NULL;
    gnutls_x509_crt_t crt;
    int n = 0;

    gnutls_certificate_get_trust_list(c->cred, &tl);
    while (n < 2 && gnutls_x509_trust_list_iter_get_ca(tl, &it, &crt) == 0) {
        gnutls_x509_crt_deinit(crt);
        n++;
    }
    if (it)
        gnutls_x509_trust_list_iter_deinit(it);
    return n > 1;
}

struct setter {
    tlsflow_config *cfg;
    atomic_int      started;
    int             ret;
};

static void *set_ca_thread(void *arg)
{
    struct setter *st = arg;

    atomic_store(&st->started, 1);
    st->ret = tlsflow_config_set_ca_file(st->cfg, TF_CA);
    return NULL;
}

/* One thread opens a flow (which freezes the config) while another sets the
 * CA: the setter either comes first (the flow uses the CA, -> 0) or after
 * (-EBUSY), never in between.  In between -- the setter checked, the flow
 * froze the config without a CA and loaded the system store, then the
 * setter wrote -- it would return 0 for a CA no flow uses, and both threads
 * would change the credentials at once.  Loading the CA file takes long
 * enough that a freeze started a little later lands inside an unlocked
 * check-then-write most of the time. */
static void test_freeze_races_setter(void **state)
{
    tlsflow_loop *loop;
    int wins = 0, busy = 0;

    (void)state;
    if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) != 0)
        skip();   /* no system store: the freeze would fail instead */
    assert_int_equal(tlsflow_loop_new(&loop, 4), 0);
    for (int i = 0; i < 200; i++) {
        struct setter st = { .ret = 1 };
        pthread_t th;
        int sv[2], ret;

        assert_int_equal(tlsflow_config_new(&st.cfg, TLSFLOW_CLIENT), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(pthread_create(&th, NULL, set_ca_thread, &st), 0);
        while (!atomic_load(&st.started))
            ;
        for (volatile int spin = 0; spin < (i % 20) * 500; spin++)
            ;
        ret = tlsflow_wrap_fd(loop, st.cfg, sv[0], "localhost", never_called, NULL);
        pthread_join(th, NULL);
        assert_int_equal(ret, 0);
        assert_true(st.cfg->live->frozen);
        if (st.ret == 0 && has_system_trust(st.cfg))
            fail_msg("round %d: set_ca_file returned 0 after the flow froze the config "
                     "(it took the system store: the CA was not set when it froze)", i);
        if (st.ret == 0)
            wins++;
        else if (st.ret == -EBUSY)
            busy++;
        else
            fail_msg("round %d: set_ca_file: %d", i, st.ret);
        /* The flow goes with the loop; the config after it. */
        tlsflow_loop_free(loop);
        assert_int_equal(tlsflow_loop_new(&loop, 4), 0);
        tlsflow_config_free(st.cfg);
        close(sv[1]);
    }
    print_message("setter first %d times, refused %d times\n", wins, busy);
    tlsflow_loop_free(loop);
}

/* Several setters in one thread, a freeze in another: after the freeze
 * every setter is refused and nothing changes any more. */
struct hammer {
    tlsflow_config *cfg;
    atomic_int      started, stop;
    unsigned        last_ok;     /* the last timeout a setter stored */
    int             refused;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    static const char *const one[] = { "h2" };

    atomic_store(&h->started, 1);
    for (unsigned i = 1; !atomic_load(&h->stop); i++) {
        if (tlsflow_config_set_handshake_timeout(h->cfg, i) == 0)
            h->last_ok = i;
        else
            h->refused++;
        (void)tlsflow_config_set_alpn(h->cfg, one, 1);
        (void)tlsflow_config_set_verify(h->cfg, TLSFLOW_VERIFY_REQUIRED);
        (void)tlsflow_config_set_priority(h->cfg, "NORMAL");
        if (h->refused)
            break;
    }
    return NULL;
}

static void test_freeze_while_setting(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        struct hammer h = { 0 };
        pthread_t th;
        unsigned frozen_timeout;

        assert_int_equal(tlsflow_config_new(&h.cfg, TLSFLOW_SERVER), 0);
        assert_int_equal(tlsflow_config_set_cert_file(h.cfg, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
        assert_int_equal(pthread_create(&th, NULL, hammer_thread, &h), 0);
        while (!atomic_load(&h.started))
            ;
        assert_int_equal(tf_hs_config_freeze(h.cfg), 0);
        pthread_mutex_lock(&h.cfg->live->lock);
        frozen_timeout = h.cfg->handshake_timeout_ms;
        pthread_mutex_unlock(&h.cfg->live->lock);
        pthread_join(th, NULL);
        assert_true(h.refused > 0);
        /* What the freeze saw is what stays, and it is the last accepted write. */
        assert_int_equal(h.cfg->handshake_timeout_ms, frozen_timeout);
        if (h.last_ok)
            assert_int_equal(h.last_ok, frozen_timeout);
        assert_all_busy(h.cfg);
        tlsflow_config_free(h.cfg);
    }
}

/* ---- Resumption data is wiped before it is freed ---- */

/* gnutls_free is a variable GnuTLS and tlsflow call through: the test's own
 * version looks at the bytes of the blocks it watches before freeing them. */
static gnutls_free_function real_gnutls_free;
static struct watch {
    void  *p;
    size_t size;
    bool   freed, wiped;
} watches[TF_CACHE_SLOTS];

static void watching_free(void *p)
{
    for (size_t i = 0; p && i < TF_CACHE_SLOTS; i++) {
        struct watch *w = &watches[i];
        size_t nz = 0;
        if (w->p != p || w->freed)
            continue;
        for (size_t j = 0; j < w->size; j++)
            nz += ((const uint8_t *)p)[j] != 0;
        w->freed = true;
        w->wiped = nz == 0;
    }
    real_gnutls_free(p);
}

static void watch_begin(void)
{
    memset(watches, 0, sizeof(watches));
    real_gnutls_free = gnutls_free;
    gnutls_free = watching_free;
}

static void watch_end(void)
{
    gnutls_free = real_gnutls_free;
}

static void watch(size_t i, const gnutls_datum_t *d)
{
    watches[i].p = d->data;
    watches[i].size = d->size;
}

static void expect_wiped(size_t i, const char *what)
{
    if (!watches[i].freed)
        fail_msg("%s: the old session data was not freed", what);
    if (!watches[i].wiped)
        fail_msg("%s: the session data was freed without being wiped", what);
}

/* A TLS 1.2 handshake between a client and a server session over buffers:
 * the client stores its ticket in ccfg's cache under key. */
static void handshake_in_memory(tlsflow_config *ccfg, tlsflow_config *scfg, const char *key)
{
    tf_hs_end c, s;

    tf_hs_pair_init(&c, &s, ccfg, scfg, key);
    tf_hs_pair_handshake(&c, &s);
    tf_hs_pair_free(&c, &s);
}

static struct tf_ticket *cached(tlsflow_config *c, const char *key)
{
    for (size_t i = 0; i < TF_CACHE_SLOTS; i++)
        if (c->live->cache[i].key && strcmp(c->live->cache[i].key, key) == 0)
            return &c->live->cache[i];
    return NULL;
}

static void test_ticket_replaced_wiped(void **state)
{
    tlsflow_config *c, *s;
    struct tf_ticket *t;

    (void)state;
    assert_int_equal(tlsflow_config_new(&s, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(s, TF_ECDSA_CERT, TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(c, TF_CA), 0);
    /* TLS 1.2: the ticket is there when the handshake ends. */
    assert_int_equal(tlsflow_config_set_priority(c, "NORMAL:-VERS-ALL:+VERS-TLS1.2"), 0);
    assert_int_equal(tf_hs_config_freeze(c), 0);
    assert_int_equal(tf_hs_config_freeze(s), 0);
    handshake_in_memory(c, s, "host:1");
    t = cached(c, "host:1");
    assert_non_null(t);
    assert_non_null(t->data.data);
    assert_true(t->data.size > 0);
    watch_begin();
    watch(0, &t->data);
    /* The next session with that server replaces the ticket. */
    handshake_in_memory(c, s, "host:1");
    watch_end();
    expect_wiped(0, "replacing a ticket");
    assert_non_null(cached(c, "host:1")->data.data);
    tlsflow_config_free(c);
    tlsflow_config_free(s);
}

/* A config's cached tickets are wiped when it is freed. */
static void test_free_with_cache_wipes(void **state)
{
    tlsflow_config *c;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    for (size_t i = 0; i < 3; i++) {
        struct tf_ticket *t = &c->live->cache[i * 5];
        char key[32];
        snprintf(key, sizeof(key), "host-%zu:443", i);
        t->key = strdup(key);
        t->data.size = 48;
        t->data.data = gnutls_malloc(t->data.size);
        memset(t->data.data, 0xa5, t->data.size);
    }
    watch_begin();
    for (size_t i = 0; i < 3; i++)
        watch(i, &c->live->cache[i * 5].data);
    tlsflow_config_free(c);
    watch_end();
    for (size_t i = 0; i < 3; i++)
        expect_wiped(i, "freeing the config");
}

/* A config with cached tickets frees them (valgrind checks the leak side). */
static void test_free_with_cache(void **state)
{
    tlsflow_config *c;

    (void)state;
    assert_int_equal(tlsflow_config_new(&c, TLSFLOW_CLIENT), 0);
    c->live->cache[3].key = strdup("host:443");
    c->live->cache[3].data.data = gnutls_malloc(16);
    c->live->cache[3].data.size = 16;
    tlsflow_config_free(c);
    tlsflow_config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_setters),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_freeze),
        cmocka_unit_test(test_free_with_cache),
        cmocka_unit_test(test_freeze_races_setter),
        cmocka_unit_test(test_freeze_while_setting),
        cmocka_unit_test(test_ticket_replaced_wiped),
        cmocka_unit_test(test_free_with_cache_wipes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
