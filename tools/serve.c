/* tlsflow-serve: a TLS echo or static-file server on tlsflow.
 *
 * One tlsflow_loop per worker thread, each with its own listener on the same
 * port (the library sets SO_REUSEPORT, so the kernel spreads connections).  The
 * main thread only waits for SIGINT/SIGTERM (blocked everywhere, taken with
 * sigtimedwait) and prints the statistics line; it stops a worker with a
 * tlsflow_loop_post, and the worker, whose thread sits in tlsflow_loop_run,
 * tells it when it is done with SIGUSR1.  SIGHUP reloads the certificates:
 * the main thread builds a new config from the same files and posts it to
 * every worker, whose listener takes it for new handshakes (open connections
 * keep the config they started with); files that do not load leave the old
 * config serving, with an error line.  Request, idle and send timeouts are
 * one tlsflow timer per connection (serve_conn.c), not a sweep; the shutdown
 * grace period is one more. */
#include "common.h"
#include "workers.h"
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define PROG "tlsflow-serve"

static const char usage[] =
"usage: " PROG " (--cert FILE --key FILE | --self-signed) (--echo | --root DIR) [options]\n"
"\n"
"Serves TLS on HOST:PORT with tlsflow; the first line on stdout is\n"
"\"listening on HOST:PORT\".  SIGINT/SIGTERM stop accepting, send close_notify\n"
"on every connection and exit 0.  SIGHUP reloads the certificates and keys\n"
"from their files for new connections (open ones keep theirs); files that do\n"
"not load leave the previous ones serving, with an error line.\n"
"\n"
"  --cert FILE, --key FILE   certificate chain and key (PEM); repeat the pair for\n"
"                            more names or key types (chosen by SNI and the client's\n"
"                            signature algorithms; the first pair is the default)\n"
"  --ocsp FILE               staple this DER OCSP response for the last --cert\n"
"                            (reloaded on SIGHUP; a stale or mismatched one is not\n"
"                            stapled, with an error line)\n"
"  --self-signed             make an ECDSA P-256 key and certificate at start\n"
"  --host H                  address to listen on (default 127.0.0.1)\n"
"  --port N                  port (default 4433; 0 = any free port)\n"
"  --echo                    send every byte back\n"
"  --root DIR                serve DIR's files over HTTP/1.1 (GET, HEAD)\n"
"  --threads N               worker threads, one loop each (default 1)\n"
"  --ticket-key FILE         session ticket key (64 bytes: openssl rand 64 > FILE);\n"
"                            processes with the same file resume each other's\n"
"                            tickets (reloaded on SIGHUP too); without it one\n"
"                            key made at start serves every reload\n"
"  --ktls auto|require|off   kernel TLS (default auto)\n"
"  --priority STR            GnuTLS priority string\n"
"  --alpn LIST               comma-separated ALPN protocols\n"
"  --stats-interval S        statistics line on stderr every S seconds (default 5, 0 = off)\n"
"  --grace S                 seconds to wait for peers' close_notify at exit (default 5)\n"
"  --request-timeout S       close a connection whose HTTP request is not complete\n"
"                            S seconds after its first byte (default 10; slow-loris)\n"
"  --idle-timeout S          close a connection that made no progress (nothing read,\n"
"                            no write completed) for S seconds (default 120)\n"
"  --send-timeout S          reset a connection whose pending writes made no progress\n"
"                            for S seconds, after trying close_notify (default 60; a\n"
"                            peer that never reads); files go out 1 MiB at a time, so\n"
"                            a download must move 1 MiB every S seconds\n"
"  --zerocopy-ro             kTLS TX: TLS_TX_ZEROCOPY_RO (files must not change\n"
"                            while they are sent)\n"
"  --no-pad                  kTLS RX: TLS_RX_EXPECT_NO_PAD (TLS 1.3)\n"
"  --help, --version\n";

/* One SIGHUP's config, posted to every worker: pending counts the workers
 * that have not taken it yet; the main thread's reference goes once none is
 * left (the listeners hold their own). */
struct reload {
    tlsflow_config *cfg;
    atomic_int      pending;
    struct reload  *next;
};

struct worker_slot {
    struct tf_worker base;        /* first (workers.h): thread, start-up, posts' lock */
    struct worker w;
    const tlsflow_config *cfg;
    const char *host;
    char port[16];
    int bound_port;
    struct reload *reload;   /* under base.lock: the config its next reload post installs */
};

/* What the main thread's SIGHUP needs. */
struct serve_main {
    const struct tf_tls_opts *tls;
    struct reload *reloads;
    int self_signed;
};

static unsigned grace_s = 5;

static void *worker_main(void *arg)
{
    struct worker_slot *s = arg;
    struct worker *w = &s->w;
    tlsflow_listener *lst = NULL;
    int ret = tlsflow_loop_new(&w->loop, 0);

    if (ret < 0) {
        fprintf(stderr, PROG ": thread %d: tlsflow_loop_new: %s\n", s->base.index, strerror(-ret));
        tf_worker_failed(&s->base);
        return NULL;
    }
    if (s->base.index == 0)
        fprintf(stderr, PROG ": io_uring set-up: %s\n", tlsflow_loop_ring_setup(w->loop));
    ret = tlsflow_listen(w->loop, s->cfg, s->host, s->port, tf_serve_accept, w, &lst);
    if (ret < 0) {
        fprintf(stderr, PROG ": thread %d: listen on %s:%s: %s%s\n", s->base.index, s->host, s->port,
                strerror(-ret), s->base.index > 0 && ret == -EADDRINUSE
                    ? " (the library did not set SO_REUSEPORT on the listening socket)" : "");
        tlsflow_loop_free(w->loop);
        w->loop = NULL;
        tf_worker_failed(&s->base);
        return NULL;
    }
    s->bound_port = tlsflow_listener_port(lst);
    w->listener = lst;
    ret = tlsflow_timer_new(w->loop, &w->grace);
    if (ret < 0) {
        fprintf(stderr, PROG ": thread %d: tlsflow_timer_new: %s\n", s->base.index, strerror(-ret));
        tlsflow_loop_free(w->loop);
        w->loop = NULL;
        tf_worker_failed(&s->base);
        return NULL;
    }
    tf_worker_started(&s->base, w->loop);

    /* Until the stop post has run and every connection is released, or the
     * grace is over (on_stop); the listener keeps it going till then. */
    ret = tlsflow_loop_run(w->loop);
    if (ret < 0)
        fprintf(stderr, PROG ": thread %d: tlsflow_loop_run: %s\n", s->base.index, strerror(-ret));

    tf_worker_stopping(&s->base);   /* no post from here on */
    if (w->listener)
        tlsflow_listener_close(w->listener);
    tf_serve_kill_all(w);   /* what the grace left, or after an error */
    tlsflow_loop_get_stats(w->loop, &w->loop_stats);
    tlsflow_loop_free(w->loop);   /* frees the grace timer too */
    w->loop = NULL;
    tf_serve_release_all(w);
    tf_worker_done(&s->base);
    return NULL;
}

static void on_grace_over(tlsflow_timer *t, void *arg)
{
    struct worker *w = arg;
    (void)t;
    tlsflow_loop_stop(w->loop);   /* the peers had their time; the worker drops the rest */
}

/* Posted by the main thread (tf_serve_stop set first): 1 stops accepting and
 * starts close_notify everywhere, with grace_s for the peers to answer; 2
 * drops every connection.  tlsflow_loop_run returns once the last connection
 * is released (serve_conn.c) or the grace is over, whichever comes first:
 * handshakes still under way are not waited for. */
static void on_stop(void *arg)
{
    struct worker *w = &((struct worker_slot *)arg)->w;
    if (!w->is_stopping) {
        w->is_stopping = 1;
        tlsflow_listener_close(w->listener);
        w->listener = NULL;
        size_t open = tf_serve_close_all(w);
        if (!w->conns)
            tlsflow_loop_stop(w->loop);   /* else the last on_released does */
        else if (open && tlsflow_timer_start(w->grace, grace_s * 1000u, 0, on_grace_over, w) < 0)
            tlsflow_loop_stop(w->loop);   /* no timer, no grace */
    }
    if (atomic_load(&tf_serve_stop) >= 2)
        tlsflow_loop_stop(w->loop);   /* the worker drops every connection */
}

/* Posted by the main thread after a SIGHUP: new handshakes use the new
 * config.  A later reload may have replaced it (then this one is done). */
static void on_reload(void *arg)
{
    struct worker_slot *s = arg;
    struct reload *r;
    int ret;

    pthread_mutex_lock(&s->base.lock);
    r = s->reload;
    s->reload = NULL;
    pthread_mutex_unlock(&s->base.lock);
    if (!r)
        return;
    if (s->w.listener && (ret = tlsflow_listener_set_config(s->w.listener, r->cfg)) < 0)
        fprintf(stderr, PROG ": thread %d: reload: %s\n", s->base.index, strerror(-ret));
    atomic_fetch_sub(&r->pending, 1);
}

/* Frees what every worker has taken (all of them with force: the workers
 * are gone). */
static void reloads_sweep(struct reload **list, int force)
{
    for (struct reload **pp = list; *pp;) {
        struct reload *r = *pp;
        if (force || atomic_load(&r->pending) == 0) {
            *pp = r->next;
            tlsflow_config_free(r->cfg);
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

/* A ticket key of this process's own: 64 random bytes in a memfd, read
 * through /proc/self/fd (the config API takes a path).  -1 when it cannot be
 * made: each config then makes its own, as the library does by default. */
static int process_ticket_key(char *path, size_t size)
{
    uint8_t key[64];
    int fd;

    if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
        return -1;
    fd = memfd_create("tlsflow-ticket-key", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key)) {
        close(fd);
        return -1;
    }
    explicit_bzero(key, sizeof(key));
    snprintf(path, size, "/proc/self/fd/%d", fd);
    return 0;   /* fd stays open for the process's life: reloads read it again */
}

static void log_loaded(const char *what, const struct tf_tls_opts *o)
{
    fprintf(stderr, PROG ": %s certificate %s (key %s)", what, o->cert, o->key ? o->key : o->cert);
    for (size_t i = 0; i < o->nmore; i++)
        fprintf(stderr, ", %s (key %s)", o->more_certs[i], o->more_keys[i] ? o->more_keys[i] : o->more_certs[i]);
    if (o->ocsp)
        fprintf(stderr, ", OCSP %s", o->ocsp);
    for (size_t i = 0; i < o->nmore; i++)
        if (o->more_ocsp[i])
            fprintf(stderr, ", OCSP %s", o->more_ocsp[i]);
    if (o->ticket_key && strncmp(o->ticket_key, "/proc/self/fd/", 14) != 0)
        fprintf(stderr, ", ticket key %s", o->ticket_key);
    fputc('\n', stderr);
}

/* SIGHUP: the files again, into a new config for every worker. */
static void reload(const struct tf_tls_opts *tls, struct worker_slot *slots, unsigned n,
                   struct reload **list)
{
    struct reload *r;
    tlsflow_config *cfg;

    reloads_sweep(list, 0);
    if (tf_tool_config(&cfg, TLSFLOW_SERVER, tls) < 0) {
        fprintf(stderr, PROG ": reload failed: still serving the previous certificates\n");
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        tlsflow_config_free(cfg);
        fprintf(stderr, PROG ": reload failed: out of memory\n");
        return;
    }
    r->cfg = cfg;
    for (unsigned i = 0; i < n; i++) {
        struct worker_slot *s = &slots[i];
        pthread_mutex_lock(&s->base.lock);
        if (s->base.is_running) {
            if (s->reload)     /* an older reload it never took: that one is done with it */
                atomic_fetch_sub(&s->reload->pending, 1);
            s->reload = r;
            atomic_fetch_add(&r->pending, 1);
            if (tlsflow_loop_post(s->w.loop, on_reload, s) < 0) {
                s->reload = NULL;
                atomic_fetch_sub(&r->pending, 1);
                fprintf(stderr, PROG ": thread %d: reload not posted (out of memory)\n", s->base.index);
            }
        }
        pthread_mutex_unlock(&s->base.lock);
    }
    r->next = *list;
    *list = r;
    log_loaded("reloaded", tls);
}

static void print_stats(struct tf_workers *ws, double elapsed)
{
    struct worker_slot *slots = ws->slots;
    unsigned n = ws->count;
    unsigned long long acc = 0, fail = 0, act = 0, req = 0, in = 0, out = 0, tx = 0, rx = 0;
    for (unsigned i = 0; i < n; i++) {
        struct serve_stats *st = &slots[i].w.stats;
        acc += atomic_load(&st->accepted);
        fail += atomic_load(&st->failed);
        act += atomic_load(&st->active);
        req += atomic_load(&st->requests);
        in += atomic_load(&st->bytes_in);
        out += atomic_load(&st->bytes_out);
        tx += atomic_load(&st->ktls_tx);
        rx += atomic_load(&st->ktls_rx);
    }
    fprintf(stderr, PROG ": %.0fs connections %llu open / %llu total / %llu failed handshakes,"
            " %llu requests, in %.1f MB, out %.1f MB, kTLS tx %.0f%% rx %.0f%% of open flows\n",
            elapsed, act, acc, fail, req, (double)in / 1e6, (double)out / 1e6,
            act ? 100.0 * (double)tx / (double)act : 0.0,
            act ? 100.0 * (double)rx / (double)act : 0.0);
}

/* The first worker picked the port (0 = any): the others join it. */
static void on_started(struct tf_workers *ws, void *slot)
{
    struct worker_slot *s = slot, *slots = ws->slots;

    if (s->base.index == 0)
        for (unsigned i = 0; i < ws->n; i++)
            snprintf(slots[i].port, sizeof(slots[i].port), "%d", s->bound_port);
}

static void on_hup(struct tf_workers *ws, int sig)
{
    struct serve_main *sm = ws->ctx;

    (void)sig;
    if (sm->self_signed)
        fprintf(stderr, PROG ": SIGHUP: --self-signed has no files to reload\n");
    else
        reload(sm->tls, ws->slots, ws->count, &sm->reloads);
}

enum { OPT_CERT = 256, OPT_KEY, OPT_SELF, OPT_HOST, OPT_PORT, OPT_ECHO, OPT_ROOT, OPT_THREADS,
       OPT_KTLS, OPT_PRIO, OPT_ALPN, OPT_ZC, OPT_NOPAD, OPT_STATS, OPT_GRACE, OPT_HELP,
       OPT_VERSION, OPT_REQ_TIMEOUT, OPT_IDLE_TIMEOUT, OPT_SEND_TIMEOUT, OPT_TICKET_KEY,
       OPT_OCSP };

static const struct option long_opts[] = {
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"self-signed", no_argument, NULL, OPT_SELF},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"echo", no_argument, NULL, OPT_ECHO},
    {"root", required_argument, NULL, OPT_ROOT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"ktls", required_argument, NULL, OPT_KTLS},
    {"priority", required_argument, NULL, OPT_PRIO},
    {"alpn", required_argument, NULL, OPT_ALPN},
    {"zerocopy-ro", no_argument, NULL, OPT_ZC},
    {"no-pad", no_argument, NULL, OPT_NOPAD},
    {"stats-interval", required_argument, NULL, OPT_STATS},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"request-timeout", required_argument, NULL, OPT_REQ_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT},
    {"ticket-key", required_argument, NULL, OPT_TICKET_KEY},
    {"ocsp", required_argument, NULL, OPT_OCSP},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    struct tf_tls_opts tls = {0};
    struct serve_opts opts = {.mode = SERVE_ECHO, .root_fd = -1, .request_timeout = 10,
                              .idle_timeout = 120, .send_timeout = 60};
    const char *host = "127.0.0.1", *port = "4433", *root = NULL;
    unsigned long threads = 1, stats_interval = 5, v;
    int self_signed = 0, echo = 0, zerocopy = 0, nopad = 0, ret = 1, opt;
    char ss_dir[PATH_MAX] = "", ss_cert[PATH_MAX], ss_key[PATH_MAX];
    char ticket_path[64];
    tlsflow_config *cfg = NULL;
    struct worker_slot *slots = NULL;
    struct serve_main sm = { 0 };

    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_CERT:
            if (!tls.cert) {
                tls.cert = optarg;
            } else if (tls.nmore < TF_TOOL_MAX_CERTS) {
                tls.more_certs[tls.nmore++] = optarg;
            } else {
                fprintf(stderr, PROG ": at most %d certificates\n", TF_TOOL_MAX_CERTS + 1);
                goto bad;
            }
            break;
        case OPT_KEY:   /* the key of the last --cert */
            if (tls.nmore && !tls.more_keys[tls.nmore - 1])
                tls.more_keys[tls.nmore - 1] = optarg;
            else if (tls.cert && !tls.nmore && !tls.key)
                tls.key = optarg;
            else {
                fprintf(stderr, PROG ": --key FILE follows its --cert FILE\n");
                goto bad;
            }
            break;
        case OPT_SELF: self_signed = 1; break;
        case OPT_HOST: host = optarg; break;
        case OPT_PORT:
            if (tf_parse_ulong(optarg, 0, 65535, &v) < 0)
                goto bad;
            port = optarg;
            break;
        case OPT_ECHO: echo = 1; break;
        case OPT_ROOT: root = optarg; break;
        case OPT_THREADS:
            if (tf_parse_ulong(optarg, 1, 1024, &threads) < 0)
                goto bad;
            break;
        case OPT_KTLS:
            if (tf_parse_ktls(optarg, &tls.ktls) < 0)
                goto bad;
            break;
        case OPT_PRIO: tls.priority = optarg; break;
        case OPT_TICKET_KEY: tls.ticket_key = optarg; break;
        case OPT_OCSP:   /* the response of the last --cert */
            if (tls.nmore && !tls.more_ocsp[tls.nmore - 1])
                tls.more_ocsp[tls.nmore - 1] = optarg;
            else if (tls.cert && !tls.nmore && !tls.ocsp)
                tls.ocsp = optarg;
            else {
                fprintf(stderr, PROG ": --ocsp FILE follows its --cert FILE\n");
                goto bad;
            }
            break;
        case OPT_ALPN: tls.alpn = optarg; break;
        case OPT_ZC: zerocopy = 1; break;
        case OPT_NOPAD: nopad = 1; break;
        case OPT_STATS:
            if (tf_parse_ulong(optarg, 0, 86400, &stats_interval) < 0)
                goto bad;
            break;
        case OPT_GRACE:
            if (tf_parse_ulong(optarg, 0, 3600, &v) < 0)
                goto bad;
            grace_s = (unsigned)v;
            break;
        case OPT_REQ_TIMEOUT:
            if (tf_parse_ulong(optarg, 1, 86400, &v) < 0)
                goto bad;
            opts.request_timeout = (double)v;
            break;
        case OPT_IDLE_TIMEOUT:
            if (tf_parse_ulong(optarg, 1, 86400, &v) < 0)
                goto bad;
            opts.idle_timeout = (double)v;
            break;
        case OPT_SEND_TIMEOUT:
            if (tf_parse_ulong(optarg, 1, 86400, &v) < 0)
                goto bad;
            opts.send_timeout = (double)v;
            break;
        case 'h':
        case OPT_HELP: fputs(usage, stdout); return 0;
        case OPT_VERSION: printf(PROG " %s\n", tlsflow_version()); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || echo == !!root || self_signed == !!tls.cert ||
        (tls.key && !tls.cert)) {
        fprintf(stderr, PROG ": need one of --echo/--root and one of --cert/--self-signed\n");
        goto bad;
    }
    if (zerocopy)
        tls.ktls_flags |= TLSFLOW_KTLS_ZEROCOPY_RO;
    if (nopad)
        tls.ktls_flags |= TLSFLOW_KTLS_RX_NO_PAD;
    if (root) {
        opts.mode = SERVE_HTTP;
        opts.root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (opts.root_fd < 0) {
            fprintf(stderr, PROG ": --root %s: %s\n", root, strerror(errno));
            return 1;
        }
    }
    if (self_signed) {
        if (tf_self_signed(host, ss_dir, ss_cert, ss_key) < 0)
            goto out;
        tls.cert = ss_cert;
        tls.key = ss_key;
    }
    /* Without --ticket-key each new config would make its own ticket key, and
     * a reload would stop every ticket issued before it from resuming: one key
     * is made here, in memory only, and every config of this process uses it. */
    if (!tls.ticket_key && !tls.no_resumption && process_ticket_key(ticket_path, sizeof(ticket_path)) == 0)
        tls.ticket_key = ticket_path;
    if (tf_tool_config(&cfg, TLSFLOW_SERVER, &tls) < 0)
        goto out;
    if (*ss_dir) {
        /* The public config API takes files only: the library has read them
         * (tlsflow_config_set_cert_file loads at the call), so they go now,
         * before serving, and a server that dies leaves no key behind. */
        tf_self_signed_cleanup(ss_dir, ss_cert, ss_key);
        *ss_dir = '\0';
        fprintf(stderr, PROG ": self-signed certificate made and loaded (its files removed)\n");
    } else {
        log_loaded("loaded", &tls);
    }

    signal(SIGPIPE, SIG_IGN);
    slots = calloc(threads, sizeof(*slots));
    if (!slots)
        goto out;
    for (unsigned i = 0; i < threads; i++) {
        struct worker_slot *s = &slots[i];
        s->cfg = cfg;
        s->host = host;
        s->w.opts = &opts;
    }
    /* the first worker picks the port (0 = any), the others join it */
    snprintf(slots[0].port, sizeof(slots[0].port), "%s", port);
    sm.tls = &tls;
    sm.self_signed = self_signed;
    struct tf_workers ws = {
        .slots = slots, .slot_size = sizeof(*slots), .n = (unsigned)threads, .main = worker_main,
        .stop = on_stop, .started = on_started, .stats = print_stats, .on_signal = on_hup,
        .ctx = &sm, .prog = PROG, .stats_interval = (unsigned)stats_interval,
        .stop_level = &tf_serve_stop,
    };
    if (tf_workers_start(&ws) == 0) {
        printf("listening on %s:%d\n", host, slots[0].bound_port);
        fflush(stdout);
        tf_workers_wait(&ws);
        /* the data path's own counts, always printed at exit */
        tlsflow_loop_stats t = { 0, 0, 0, 0 };
        unsigned long long out = 0;
        for (unsigned i = 0; i < ws.count; i++) {
            t.submissions += slots[i].w.loop_stats.submissions;
            t.enters += slots[i].w.loop_stats.enters;
            t.plaintext_copied += slots[i].w.loop_stats.plaintext_copied;
            t.ciphertext_copied += slots[i].w.loop_stats.ciphertext_copied;
            out += atomic_load(&slots[i].w.stats.bytes_out);
        }
        tf_print_loop_counters(PROG, &t, out, "out");
        ret = 0;
    }
    tf_workers_join(&ws);
    reloads_sweep(&sm.reloads, 1);
out:
    free(slots);
    if (cfg)
        tlsflow_config_free(cfg);
    if (*ss_dir)
        tf_self_signed_cleanup(ss_dir, ss_cert, ss_key);
    if (opts.root_fd >= 0)
        close(opts.root_fd);
    return ret;
bad:
    fputs(usage, stderr);
    return 2;
}
