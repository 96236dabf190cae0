/* Test harness for flow-level tests (api/, ring/): a loop with a tlsflow server
 * and client config, a listener on 127.0.0.1, bounded loop runs and small
 * callback recorders.  Include after <cmocka.h>. */
#ifndef TF_HARNESS_H
#define TF_HARNESS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tlsflow.h>
#include "tf_test.h"

static inline long long h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until cond holds; a hang fails the test after ms. */
#define RUN_UNTIL(loop, cond, ms)                                                   \
    do {                                                                            \
        long long h_deadline_ = h_now_ms() + (ms);                                  \
        while (!(cond)) {                                                           \
            int h_r_ = tlsflow_loop_run_once((loop), 20);                           \
            if (h_r_ < 0)                                                           \
                fail_msg("run_once: %d", h_r_);                                     \
            if (h_now_ms() > h_deadline_)                                           \
                fail_msg("timed out after %d ms waiting for: %s", (int)(ms), #cond); \
        }                                                                           \
    } while (0)

/* Runs the loop for about ms, whatever happens. */
static inline void h_spin(tlsflow_loop *loop, int ms)
{
    long long end = h_now_ms() + ms;

    while (h_now_ms() < end)
        assert_true(tlsflow_loop_run_once(loop, 10) >= 0);
}

/* Set around calls that submit: a callback seeing it set ran inside the call. */
static int h_in_call __attribute__((unused));
#define H_CALL(expr) (h_in_call = 1, h_call_ret_ = (expr), h_in_call = 0, h_call_ret_)
static int h_call_ret_ __attribute__((unused));

/* One completion, recorded. */
struct h_done {
    int            n;          /* times called */
    tlsflow       *flow;
    tlsflow_status status;
    size_t         len;
    tlsflow_error  err;
    int            reentered;  /* ran inside a submitting call */
};

static inline void h_on_done(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct h_done *d = arg;

    d->n++;
    d->flow = f;
    d->status = r->status;
    d->len = r->len;
    d->err = r->error;
    d->reentered |= h_in_call;
}

/* Reads into a buffer until EOF, an error or cap bytes (rearming each time). */
struct h_sink {
    uint8_t      *buf;
    size_t        cap, got;
    int           reads, eof, errors;
    tlsflow_error err;
    int           stop_at_cap;   /* do not rearm once cap bytes came */
    int           reentered;
};

static inline void h_on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct h_sink *s = arg;

    s->reads++;
    s->reentered |= h_in_call;
    if (r->status == TLSFLOW_OK) {
        if (s->got + r->len > s->cap)
            fail_msg("read %zu bytes past the %zu expected", s->got + r->len - s->cap, s->cap);
        assert_true(r->len > 0);
        memcpy(s->buf + s->got, r->data, r->len);
        s->got += r->len;
        if (s->stop_at_cap && s->got == s->cap)
            return;
        assert_int_equal(tlsflow_read(f, h_on_read, s), 0);
    } else if (r->status == TLSFLOW_EOF) {
        s->eof++;
    } else {
        s->errors++;
        s->err = r->error;
    }
}

/* A loop, configs, a listener on 127.0.0.1:0 and the last flows opened. */
struct h_env {
    tlsflow_loop     *loop;
    tlsflow_config   *scfg, *ccfg;
    tlsflow_listener *ls;
    char              port[16];
    struct h_done     acc, con;    /* the server's on_flow, the client's connect */
};

static inline void h_env_configs(struct h_env *e, const char *cert, const char *key)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(tlsflow_loop_new(&e->loop, 0), 0);
    assert_int_equal(tlsflow_config_new(&e->scfg, TLSFLOW_SERVER), 0);
    assert_int_equal(tlsflow_config_set_cert_file(e->scfg, cert ? cert : TF_ECDSA_CERT,
                                                  key ? key : TF_ECDSA_KEY), 0);
    assert_int_equal(tlsflow_config_new(&e->ccfg, TLSFLOW_CLIENT), 0);
    assert_int_equal(tlsflow_config_set_ca_file(e->ccfg, TF_CA), 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(e->scfg, 5000), 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(e->ccfg, 5000), 0);
}

static inline void h_env_listen(struct h_env *e, const char *host)
{
    assert_int_equal(tlsflow_listen(e->loop, e->scfg, host, "0", h_on_done, &e->acc, &e->ls), 0);
    snprintf(e->port, sizeof(e->port), "%d", tlsflow_listener_port(e->ls));
}

static inline void h_env_init(struct h_env *e)
{
    h_env_configs(e, NULL, NULL);
    h_env_listen(e, "127.0.0.1");
}

/* Connects host:port and waits for both ends; asserts both opened. */
static inline void h_env_pair(struct h_env *e, const char *host, tlsflow **srv, tlsflow **cli)
{
    int acc = e->acc.n, con = e->con.n;

    memset(&e->con, 0, sizeof(e->con));
    e->con.n = con;
    assert_int_equal(tlsflow_connect(e->loop, e->ccfg, host, e->port, h_on_done, &e->con), 0);
    RUN_UNTIL(e->loop, e->acc.n > acc && e->con.n > con, 5000);
    if (e->con.status != TLSFLOW_OK)
        fail_msg("connect: %s", tlsflow_error_message(e->con.err));
    if (e->acc.status != TLSFLOW_OK)
        fail_msg("accept: %s", tlsflow_error_message(e->acc.err));
    assert_non_null(e->acc.flow);
    assert_non_null(e->con.flow);
    *srv = e->acc.flow;
    *cli = e->con.flow;
}

/* Frees everything; flows still open go with the loop. */
static inline void h_env_fini(struct h_env *e)
{
    if (e->ls)
        tlsflow_listener_close(e->ls);
    for (int i = 0; i < 5; i++)
        assert_true(tlsflow_loop_run_once(e->loop, 0) >= 0);
    tlsflow_loop_free(e->loop);
    tlsflow_config_free(e->scfg);
    tlsflow_config_free(e->ccfg);
    memset(e, 0, sizeof(*e));
}

/* Deterministic bytes. */
static inline void h_fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i + seed) * 2654435761u >> 13);
}

#endif
