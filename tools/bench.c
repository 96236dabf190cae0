/* tlsflow-bench: a TLS load generator for any server (tlsflow-serve, nginx,
 * `openssl s_server -WWW`).  Threads each run a tlsflow_loop with their share
 * of the connections (bench_conn.c); this file parses options, times the run
 * and prints the report. */
#include "bench.h"
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "tlsflow-bench"

static const char usage[] =
"usage: " PROG " throughput|handshake|latency|idle [options]\n"
"\n"
"  throughput   N connections for the duration: --path GETs on keep-alive,\n"
"               or --echo streams bytes and reads them back; MB/s, requests/s\n"
"  handshake    a new connection per handshake (close_notify after it);\n"
"               --resume resumes with the tickets the config kept\n"
"  latency      small request/response round trips: p50/p99/p99.9\n"
"  idle         opens N connections and holds them (memory per connection)\n"
"\n"
"  --host H --port P          server (default 127.0.0.1:4433)\n"
"  --connections N            concurrent connections (default 1)\n"
"  --duration S               seconds (default 10)\n"
"  --threads N                client threads, one loop each (default 1)\n"
"  --path /FILE | --echo      HTTP GET, or echo (default echo)\n"
"  --size N                   echo bytes per write (default 16384; latency 64)\n"
"  --resume                   handshake: allow session resumption\n"
"  --ca FILE | --insecure     trust anchors, or no certificate verification\n"
"  --priority STR             GnuTLS priority string\n"
"  --ktls auto|require|off    kernel TLS (default auto)\n"
"  --json                     one JSON object on stdout instead of the text report\n"
"  --quiet                    no progress line (shown each second when stderr is a terminal)\n"
"  --help, --version\n"
"\n"
"CPU seconds per GB are this process's user+system time (getrusage).\n";

enum { OPT_HOST = 256, OPT_PORT, OPT_CONNS, OPT_DUR, OPT_THREADS, OPT_PATH, OPT_ECHO, OPT_SIZE,
       OPT_RESUME, OPT_CA, OPT_INSECURE, OPT_PRIO, OPT_KTLS, OPT_JSON, OPT_QUIET, OPT_HELP,
       OPT_VERSION };

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"connections", required_argument, NULL, OPT_CONNS},
    {"duration", required_argument, NULL, OPT_DUR},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"path", required_argument, NULL, OPT_PATH},
    {"echo", no_argument, NULL, OPT_ECHO},
    {"size", required_argument, NULL, OPT_SIZE},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"ca", required_argument, NULL, OPT_CA},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"priority", required_argument, NULL, OPT_PRIO},
    {"ktls", required_argument, NULL, OPT_KTLS},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char *const kind_names[] = {"throughput", "handshake", "latency", "idle"};

static void *thread_main(void *arg)
{
    tf_bench_run(arg);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e3;
}

/* Sums the threads' results into total (latency samples merged and sorted). */
static void merge(struct bench_thread *th, unsigned n, struct bench_result *total)
{
    size_t lat = 0;
    memset(total, 0, sizeof(*total));
    for (unsigned i = 0; i < n; i++)
        lat += th[i].res.lat_n;
    total->lat_ns = lat ? malloc(lat * sizeof(uint64_t)) : NULL;
    for (unsigned i = 0; i < n; i++) {
        struct bench_result *r = &th[i].res;
        total->bytes += r->bytes;
        total->requests += r->requests;
        total->handshakes += r->handshakes;
        total->resumed += r->resumed;
        total->connect_errors += r->connect_errors;
        total->errors += r->errors;
        total->flows += r->flows;
        total->ktls_tx += r->ktls_tx;
        total->ktls_rx += r->ktls_rx;
        if (total->lat_ns && r->lat_n) {
            memcpy(total->lat_ns + total->lat_n, r->lat_ns, r->lat_n * sizeof(uint64_t));
            total->lat_n += r->lat_n;
        }
        if (!total->first_error[0] && r->first_error[0])
            memcpy(total->first_error, r->first_error, sizeof(total->first_error));
        free(r->lat_ns);
    }
    if (total->lat_n)
        qsort(total->lat_ns, total->lat_n, sizeof(uint64_t), cmp_u64);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void report(const struct bench_opts *o, const struct bench_result *r, double secs,
                   double cpu, int json)
{
    double mb = (double)r->bytes / 1e6, gb = (double)r->bytes / 1e9;
    double p50 = percentile_us(r->lat_ns, r->lat_n, 0.50);
    double p99 = percentile_us(r->lat_ns, r->lat_n, 0.99);
    double p999 = percentile_us(r->lat_ns, r->lat_n, 0.999);
    const char *what = o->path ? o->path : "echo";

    if (json) {
        printf("{\"mode\":\"%s\",\"target\":", kind_names[o->kind]);
        json_string(what);
        printf(",\"host\":");
        json_string(o->host);
        printf(",\"port\":");
        json_string(o->port);
        printf(",\"connections\":%u,\"threads\":%u,\"duration_s\":%.3f,"
               "\"bytes\":%llu,\"mb_per_s\":%.2f,\"requests\":%llu,\"requests_per_s\":%.1f,"
               "\"handshakes\":%llu,\"handshakes_per_s\":%.1f,\"resumed\":%llu,"
               "\"connect_errors\":%llu,\"errors\":%llu,\"cpu_s\":%.3f,\"cpu_s_per_gb\":%.3f,"
               "\"flows\":%llu,\"ktls_tx_flows\":%llu,\"ktls_rx_flows\":%llu,"
               "\"latency_us\":{\"samples\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f}",
               o->connections, o->threads, secs, (unsigned long long)r->bytes, mb / secs,
               (unsigned long long)r->requests, (double)r->requests / secs,
               (unsigned long long)r->handshakes, (double)r->handshakes / secs,
               (unsigned long long)r->resumed, (unsigned long long)r->connect_errors,
               (unsigned long long)r->errors, cpu, gb > 0 ? cpu / gb : 0.0,
               (unsigned long long)r->flows, (unsigned long long)r->ktls_tx,
               (unsigned long long)r->ktls_rx, r->lat_n, p50, p99, p999);
        if (r->first_error[0]) {
            printf(",\"first_error\":");
            json_string(r->first_error);
        }
        printf("}\n");
        return;
    }
    printf(PROG " %s: %s:%s %s, %u connections, %u threads, %.2f s\n", kind_names[o->kind],
           o->host, o->port, what, o->connections, o->threads, secs);
    if (o->kind != BENCH_HANDSHAKE && o->kind != BENCH_IDLE) {
        printf("  transfer    %.1f MB  %.2f MB/s\n", mb, mb / secs);
        printf("  requests    %llu  %.1f/s\n", (unsigned long long)r->requests,
               (double)r->requests / secs);
    }
    printf("  handshakes  %llu  %.1f/s  (%llu resumed)\n", (unsigned long long)r->handshakes,
           (double)r->handshakes / secs, (unsigned long long)r->resumed);
    if (gb > 0)
        printf("  cpu         %.2f s  %.3f s/GB\n", cpu, cpu / gb);
    else
        printf("  cpu         %.2f s\n", cpu);
    printf("  kTLS        tx %llu/%llu  rx %llu/%llu flows\n", (unsigned long long)r->ktls_tx,
           (unsigned long long)r->flows, (unsigned long long)r->ktls_rx, (unsigned long long)r->flows);
    if (r->lat_n)
        printf("  latency     p50 %.1f us  p99 %.1f us  p99.9 %.1f us  (%zu samples)\n",
               p50, p99, p999, r->lat_n);
    if (r->errors || r->connect_errors || r->first_error[0])
        printf("  errors      %llu connect, %llu other%s%s\n", (unsigned long long)r->connect_errors,
               (unsigned long long)r->errors, r->first_error[0] ? "; first: " : "", r->first_error);
}

static void progress(struct bench_thread *th, unsigned n, double elapsed, uint64_t *last, double dt)
{
    uint64_t cur[3] = {0, 0, 0};
    for (unsigned i = 0; i < n; i++) {
        cur[0] += atomic_load(&th[i].live.bytes);
        cur[1] += atomic_load(&th[i].live.requests);
        cur[2] += atomic_load(&th[i].live.handshakes);
    }
    fprintf(stderr, "\r[%5.1fs] %9.2f MB/s %9.1f req/s %8.1f hs/s \033[K", elapsed,
            (double)(cur[0] - last[0]) / 1e6 / dt, (double)(cur[1] - last[1]) / dt,
            (double)(cur[2] - last[2]) / dt);
    memcpy(last, cur, sizeof(cur));
}

/* The progress line's clock: a repeating tlsflow timer on a loop of the main
 * thread's own, which tlsflow_loop_run runs until the timer stops at the end
 * of the run.  It only displays: the threads end the run themselves. */
struct ticker {
    struct bench_thread *th;
    unsigned n;
    double t0, last_t, end_at;
    uint64_t last[3];
};

static void on_tick(tlsflow_timer *tm, void *arg)
{
    struct ticker *k = arg;
    double t = tf_now_s(), left = k->end_at - t;

    if (t > k->last_t)
        progress(k->th, k->n, t - k->t0, k->last, t - k->last_t);
    k->last_t = t;
    if (left < 1.0) {   /* one last tick at the end, then the loop has nothing left */
        tlsflow_timer_stop(tm);
        if (left > 0.05)
            tlsflow_timer_start(tm, (unsigned)(left * 1000), 0, on_tick, k);
    }
}

static void show_progress(struct bench_thread *th, unsigned n, double t0, double end_at)
{
    struct ticker k = {.th = th, .n = n, .t0 = t0, .last_t = t0, .end_at = end_at};
    tlsflow_loop *loop = NULL;
    tlsflow_timer *tm = NULL;

    if (tlsflow_loop_new(&loop, 4) < 0)
        return;   /* no progress line: the run goes on */
    if (tlsflow_timer_new(loop, &tm) == 0 && tlsflow_timer_start(tm, 1000, 1000, on_tick, &k) == 0)
        tlsflow_loop_run(loop);
    tlsflow_loop_free(loop);   /* frees the timer */
}

int main(int argc, char **argv)
{
    struct tf_tls_opts tls = {0};
    struct bench_opts o = {.host = "127.0.0.1", .port = "4433", .connections = 1,
                           .threads = 1, .duration = 10};
    int json = 0, resume = 0, quiet = 0, opt, ret = 1;
    unsigned long v;
    tlsflow_config *cfg = NULL;

    /* options and the subcommand in any order (getopt moves it to the end) */
    int kind = -1;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HOST: o.host = optarg; break;
        case OPT_PORT:
            if (tf_parse_ulong(optarg, 1, 65535, &v) < 0)
                goto bad;
            o.port = optarg;
            break;
        case OPT_CONNS:
            if (tf_parse_ulong(optarg, 1, 1000000, &v) < 0)
                goto bad;
            o.connections = (unsigned)v;
            break;
        case OPT_DUR: {
            char *end;
            o.duration = strtod(optarg, &end);
            if (*end || !(o.duration > 0))
                goto bad;
            break;
        }
        case OPT_THREADS:
            if (tf_parse_ulong(optarg, 1, 256, &v) < 0)
                goto bad;
            o.threads = (unsigned)v;
            break;
        case OPT_PATH: o.path = optarg; break;
        case OPT_ECHO: o.path = NULL; break;
        case OPT_SIZE:
            if (tf_parse_ulong(optarg, 1, 64u << 20, &v) < 0)
                goto bad;
            o.size = v;
            break;
        case OPT_RESUME: resume = 1; break;
        case OPT_CA: tls.ca = optarg; break;
        case OPT_INSECURE: tls.insecure = 1; break;
        case OPT_PRIO: tls.priority = optarg; break;
        case OPT_KTLS:
            if (tf_parse_ktls(optarg, &tls.ktls) < 0)
                goto bad;
            break;
        case OPT_JSON: json = 1; break;
        case OPT_QUIET: quiet = 1; break;
        case 'h':
        case OPT_HELP: fputs(usage, stdout); return 0;
        case OPT_VERSION: printf(PROG " %s\n", tlsflow_version()); return 0;
        default: goto bad;
        }
    }
    if (optind + 1 == argc)
        for (int k = 0; k < 4; k++)
            if (strcmp(argv[optind], kind_names[k]) == 0)
                kind = k;
    if (kind < 0) {
        fprintf(stderr, PROG ": %s\n", optind < argc ? "unknown subcommand" : "no subcommand");
        goto bad;
    }
    o.kind = (enum bench_kind)kind;
    if (o.path && o.path[0] != '/')
        goto bad;
    if (!o.size)
        o.size = o.kind == BENCH_LATENCY ? 64 : 16384;
    if (o.threads > o.connections)
        o.threads = o.connections;
    /* Full handshakes unless --resume: the library resumes on its own whenever
     * the config kept a ticket. */
    if (o.kind == BENCH_HANDSHAKE && !resume)
        tls.no_resumption = 1;
    if (tf_tool_config(&cfg, TLSFLOW_CLIENT, &tls) < 0)
        goto out;
    o.cfg = cfg;
    signal(SIGPIPE, SIG_IGN);

    struct bench_thread *th = calloc(o.threads, sizeof(*th));
    pthread_t *tids = calloc(o.threads, sizeof(*tids));
    unsigned started = 0;
    if (!th || !tids)
        goto out_threads;
    double cpu0 = tf_cpu_s(), t0 = tf_now_s();
    o.end_at = t0 + o.duration;   /* each thread's loop has a timer for it */
    for (unsigned i = 0; i < o.threads; i++) {
        th[i].o = &o;
        th[i].nconns = o.connections / o.threads + (i < o.connections % o.threads);
        if (pthread_create(&tids[i], NULL, thread_main, &th[i]) != 0)
            break;
        started++;
    }
    /* The progress line on a terminal, once a second (--quiet: none). */
    int show = !json && !quiet && isatty(STDERR_FILENO);
    if (show)
        show_progress(th, started, t0, o.end_at);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    double secs = 0;   /* to the last thread's end of run, not its close grace */
    for (unsigned i = 0; i < started; i++)
        if (th[i].stopped_at - t0 > secs)
            secs = th[i].stopped_at - t0;
    if (secs <= 0)
        secs = o.duration;
    double cpu = tf_cpu_s() - cpu0;
    if (show)
        fprintf(stderr, "\r\033[K");

    struct bench_result total;
    merge(th, started, &total);
    report(&o, &total, secs, cpu, json);
    int worked = o.kind == BENCH_HANDSHAKE || o.kind == BENCH_IDLE ? total.handshakes > 0
                 : total.requests > 0 || total.bytes > 0;
    if (!worked)
        fprintf(stderr, PROG ": nothing completed%s%s\n", total.first_error[0] ? ": " : "",
                total.first_error);
    ret = worked ? 0 : 1;
    free(total.lat_ns);
out_threads:
    free(th);
    free(tids);
out:
    if (cfg)
        tlsflow_config_free(cfg);
    return ret;
bad:
    fputs(usage, stderr);
    return 2;
}
