/* tlsflow-proxy: TLS termination (or origination) by splice.
 *
 * One tlsflow_loop per worker thread, as tlsflow-serve: TLS clients come
 * through one listener per loop on the same port (SO_REUSEPORT); plain TCP
 * clients (--tls-backend without --cert) through one listening socket per
 * worker whose blocking accept runs on a small acceptor thread that hands
 * each socket to the loop with tlsflow_loop_post.  The main thread waits for
 * SIGINT/SIGTERM and prints the statistics line; a worker stops through a
 * post and tells it with SIGUSR1 when done. */
#include "common.h"
#include "proxy.h"
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "tlsflow-proxy"

static const char usage[] =
"usage: " PROG " --listen HOST:PORT --backend HOST:PORT\n"
"                     (--cert FILE --key FILE | --tls-backend [--ca FILE]) [options]\n"
"\n"
"Terminates TLS on HOST:PORT and carries the plaintext to the backend over\n"
"TCP, or (--tls-backend) carries what comes, TLS with --cert or plain TCP\n"
"without, to the backend over TLS, verifying its certificate.  Bytes move by\n"
"splice: with the keys in the kernel (kTLS) none enters userspace.  Half-\n"
"closes go through both ways (close_notify <-> shutdown(SHUT_WR)); a reset on\n"
"either side resets the other.  The first line on stdout is \"listening on\n"
"HOST:PORT\".  SIGINT/SIGTERM stop accepting, let connections end within the\n"
"grace, and exit 0.\n"
"\n"
"  --listen HOST:PORT        where clients connect (port 0: any free port)\n"
"  --backend HOST:PORT       where their bytes go (resolved once, at start)\n"
"  --cert FILE, --key FILE   the certificate chain and key clients see (PEM)\n"
"  --tls-backend             speak TLS to the backend (verified: --ca, or the\n"
"                            system trust store; name: the --backend host)\n"
"  --backend-name NAME       the name to verify and send as SNI instead\n"
"  --ca FILE                 trust anchors for the backend (PEM)\n"
"  --proxy-protocol v2       send a PROXY protocol v2 header with the client's\n"
"                            address to the backend first\n"
"  --threads N               worker threads, one loop each (default 1)\n"
"  --ktls auto|require|off   kernel TLS (default auto); --ktls alone: require\n"
"  --priority STR            GnuTLS priority string (both sides)\n"
"  --stats-interval S        statistics line on stderr every S seconds (default 5, 0 = off)\n"
"  --grace S                 seconds connections may take to end at exit (default 5)\n"
"  --idle-timeout S          reset a connection that moved no byte either way for\n"
"                            S seconds (default 120)\n"
"  --send-timeout S          reset a connection whose sending toward either peer made\n"
"                            no progress for S seconds (nothing acknowledged, no room,\n"
"                            no splice done), after trying close_notify (default 60,\n"
"                            0 = off; a peer that never reads)\n"
"  --connect-timeout S       the backend's TCP connect (default 10)\n"
"  --handshake-timeout S     each TLS handshake (default 30)\n"
"  --help, --version\n";

struct worker_slot {
    struct tf_worker base;        /* first (workers.h): thread, start-up, posts' lock */
    struct pworker w;
    pthread_t acceptor;
    int has_acceptor;
    const tlsflow_config *cfg;    /* clients' (TLS in), or NULL */
    const char *host;
    char port[16];
    int bound_port;
};

static unsigned grace_s = 5;

/* ---- TCP in: the acceptor thread ---- */

struct accepted {
    struct pworker *w;
    int fd;
};

static void on_accepted(void *arg)
{
    struct accepted *a = arg;

    tf_proxy_accept_fd(a->w, a->fd);
    free(a);
}

static void *acceptor_main(void *arg)
{
    struct worker_slot *s = arg;

    for (;;) {
        int fd = accept4(s->w.plain_fd, NULL, NULL, SOCK_CLOEXEC);
        struct accepted *a;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
                errno == ENOBUFS || errno == ENOMEM) {
                if (errno != EINTR && errno != ECONNABORTED)
                    usleep(10000);   /* out of descriptors or memory: try again soon */
                continue;
            }
            return NULL;             /* shut down: the worker stops */
        }
        a = malloc(sizeof(*a));
        if (a) {
            a->w = &s->w;     /* before the post: the loop may run it at once */
            a->fd = fd;
        }
        pthread_mutex_lock(&s->base.lock);
        if (!a || !s->base.is_running || tlsflow_loop_post(s->w.loop, on_accepted, a) < 0) {
            close(fd);
            free(a);
        }
        pthread_mutex_unlock(&s->base.lock);
    }
}

static int plain_listen(const char *host, const char *port, int *bound)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    int fd = -1, one = 1, ret;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if ((ret = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, PROG ": --listen %s:%s: %s\n", host, port, gai_strerror(ret));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, PROG ": listen on %s:%s: %s\n", host, port, strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* ---- Workers ---- */

static void on_keepalive(tlsflow_timer *t, void *arg)
{
    (void)t;
    (void)arg;
}

static void *worker_main(void *arg)
{
    struct worker_slot *s = arg;
    struct pworker *w = &s->w;
    int ret = tlsflow_loop_new(&w->loop, 0);

    w->plain_fd = -1;
    if (ret < 0) {
        fprintf(stderr, PROG ": thread %d: tlsflow_loop_new: %s\n", s->base.index, strerror(-ret));
        tf_worker_failed(&s->base);
        return NULL;
    }
    if (s->base.index == 0)
        fprintf(stderr, PROG ": io_uring set-up: %s\n", tlsflow_loop_ring_setup(w->loop));
    if ((ret = tlsflow_timer_new(w->loop, &w->grace)) < 0) {
        fprintf(stderr, PROG ": thread %d: tlsflow_timer_new: %s\n", s->base.index, strerror(-ret));
        goto failed;
    }
    if ((ret = tf_connector_start(&w->connector, w->loop)) < 0) {
        fprintf(stderr, PROG ": thread %d: connector thread: %s\n", s->base.index, strerror(-ret));
        goto failed;
    }
    if (s->cfg) {
        ret = tlsflow_listen(w->loop, s->cfg, s->host, s->port, tf_proxy_accept, w, &w->listener);
        if (ret < 0) {
            fprintf(stderr, PROG ": thread %d: listen on %s:%s: %s\n", s->base.index, s->host, s->port,
                    strerror(-ret));
            goto failed;
        }
        s->bound_port = tlsflow_listener_port(w->listener);
    } else {
        w->plain_fd = plain_listen(s->host, s->port, &s->bound_port);
        if (w->plain_fd < 0)
            goto failed;
        /* The loop runs while a timer is started; accepts come as posts. */
        if ((ret = tlsflow_timer_new(w->loop, &w->keepalive)) < 0 ||
            (ret = tlsflow_timer_start(w->keepalive, 3600000, 3600000, on_keepalive, w)) < 0) {
            fprintf(stderr, PROG ": thread %d: timer: %s\n", s->base.index, strerror(-ret));
            goto failed;
        }
    }
    tf_worker_running(&s->base, w->loop);
    if (w->plain_fd >= 0) {
        if (pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0) {
            fprintf(stderr, PROG ": thread %d: pthread_create failed\n", s->base.index);
            goto failed;
        }
        s->has_acceptor = 1;
    }
    tf_worker_ready(&s->base);

    /* Until the stop post has run and every connection is released, or the
     * grace is over; a listener or a posted accept keeps it going. */
    ret = tlsflow_loop_run(w->loop);
    if (ret < 0)
        fprintf(stderr, PROG ": thread %d: tlsflow_loop_run: %s\n", s->base.index, strerror(-ret));
    tf_worker_stopping(&s->base);   /* no post from here on */
    if (s->has_acceptor) {
        shutdown(w->plain_fd, SHUT_RDWR);   /* its accept returns */
        pthread_join(s->acceptor, NULL);
    }
    tf_connector_stop(w->connector);   /* no connect's end is delivered from here on */
    w->connector = NULL;
    if (w->listener)
        tlsflow_listener_close(w->listener);
    tf_proxy_kill_all(w);
    tlsflow_loop_get_stats(w->loop, &w->loop_stats);
    tlsflow_loop_free(w->loop);   /* the timers and what the kill left go with it */
    w->loop = NULL;
    tf_proxy_release_all(w);
    if (w->plain_fd >= 0)
        close(w->plain_fd);
    tf_worker_done(&s->base);
    return NULL;

failed:
    tf_worker_failed(&s->base);   /* no post from here on (the main thread only joins) */
    tf_connector_stop(w->connector);
    w->connector = NULL;
    if (w->plain_fd >= 0)
        close(w->plain_fd);
    tlsflow_loop_free(w->loop);
    w->loop = NULL;
    return NULL;
}

static void on_grace_over(tlsflow_timer *t, void *arg)
{
    struct pworker *w = arg;
    (void)t;
    tlsflow_loop_stop(w->loop);
}

/* Posted by the main thread: stop accepting; connections end by themselves
 * within the grace (both peers close), then the rest is dropped. */
static void on_stop(void *arg)
{
    struct pworker *w = &((struct worker_slot *)arg)->w;

    if (!w->is_stopping) {
        w->is_stopping = 1;
        if (w->listener)
            tlsflow_listener_close(w->listener);
        w->listener = NULL;
        if (w->plain_fd >= 0)
            shutdown(w->plain_fd, SHUT_RDWR);
        tlsflow_timer_stop(w->keepalive);
        if (!w->conns || tlsflow_timer_start(w->grace, grace_s * 1000u, 0, on_grace_over, w) < 0)
            tlsflow_loop_stop(w->loop);
    }
    if (atomic_load(&tf_proxy_stop) >= 2)
        tlsflow_loop_stop(w->loop);
}

static void print_stats(struct tf_workers *ws, double elapsed)
{
    struct worker_slot *slots = ws->slots;
    unsigned n = ws->count;
    unsigned long long acc = 0, fail = 0, act = 0, bfail = 0, stuck = 0, up = 0, down = 0, tx = 0,
                       rx = 0;
    for (unsigned i = 0; i < n; i++) {
        struct proxy_stats *st = &slots[i].w.stats;
        acc += atomic_load(&st->accepted);
        fail += atomic_load(&st->failed);
        act += atomic_load(&st->active);
        bfail += atomic_load(&st->backend_failed);
        stuck += atomic_load(&st->send_timeouts);
        up += atomic_load(&st->bytes_up);
        down += atomic_load(&st->bytes_down);
        tx += atomic_load(&st->ktls_tx);
        rx += atomic_load(&st->ktls_rx);
    }
    fprintf(stderr, PROG ": %.0fs connections %llu open / %llu total / %llu failed handshakes,"
            " %llu backend failures, %llu send timeouts, in %.1f MB, out %.1f MB,"
            " kTLS tx %.0f%% rx %.0f%% of open flows\n",
            elapsed, act, acc, fail, bfail, stuck, (double)up / 1e6, (double)down / 1e6,
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

static int resolve_backend(const char *spec, struct proxy_opts *o, char *host, size_t hsize)
{
    char port[32];
    struct addrinfo hints = { 0 }, *res = NULL;
    int ret;

    if (tf_split_hostport(spec, NULL, host, hsize, port, sizeof(port)) < 0) {
        fprintf(stderr, PROG ": --backend %s: not HOST:PORT\n", spec);
        return -1;
    }
    hints.ai_socktype = SOCK_STREAM;
    if ((ret = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, PROG ": --backend %s: %s\n", spec, gai_strerror(ret));
        return -1;
    }
    memcpy(&o->backend, res->ai_addr, res->ai_addrlen);
    o->backend_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

enum { OPT_LISTEN = 256, OPT_BACKEND, OPT_CERT, OPT_KEY, OPT_TLS_BACKEND, OPT_BACKEND_NAME,
       OPT_CA, OPT_PROXY_PROTO, OPT_THREADS, OPT_KTLS, OPT_PRIO, OPT_STATS, OPT_GRACE,
       OPT_IDLE, OPT_SEND, OPT_CONNECT, OPT_HANDSHAKE, OPT_HELP, OPT_VERSION };

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"tls-backend", no_argument, NULL, OPT_TLS_BACKEND},
    {"backend-name", required_argument, NULL, OPT_BACKEND_NAME},
    {"ca", required_argument, NULL, OPT_CA},
    {"proxy-protocol", required_argument, NULL, OPT_PROXY_PROTO},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"ktls", optional_argument, NULL, OPT_KTLS},
    {"priority", required_argument, NULL, OPT_PRIO},
    {"stats-interval", required_argument, NULL, OPT_STATS},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"send-timeout", required_argument, NULL, OPT_SEND},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT},
    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    struct tf_tls_opts in_tls = {0}, out_tls = {0};
    struct proxy_opts opts = {.idle_ms = 120000, .connect_ms = 10000, .send_ms = 60000};
    const char *listen_spec = NULL, *backend_spec = NULL, *backend_name = NULL;
    char lhost[256], lport[16], bhost[256];
    unsigned long threads = 1, stats_interval = 5, handshake_s = 30, v;
    int tls_backend = 0, ret = 1, opt;
    tlsflow_config *cfg = NULL, *bcfg = NULL;
    struct worker_slot *slots = NULL;

    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN: listen_spec = optarg; break;
        case OPT_BACKEND: backend_spec = optarg; break;
        case OPT_CERT: in_tls.cert = optarg; break;
        case OPT_KEY: in_tls.key = optarg; break;
        case OPT_TLS_BACKEND: tls_backend = 1; break;
        case OPT_BACKEND_NAME: backend_name = optarg; break;
        case OPT_CA: out_tls.ca = optarg; break;
        case OPT_PROXY_PROTO:
            if (strcmp(optarg, "v2") != 0)
                goto bad;
            opts.proxy_v2 = 1;
            break;
        case OPT_THREADS:
            if (tf_parse_ulong(optarg, 1, 1024, &threads) < 0)
                goto bad;
            break;
        case OPT_KTLS:
            /* --ktls alone is require; --ktls MODE and --ktls=MODE name one */
            if (!optarg && optind < argc && tf_parse_ktls(argv[optind], &in_tls.ktls) == 0)
                optind++;
            else if (!optarg)
                in_tls.ktls = TLSFLOW_KTLS_REQUIRE;
            else if (tf_parse_ktls(optarg, &in_tls.ktls) < 0)
                goto bad;
            out_tls.ktls = in_tls.ktls;
            break;
        case OPT_PRIO: in_tls.priority = out_tls.priority = optarg; break;
        case OPT_STATS:
            if (tf_parse_ulong(optarg, 0, 86400, &stats_interval) < 0)
                goto bad;
            break;
        case OPT_GRACE:
            if (tf_parse_ulong(optarg, 0, 3600, &v) < 0)
                goto bad;
            grace_s = (unsigned)v;
            break;
        case OPT_IDLE:
            if (tf_parse_ulong(optarg, 0, 86400, &v) < 0)
                goto bad;
            opts.idle_ms = (unsigned)v * 1000u;
            break;
        case OPT_SEND:
            if (tf_parse_ulong(optarg, 0, 86400, &v) < 0)
                goto bad;
            opts.send_ms = (unsigned)v * 1000u;
            break;
        case OPT_CONNECT:
            if (tf_parse_ulong(optarg, 1, 3600, &v) < 0)
                goto bad;
            opts.connect_ms = (unsigned)v * 1000u;
            break;
        case OPT_HANDSHAKE:
            if (tf_parse_ulong(optarg, 1, 3600, &handshake_s) < 0)
                goto bad;
            break;
        case 'h':
        case OPT_HELP: fputs(usage, stdout); return 0;
        case OPT_VERSION: printf(PROG " %s\n", tlsflow_version()); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || !listen_spec || !backend_spec || (!in_tls.cert && !tls_backend) ||
        (in_tls.key && !in_tls.cert) || ((out_tls.ca || backend_name) && !tls_backend)) {
        fprintf(stderr, PROG ": need --listen, --backend, and --cert/--key or --tls-backend\n");
        goto bad;
    }
    if (tf_split_hostport(listen_spec, NULL, lhost, sizeof(lhost), lport, sizeof(lport)) < 0) {
        fprintf(stderr, PROG ": --listen %s: not HOST:PORT\n", listen_spec);
        goto bad;
    }
    if (resolve_backend(backend_spec, &opts, bhost, sizeof(bhost)) < 0)
        return 1;
    if (in_tls.cert) {
        if (tf_tool_config(&cfg, TLSFLOW_SERVER, &in_tls) < 0 ||
            tlsflow_config_set_handshake_timeout(cfg, (unsigned)handshake_s * 1000u) < 0)
            goto out;
        opts.tls_in = 1;
    }
    if (tls_backend) {
        if (tf_tool_config(&bcfg, TLSFLOW_CLIENT, &out_tls) < 0 ||
            tlsflow_config_set_handshake_timeout(bcfg, (unsigned)handshake_s * 1000u) < 0)
            goto out;
        opts.backend_cfg = bcfg;
        opts.backend_name = backend_name ? backend_name : bhost;
    }

    signal(SIGPIPE, SIG_IGN);     /* a splice into a socket reset meanwhile */
    slots = calloc(threads, sizeof(*slots));
    if (!slots)
        goto out;
    for (unsigned i = 0; i < threads; i++) {
        struct worker_slot *s = &slots[i];
        s->cfg = cfg;
        s->host = lhost;
        s->w.opts = &opts;
    }
    snprintf(slots[0].port, sizeof(slots[0].port), "%s", lport);
    struct tf_workers ws = {
        .slots = slots, .slot_size = sizeof(*slots), .n = (unsigned)threads, .main = worker_main,
        .stop = on_stop, .started = on_started, .stats = print_stats, .prog = PROG,
        .stats_interval = (unsigned)stats_interval, .stop_level = &tf_proxy_stop,
    };
    if (tf_workers_start(&ws) == 0) {
        printf("listening on %s:%d\n", lhost, slots[0].bound_port);
        fflush(stdout);
        tf_workers_wait(&ws);
        /* the data path's own counts, always printed at exit */
        tlsflow_loop_stats t = { 0, 0, 0, 0 };
        unsigned long long moved = 0;
        for (unsigned i = 0; i < ws.count; i++) {
            t.submissions += slots[i].w.loop_stats.submissions;
            t.enters += slots[i].w.loop_stats.enters;
            t.plaintext_copied += slots[i].w.loop_stats.plaintext_copied;
            t.ciphertext_copied += slots[i].w.loop_stats.ciphertext_copied;
            moved += atomic_load(&slots[i].w.stats.bytes_up) + atomic_load(&slots[i].w.stats.bytes_down);
        }
        tf_print_loop_counters(PROG, &t, moved, "moved");
        ret = 0;
    }
    tf_workers_join(&ws);
out:
    free(slots);
    if (cfg)
        tlsflow_config_free(cfg);
    if (bcfg)
        tlsflow_config_free(bcfg);
    return ret;
bad:
    fputs(usage, stderr);
    return 2;
}
