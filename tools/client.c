/* tlsflow-client HOST:PORT: connects, describes the session on stderr, then
 * copies stdin to the flow and the flow to stdout (like `openssl s_client
 * -quiet`).  stdin EOF sends close_notify; the peer's close ends the program.
 *
 * One thread.  While stdin may be read, it waits in poll() on stdin and
 * tlsflow_loop_fd together: stdin can be a terminal, pipe or file, which the
 * library has no operation for, so the loop is embedded in our own poll
 * instead (no timeout, nothing spins).  Otherwise it sits in
 * tlsflow_loop_run_once(loop, -1).  A write in flight blocks stdin reading,
 * so a fast producer never queues more than one buffer. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROG "tlsflow-client"

static const char usage[] =
"usage: " PROG " [options] HOST[:PORT]\n"
"\n"
"Connects with TLS (default port 443), prints the session to stderr, then\n"
"copies stdin to the server and the server's data to stdout.  stdin EOF sends\n"
"close_notify; exits 0 once both sides have closed, 1 on any error.\n"
"\n"
"  --ca FILE                 trust anchors (default: the system store)\n"
"  --insecure                do not verify the server's certificate\n"
"  --sni NAME                server name to send and verify (default HOST)\n"
"  --alpn LIST               comma-separated ALPN protocols\n"
"  --priority STR            GnuTLS priority string\n"
"  --ktls auto|require|off   kernel TLS (default auto)\n"
"  --help, --version\n";

struct client {
    tlsflow *flow;
    int is_open, failed;
    int is_writing, is_reading;
    int stdin_done, close_sent, close_done, peer_done;
    char buf[65536];
};

static void on_read(tlsflow *flow, const tlsflow_result *res, void *arg);

static void fail(struct client *c, const char *what, tlsflow_error err)
{
    if (!c->failed)
        tf_print_error(PROG, what, err);
    c->failed = 1;
}

static void fail_errno(struct client *c, const char *what, int err)
{
    tlsflow_error e = {TLSFLOW_E_SYSTEM, err};
    fail(c, what, e);
}

static void on_close(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct client *c = arg;
    (void)flow;
    c->close_done = 1;
    if (res->status == TLSFLOW_ERROR)
        fail(c, "close", res->error);
}

static void send_close(struct client *c)
{
    int ret;
    if (c->close_sent)
        return;
    c->close_sent = 1;
    if ((ret = tlsflow_close(c->flow, on_close, c)) < 0) {
        fail_errno(c, "tlsflow_close", -ret);
        c->close_done = 1;
    }
}

static void start_read(struct client *c)
{
    int ret = tlsflow_read(c->flow, on_read, c);
    if (ret < 0)
        fail_errno(c, "tlsflow_read", -ret);
    else
        c->is_reading = 1;
}

static int write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static void on_read(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct client *c = arg;
    (void)flow;
    c->is_reading = 0;
    if (res->status == TLSFLOW_ERROR) {
        fail(c, "read", res->error);
        return;
    }
    if (res->status == TLSFLOW_EOF) {
        c->peer_done = 1;
        send_close(c);   /* answer the peer's close_notify */
        return;
    }
    if (write_all(STDOUT_FILENO, res->data, res->len) < 0) {
        fail_errno(c, "stdout", errno ? errno : EIO);
        return;
    }
    start_read(c);
}

static void on_written(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct client *c = arg;
    (void)flow;
    c->is_writing = 0;
    if (res->status == TLSFLOW_ERROR)
        fail(c, "write", res->error);
    else if (res->status == TLSFLOW_EOF)
        c->stdin_done = 1;   /* the peer stopped reading */
}

static void describe(const tlsflow *flow, const char *host, const char *port)
{
    tlsflow_info info;
    if (tlsflow_get_info(flow, &info) < 0) {
        fprintf(stderr, "connected to %s:%s\n", host, port);
        return;
    }
    fprintf(stderr,
            "connected to %s:%s\n"
            "  version      %s\n"
            "  cipher       %s\n"
            "  alpn         %s\n"
            "  server name  %s\n"
            "  kTLS         tx %s, rx %s\n"
            "  resumed      %s\n",
            host, port, tf_version_name(info.tls_version), info.cipher ? info.cipher : "?",
            info.alpn ? info.alpn : "(none)", info.server_name ? info.server_name : "(none)",
            info.ktls_tx ? "yes" : "no", info.ktls_rx ? "yes" : "no", info.resumed ? "yes" : "no");
    tf_print_peer_chain(stderr, flow);
}

struct open_ctx {
    struct client *c;
    const char *host, *port;
};

static void on_open(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct open_ctx *o = arg;
    struct client *c = o->c;
    if (!flow || res->status != TLSFLOW_OK) {
        fail(c, "connect", res->error);
        if (flow)
            tlsflow_free(flow);
        return;
    }
    c->flow = flow;
    c->is_open = 1;
    describe(flow, o->host, o->port);
    start_read(c);
}

/* --sni: our own TCP connection, so that the name sent differs from HOST. */
static int tcp_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *p;
    int fd = -1, r = getaddrinfo(host, port, &hints, &ai);
    if (r != 0) {
        fprintf(stderr, PROG ": %s: %s\n", host, gai_strerror(r));
        return -1;
    }
    for (p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, PROG ": connect %s:%s: %s\n", host, port, strerror(errno));
    freeaddrinfo(ai);
    return fd;
}

/* Reads stdin (poll said it is readable, or at EOF) into one write. */
static void pump_stdin(struct client *c)
{
    int ret;
    ssize_t n = read(STDIN_FILENO, c->buf, sizeof(c->buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        c->stdin_done = 1;
        send_close(c);
        return;
    }
    if ((ret = tlsflow_write(c->flow, c->buf, (size_t)n, on_written, c)) < 0)
        fail_errno(c, "tlsflow_write", -ret);
    else
        c->is_writing = 1;
}

/* One wait for stdin or the loop, whichever comes first, then the loop's
 * ready work and stdin's; 0 or -errno. */
static int wait_both(struct client *c, tlsflow_loop *loop)
{
    struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                          {.fd = tlsflow_loop_fd(loop), .events = POLLIN}};
    if (poll(p, 2, -1) < 0)
        return errno == EINTR ? 0 : -errno;
    if (p[1].revents) {
        int r = tlsflow_loop_run_once(loop, 0);
        if (r < 0 && r != -EINTR && r != -ETIME)
            return r;
    }
    /* the loop's callbacks may have ended the copy or started a write */
    if (p[0].revents && !c->failed && !c->stdin_done && !c->close_sent && !c->is_writing)
        pump_stdin(c);
    return 0;
}

enum { OPT_CA = 256, OPT_INSECURE, OPT_SNI, OPT_ALPN, OPT_PRIO, OPT_KTLS, OPT_HELP, OPT_VERSION };

static const struct option long_opts[] = {
    {"ca", required_argument, NULL, OPT_CA},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"sni", required_argument, NULL, OPT_SNI},
    {"alpn", required_argument, NULL, OPT_ALPN},
    {"priority", required_argument, NULL, OPT_PRIO},
    {"ktls", required_argument, NULL, OPT_KTLS},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    struct tf_tls_opts tls = {0};
    const char *sni = NULL;
    char host[256], port[32];
    tlsflow_config *cfg = NULL;
    tlsflow_loop *loop = NULL;
    struct client *c = NULL;
    int opt, ret;

    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_CA: tls.ca = optarg; break;
        case OPT_INSECURE: tls.insecure = 1; break;
        case OPT_SNI: sni = optarg; break;
        case OPT_ALPN: tls.alpn = optarg; break;
        case OPT_PRIO: tls.priority = optarg; break;
        case OPT_KTLS:
            if (tf_parse_ktls(optarg, &tls.ktls) < 0)
                goto bad;
            break;
        case 'h':
        case OPT_HELP: fputs(usage, stdout); return 0;
        case OPT_VERSION: printf(PROG " %s\n", tlsflow_version()); return 0;
        default: goto bad;
        }
    }
    if (optind + 1 != argc ||
        tf_split_hostport(argv[optind], "443", host, sizeof(host), port, sizeof(port)) < 0)
        goto bad;
    signal(SIGPIPE, SIG_IGN);

    ret = 1;
    if (!(c = calloc(1, sizeof(*c))) || tf_tool_config(&cfg, TLSFLOW_CLIENT, &tls) < 0)
        goto out;
    int r = tlsflow_loop_new(&loop, 0);
    if (r < 0) {
        fprintf(stderr, PROG ": tlsflow_loop_new: %s\n", strerror(-r));
        goto out;
    }
    struct open_ctx octx = {c, host, port};
    if (sni) {
        int fd = tcp_connect(host, port);
        if (fd < 0)
            goto out;
        r = tlsflow_wrap_fd(loop, cfg, fd, sni, on_open, &octx);
        if (r < 0)
            close(fd);
    } else {
        r = tlsflow_connect(loop, cfg, host, port, on_open, &octx);
    }
    if (r < 0) {
        fprintf(stderr, PROG ": connect: %s\n", strerror(-r));
        goto out;
    }
    while (!c->is_open && !c->failed)
        if ((r = tlsflow_loop_run_once(loop, -1)) < 0 && r != -EINTR) {
            fprintf(stderr, PROG ": tlsflow_loop_run_once: %s\n", strerror(-r));
            goto out;
        }

    /* Copy until both sides are closed (or something failed). */
    while (!c->failed && !(c->close_done && !c->is_reading)) {
        int want_stdin = !c->stdin_done && !c->close_sent && !c->is_writing;
        r = want_stdin ? wait_both(c, loop) : tlsflow_loop_run_once(loop, -1);
        if (r < 0 && r != -EINTR && r != -ETIME) {
            fprintf(stderr, PROG ": %s: %s\n", want_stdin ? "poll" : "tlsflow_loop_run_once",
                    strerror(-r));
            c->failed = 1;
        }
    }
    ret = c->failed ? 1 : 0;
out:
    if (c && c->flow)
        tlsflow_free(c->flow);   /* pending reads complete with CANCELED here */
    if (loop) {
        while (tlsflow_loop_run_once(loop, 0) > 0)
            ;
        tlsflow_loop_free(loop);
    }
    if (cfg)
        tlsflow_config_free(cfg);
    free(c);
    return ret;
bad:
    fputs(usage, stderr);
    return 2;
}
