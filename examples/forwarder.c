/* A TLS-to-TCP forwarder: each TLS flow accepted on PORT gets a plain TCP
 * connection to 127.0.0.1:BACKEND, and bytes go both ways with tlsflow_read /
 * tlsflow_write and read(2) / send(2).  The tlsflow loop is embedded in a poll(2)
 * loop through tlsflow_loop_fd, beside the backend sockets.  (For speed use
 * tlsflow_splice_from/_to, which keep the bytes in the kernel.)
 *   forwarder CERT.pem KEY.pem PORT BACKEND_PORT
 * prints "listening on 127.0.0.1:PORT" and runs until killed. */
#define _GNU_SOURCE   /* SOCK_CLOEXEC, MSG_NOSIGNAL under -std=c11 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tlsflow.h>

#define MAX_CONNS 256

struct conn {
    tlsflow *flow;
    int      fd;          /* the backend */
    int      is_writing;  /* up[] is lent to a tlsflow_write: do not read the backend */
    int      backend_eof, is_dead;
    char     up[16384];   /* backend -> client */
};
static struct conn *conns[MAX_CONNS];
static struct sockaddr_in backend;

static void conn_free(void *c) { free(c); }

static void conn_end(struct conn *c)   /* both ways done, or one failed */
{
    if (c->is_dead)
        return;
    c->is_dead = 1;
    close(c->fd);
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i] == c)
            conns[i] = NULL;
    tlsflow_free(c->flow);   /* a pending write completes (canceled), then conn_free */
}

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f, (void)r;
    conn_end(arg);           /* the client closed too: nothing more either way */
}

static void on_up_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct conn *c = arg;

    (void)f;
    c->is_writing = 0;
    if (r->status != TLSFLOW_OK)
        conn_end(c);
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct conn *c = arg;

    if (c->is_dead)
        return;
    if (r->status == TLSFLOW_EOF) {          /* client's close_notify: half-close the backend */
        shutdown(c->fd, SHUT_WR);
        return;
    }
    /* Blocking send: a backend that stops reading stalls this example's loop. */
    if (r->status != TLSFLOW_OK || send(c->fd, r->data, r->len, MSG_NOSIGNAL) != (ssize_t)r->len ||
        tlsflow_read(f, on_read, c) < 0)
        conn_end(c);
}

static void on_flow(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct conn *c;
    int slot = 0;

    (void)arg;
    if (r->status != TLSFLOW_OK)
        return;
    while (slot < MAX_CONNS && conns[slot])
        slot++;
    c = slot < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (!c || tlsflow_on_release(f, conn_free, c) < 0) {
        free(c); tlsflow_free(f); return;
    }
    c->flow = f;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    conns[slot] = c;
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&backend, sizeof(backend)) < 0 ||
        tlsflow_read(f, on_read, c) < 0) {
        perror("forwarder: backend");
        conn_end(c);
    }
}

int main(int argc, char **argv)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg;
    tlsflow_listener *l;
    struct pollfd pfd[1 + MAX_CONNS];
    struct conn *polled[1 + MAX_CONNS];
    int ret, n;

    if (argc < 5) {
        fprintf(stderr, "usage: forwarder CERT.pem KEY.pem PORT BACKEND_PORT\n");
        return 2;
    }
    backend.sin_family = AF_INET;
    backend.sin_port = htons((unsigned short)atoi(argv[4]));
    backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((ret = tlsflow_loop_new(&loop, 0)) < 0 || (ret = tlsflow_config_new(&cfg, TLSFLOW_SERVER)) < 0 ||
        (ret = tlsflow_config_set_cert_file(cfg, argv[1], argv[2])) < 0 ||
        (ret = tlsflow_listen(loop, cfg, "127.0.0.1", argv[3], on_flow, NULL, &l)) < 0) {
        fprintf(stderr, "forwarder: %s\n", strerror(-ret));
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", tlsflow_listener_port(l));
    fflush(stdout);
    for (;;) {
        pfd[0] = (struct pollfd){ .fd = tlsflow_loop_fd(loop), .events = POLLIN };
        n = 1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (conns[i] && !conns[i]->is_writing && !conns[i]->backend_eof) {
                polled[n] = conns[i];
                pfd[n++] = (struct pollfd){ .fd = conns[i]->fd, .events = POLLIN };
            }
        if (poll(pfd, (nfds_t)n, -1) < 0)
            continue;   /* EINTR */
        /* The backends first: no callback ran since the list was made. */
        for (int i = 1; i < n; i++) {
            struct conn *c = polled[i];
            ssize_t got = pfd[i].revents ? read(c->fd, c->up, sizeof(c->up)) : -2;
            if (got > 0 && tlsflow_write(c->flow, c->up, (size_t)got, on_up_written, c) == 0)
                c->is_writing = 1;
            else if (got == 0 && tlsflow_close(c->flow, on_closed, c) == 0)
                c->backend_eof = 1;            /* close_notify after the pending writes */
            else if (got != -2)
                conn_end(c);
        }
        if (pfd[0].revents && tlsflow_loop_run_once(loop, 0) < 0)
            return 1;
    }
}
