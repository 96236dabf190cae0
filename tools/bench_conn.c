/* The connections of one tlsflow-bench thread.
 *
 * A connection slot registers tlsflow_on_release on each flow it opens and
 * opens the next one only from that callback, after the freed flow's last
 * completion (cancellations included), so a late callback never meets the
 * next flow.  At most MAX_OPENING connects are in flight, so that a large
 * --connections does not overrun the server's accept queue.  The run's end is
 * a tlsflow timer: close_notify everywhere, CLOSE_GRACE_MS for the peers, then
 * every flow is freed and the loop stops once all are released (or
 * CLOSE_GRACE_MS later still). */
#include "bench.h"
#include "common.h"
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPENING   128
#define MAX_RESP_HEAD 65536
#define MAX_SAMPLES   (1u << 24)
#define ECHO_WINDOW   4          /* echo: writes in flight or unanswered */
#define CLOSE_GRACE_MS 1000
#define RETRY_MS      50         /* after tlsflow_connect itself failed */

struct thread_state;

struct bconn {
    struct bench_thread *t;
    struct thread_state *s;
    tlsflow  *flow;
    int       is_busy;           /* connecting, open, or freed and not yet released */
    int       is_reading, is_closing;
    /* HTTP response being read */
    char     *head;
    size_t    head_len;
    int       in_body, body_to_eof, keep_alive;
    uint64_t  body_left;
    /* echo */
    uint64_t  sent, received, target;
    unsigned  writes;
    uint64_t  t0;                /* when the current request started */
};

struct thread_state {
    struct bench_thread *t;
    tlsflow_loop *loop;
    struct bconn *conns;
    unsigned opening;            /* connects in flight */
    unsigned busy;               /* slots with is_busy */
    unsigned next_slot;          /* where open_more looks first */
    int      is_stopping;        /* the run is over: open nothing more */
    int      is_killed;          /* past the close grace: flows are freed */
    tlsflow_timer *timer;        /* the run's end, then the close grace */
    tlsflow_timer *retry;        /* open_more again after a failed tlsflow_connect */
    char     *request;           /* the HTTP GET */
    size_t    request_len;
    char     *payload;           /* echo bytes */
};

static void start_read(struct bconn *c);

static void note_error(struct bench_result *r, const char *what, tlsflow_error err)
{
    if (!r->first_error[0])
        snprintf(r->first_error, sizeof(r->first_error), "%s: %s", what, tlsflow_error_message(err));
}

static void kill(struct bconn *c)
{
    if (!c->flow)
        return;
    tlsflow_free(c->flow);
    c->flow = NULL;
    c->is_reading = c->is_closing = 0;
    c->head_len = 0;
    c->in_body = 0;
    c->writes = 0;
}

static void sample(struct bconn *c)
{
    struct bench_result *r = &c->t->res;
    uint64_t ns = tf_now_ns() - c->t0;
    r->requests++;
    atomic_fetch_add_explicit(&c->t->live.requests, 1, memory_order_relaxed);
    if (r->lat_n == r->lat_cap && r->lat_cap < MAX_SAMPLES) {
        size_t cap = r->lat_cap ? r->lat_cap * 2 : 4096;
        uint64_t *p = realloc(r->lat_ns, cap * sizeof(*p));
        if (p) {
            r->lat_ns = p;
            r->lat_cap = cap;
        }
    }
    if (r->lat_n < r->lat_cap)
        r->lat_ns[r->lat_n++] = ns;
}

static void count_bytes(struct bconn *c, size_t n)
{
    c->t->res.bytes += n;
    atomic_fetch_add_explicit(&c->t->live.bytes, n, memory_order_relaxed);
}

/* ---- callbacks: a completion of a flow already freed (c->flow NULL, the
 * slot waiting for on_released) only returns ---- */

static void close_done(struct bconn *c, const tlsflow_result *res)
{
    (void)res;
    kill(c);
}
static void on_close(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct bconn *c = arg;
    (void)flow;
    if (c->flow)
        close_done(c, res);
}

static void start_close(struct bconn *c)
{
    if (c->is_closing)
        return;
    c->is_closing = 1;
    if (tlsflow_close(c->flow, on_close, c) < 0) {
        kill(c);
        return;
    }
    start_read(c);   /* the peer's close_notify (and any ticket) arrive here */
}

static void written(struct bconn *c, const tlsflow_result *res);

static void on_write(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct bconn *c = arg;
    (void)flow;
    if (c->flow)
        written(c, res);
}

static int submit_write(struct bconn *c, const void *buf, size_t len)
{
    if (tlsflow_write(c->flow, buf, len, on_write, c) < 0) {
        c->t->res.errors++;
        kill(c);
        return -1;
    }
    c->writes++;
    return 0;
}

static void send_request(struct bconn *c)
{
    struct thread_state *s = c->s;
    c->t0 = tf_now_ns();
    submit_write(c, s->request, s->request_len);
}

/* echo: keep up to ECHO_WINDOW writes out that the peer has not answered */
static void pump(struct bconn *c)
{
    const struct bench_opts *o = c->t->o;
    while (c->flow && c->writes < ECHO_WINDOW && c->sent - c->received < ECHO_WINDOW * o->size) {
        if (submit_write(c, c->s->payload, o->size) < 0)
            return;
        c->sent += o->size;
    }
}

static void send_probe(struct bconn *c)
{
    c->t0 = tf_now_ns();
    c->target = c->received + c->t->o->size;
    if (submit_write(c, c->s->payload, c->t->o->size) == 0)
        c->sent += c->t->o->size;
}

static void next_request(struct bconn *c)
{
    if (c->s->is_stopping)
        return;
    if (c->t->o->path)
        send_request(c);
    else if (c->t->o->kind == BENCH_LATENCY)
        send_probe(c);
    else
        pump(c);
}

static void written(struct bconn *c, const tlsflow_result *res)
{
    c->writes--;
    if (res->status != TLSFLOW_OK) {
        c->t->res.errors++;
        note_error(&c->t->res, "write", res->error);
        kill(c);
        return;
    }
    if (!c->t->o->path && c->t->o->kind == BENCH_THROUGHPUT)
        pump(c);
}

static void response_done(struct bconn *c)
{
    sample(c);
    c->in_body = 0;
    if (!c->keep_alive)
        start_close(c);   /* the next request goes on a new connection */
    else
        next_request(c);
}

/* Response bytes: the head goes through c->head, the body is only counted. */
static void http_feed(struct bconn *c, const char *p, size_t n)
{
    while (n && c->flow && !c->is_closing) {
        if (c->in_body) {
            size_t take = c->body_to_eof || c->body_left > n ? n : (size_t)c->body_left;
            count_bytes(c, take);
            p += take;
            n -= take;
            if (!c->body_to_eof && (c->body_left -= take) == 0)
                response_done(c);
            continue;
        }
        size_t room = MAX_RESP_HEAD - c->head_len, add = n < room ? n : room;
        memcpy(c->head + c->head_len, p, add);
        size_t before = c->head_len;
        c->head_len += add;
        tf_http_response resp;
        int r = tf_http_parse_response(c->head, c->head_len, MAX_RESP_HEAD, &resp);
        if (r == 0)
            return;
        if (r < 0 || resp.chunked || resp.status != 200) {
            c->t->res.errors++;
            if (!c->t->res.first_error[0])
                snprintf(c->t->res.first_error, sizeof(c->t->res.first_error),
                         r < 0 ? "malformed HTTP response" : resp.chunked
                               ? "chunked responses are not supported" : "HTTP status %d", resp.status);
            kill(c);
            return;
        }
        p += (size_t)r - before;
        n -= (size_t)r - before;
        c->head_len = 0;
        c->in_body = 1;
        c->keep_alive = resp.keep_alive;
        c->body_to_eof = !resp.has_length;
        c->body_left = resp.content_length;
        if (resp.has_length && resp.content_length == 0)
            response_done(c);
    }
}

static void read_done(struct bconn *c, const tlsflow_result *res)
{
    const struct bench_opts *o = c->t->o;
    c->is_reading = 0;
    if (res->status != TLSFLOW_OK) {
        int eof_framed = c->in_body && c->body_to_eof;
        /* a body framed by the connection's end is complete at EOF; servers like
         * `openssl s_server -WWW` end it without close_notify, counted apart */
        if (eof_framed && res->status == TLSFLOW_ERROR && res->error.code == TLSFLOW_E_TRUNCATED) {
            c->t->res.errors++;
            note_error(&c->t->res, "response end", res->error);
        }
        if (eof_framed) {
            c->in_body = 0;
            sample(c);
        } else if (res->status == TLSFLOW_ERROR && !c->is_closing) {
            c->t->res.errors++;
            note_error(&c->t->res, "read", res->error);
        }
        if (res->status == TLSFLOW_EOF && !c->is_closing)
            start_close(c);
        else if (res->status == TLSFLOW_ERROR)
            kill(c);
        return;
    }
    if (c->is_closing || o->kind == BENCH_HANDSHAKE || o->kind == BENCH_IDLE) {
        start_read(c);   /* discard */
        return;
    }
    if (o->path) {
        http_feed(c, res->data, res->len);
    } else {
        c->received += res->len;
        count_bytes(c, res->len);
        if (o->kind == BENCH_LATENCY) {
            if (c->received >= c->target) {
                sample(c);
                send_probe(c);
            }
        } else {
            pump(c);
        }
    }
    if (c->flow)
        start_read(c);
}
static void on_read(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct bconn *c = arg;
    (void)flow;
    if (c->flow)
        read_done(c, res);
}

static void start_read(struct bconn *c)
{
    if (c->is_reading || !c->flow)
        return;
    if (tlsflow_read(c->flow, on_read, c) < 0) {
        kill(c);
        return;
    }
    c->is_reading = 1;
}

/* ---- opening ---- */

static void open_more(struct thread_state *s);
static void begin_stop(struct thread_state *s);

/* The slot is free again: nothing of its last flow can call back. */
static void slot_idle(struct bconn *c)
{
    struct thread_state *s = c->s;
    c->is_busy = 0;
    s->busy--;
    if (s->is_stopping) {
        if (s->busy == 0)
            tlsflow_loop_stop(s->loop);   /* the timers need not run out */
        return;
    }
    open_more(s);
}

static void on_released(void *arg)
{
    slot_idle(arg);
}

static void on_open(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct bconn *c = arg;
    struct thread_state *s = c->s;
    struct bench_result *r = &c->t->res;
    tlsflow_info info;

    s->opening--;
    if (!flow || res->status != TLSFLOW_OK) {
        r->connect_errors++;
        note_error(r, "connect", res->error);
        if (flow)
            tlsflow_free(flow);   /* never ours: nothing of it calls back */
        /* a server that refuses everything: give up rather than spin */
        if (r->handshakes == 0 && r->connect_errors > 1000 + 10ull * c->t->nconns)
            begin_stop(s);
        slot_idle(c);
        return;
    }
    if (s->is_stopping || tlsflow_on_release(flow, on_released, c) < 0) {
        tlsflow_free(flow);
        slot_idle(c);
        return;
    }
    c->flow = flow;
    c->sent = c->received = 0;
    r->handshakes++;
    r->flows++;
    atomic_fetch_add_explicit(&c->t->live.handshakes, 1, memory_order_relaxed);
    if (tlsflow_get_info(flow, &info) == 0) {
        r->resumed += info.resumed != 0;
        r->ktls_tx += info.ktls_tx != 0;
        r->ktls_rx += info.ktls_rx != 0;
    }
    if (c->t->o->kind == BENCH_HANDSHAKE) {
        start_close(c);
        return;
    }
    start_read(c);
    if (c->t->o->kind != BENCH_IDLE)
        next_request(c);
    open_more(s);   /* a connect ended: the next free slot may open (idle flows never free theirs) */
}

static int open_conn(struct thread_state *s, struct bconn *c)
{
    const struct bench_opts *o = c->t->o;
    int ret = tlsflow_connect(s->loop, o->cfg, o->host, o->port, on_open, c);
    if (ret < 0) {
        c->t->res.connect_errors++;
        if (!c->t->res.first_error[0])
            snprintf(c->t->res.first_error, sizeof(c->t->res.first_error),
                     "tlsflow_connect: %s", strerror(-ret));
        return -1;
    }
    c->is_busy = 1;
    s->busy++;
    s->opening++;
    return 0;
}

static void on_retry(tlsflow_timer *tm, void *arg)
{
    (void)tm;
    open_more(arg);
}

/* Opens free slots, round robin, while fewer than MAX_OPENING connect. */
static void open_more(struct thread_state *s)
{
    unsigned n = s->t->nconns;
    for (unsigned k = 0; k < n && s->opening < MAX_OPENING && !s->is_stopping; k++) {
        struct bconn *c = &s->conns[s->next_slot];
        if (c->is_busy) {
            s->next_slot = (s->next_slot + 1) % n;
            continue;
        }
        if (open_conn(s, c) < 0) {   /* try again later rather than spin */
            if (tlsflow_timer_start(s->retry, RETRY_MS, 0, on_retry, s) < 0)
                begin_stop(s);
            return;
        }
        s->next_slot = (s->next_slot + 1) % n;
    }
}

/* ---- stopping ---- */

static void on_close_grace(tlsflow_timer *tm, void *arg)
{
    struct thread_state *s = arg;
    (void)tm;
    if (s->is_killed) {   /* connects that never ended: tlsflow_loop_free takes them */
        tlsflow_loop_stop(s->loop);
        return;
    }
    s->is_killed = 1;
    for (unsigned i = 0; i < s->t->nconns; i++)
        kill(&s->conns[i]);
    tlsflow_timer_start(s->timer, CLOSE_GRACE_MS, 0, on_close_grace, s);
}

/* The run is over: close_notify on every flow, a short wait for the peers'
 * close, then free what is left (on_close_grace). */
static void begin_stop(struct thread_state *s)
{
    if (s->is_stopping)
        return;
    s->is_stopping = 1;
    s->t->stopped_at = tf_now_s();
    tlsflow_timer_stop(s->retry);
    for (unsigned i = 0; i < s->t->nconns; i++)
        if (s->conns[i].flow)
            start_close(&s->conns[i]);
    if (s->busy == 0 ||
        tlsflow_timer_start(s->timer, CLOSE_GRACE_MS, 0, on_close_grace, s) < 0)
        tlsflow_loop_stop(s->loop);
}

static void on_run_end(tlsflow_timer *tm, void *arg)
{
    (void)tm;
    begin_stop(arg);
}

/* ---- the thread ---- */

static int setup(struct thread_state *s, struct bench_thread *t)
{
    const struct bench_opts *o = t->o;
    int ret = tlsflow_loop_new(&s->loop, t->nconns > 64 ? 4096 : 0);
    if (ret < 0) {
        snprintf(t->res.first_error, sizeof(t->res.first_error), "tlsflow_loop_new: %s", strerror(-ret));
        return -1;
    }
    s->conns = calloc(t->nconns ? t->nconns : 1, sizeof(*s->conns));
    if (!s->conns)
        return -1;
    for (unsigned i = 0; i < t->nconns; i++) {
        s->conns[i].t = t;
        s->conns[i].s = s;
        if (o->path && !(s->conns[i].head = malloc(MAX_RESP_HEAD)))
            return -1;
    }
    if (o->path) {
        int n = asprintf(&s->request, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsflow-bench\r\n\r\n",
                         o->path, o->host);
        if (n < 0) {
            s->request = NULL;
            return -1;
        }
        s->request_len = (size_t)n;
    } else {
        if (!(s->payload = malloc(o->size)))
            return -1;
        for (size_t i = 0; i < o->size; i++)
            s->payload[i] = (char)('a' + i % 26);
    }
    return 0;
}

void tf_bench_run(struct bench_thread *t)
{
    struct thread_state s = {.t = t};
    int ret;

    if (setup(&s, t) < 0 || tlsflow_timer_new(s.loop, &s.timer) < 0 ||
        tlsflow_timer_new(s.loop, &s.retry) < 0) {
        if (!t->res.first_error[0])
            snprintf(t->res.first_error, sizeof(t->res.first_error), "out of memory");
        t->res.errors++;
        goto out;
    }
    /* the run ends at the same moment for every thread */
    double left_ms = (t->o->end_at - tf_now_s()) * 1000.0;
    ret = tlsflow_timer_start(s.timer, left_ms > 1 ? (unsigned)left_ms : 1, 0, on_run_end, &s);
    if (ret < 0) {
        snprintf(t->res.first_error, sizeof(t->res.first_error), "tlsflow_timer_start: %s",
                 strerror(-ret));
        goto out;
    }
    open_more(&s);
    ret = tlsflow_loop_run(s.loop);
    if (ret < 0)
        snprintf(t->res.first_error, sizeof(t->res.first_error), "tlsflow_loop_run: %s",
                 strerror(-ret));
out:
    if (!t->stopped_at)
        t->stopped_at = tf_now_s();
    if (s.loop)
        tlsflow_loop_free(s.loop);   /* frees the timers and what never ended */
    if (s.conns)
        for (unsigned i = 0; i < t->nconns; i++)
            free(s.conns[i].head);
    free(s.conns);
    free(s.request);
    free(s.payload);
}
