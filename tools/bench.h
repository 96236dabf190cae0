/* tlsflow-bench internals: bench.c parses options, runs the threads and prints
 * the report; bench_conn.c drives the connections of one thread. */
#ifndef TF_TOOLS_BENCH_H
#define TF_TOOLS_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <tlsflow.h>

enum bench_kind { BENCH_THROUGHPUT, BENCH_HANDSHAKE, BENCH_LATENCY, BENCH_IDLE };

struct bench_opts {
    enum bench_kind kind;
    const char *host, *port;
    const char *path;            /* HTTP GET path, or NULL for echo */
    size_t      size;            /* echo: bytes per write (throughput) or per round trip (latency) */
    unsigned    connections;
    unsigned    threads;
    double      duration;
    double      end_at;          /* tf_now_s() when the run ends (start + duration) */
    const tlsflow_config *cfg;
};

/* Counters a thread updates; the main thread reads them for the progress line. */
struct bench_live {
    atomic_ullong bytes, requests, handshakes;
};

struct bench_result {
    uint64_t bytes;              /* payload received: response bodies, echoed bytes */
    uint64_t requests;           /* responses / echo round trips completed */
    uint64_t handshakes, resumed;
    uint64_t connect_errors, errors;
    uint64_t flows, ktls_tx, ktls_rx;
    uint64_t *lat_ns;            /* one sample per request (latency mode: per round trip) */
    size_t   lat_n, lat_cap;
    char     first_error[200];
};

struct bench_thread {
    const struct bench_opts *o;
    unsigned nconns;
    struct bench_live live;
    struct bench_result res;
    double stopped_at;           /* when its run ended (its own timer, or giving up) */
};

/* Runs one thread's connections until o->end_at; fills t->res. */
void tf_bench_run(struct bench_thread *t);

#endif
