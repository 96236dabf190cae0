/* A multi-threaded HTTPS server: one loop per thread, each with its own listener
 * on the same port (tlsflow_listen sets SO_REUSEPORT: the kernel spreads connections
 * among them), one config shared by all.  A request is handed to the next thread with
 * tlsflow_loop_post, which writes the response there and posts it back: a flow is
 * used only from its own loop's thread.     threaded_server CERT KEY THREADS [PORT]
 * prints "listening on 127.0.0.1:PORT"; SIGINT or SIGTERM stop it. */
#define _GNU_SOURCE   /* pthread_sigmask, sigwait under -std=c11 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlsflow.h>

#define MAX_THREADS 16
static struct worker { int index; tlsflow_loop *loop; pthread_t thread; } workers[MAX_THREADS];
static int nworkers;

struct conn {
    tlsflow       *flow;
    struct worker *home, *helper;   /* the flow's thread; the one that answers */
    size_t         len;
    char           buf[2048];       /* the request, then the response */
};

static void conn_free(void *c) { free(c); }
static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)r, (void)arg;
    tlsflow_free(f);   /* conn_free runs once its last callback did */
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    if (r->status != TLSFLOW_OK || tlsflow_close(f, on_closed, arg) < 0)
        tlsflow_free(f);
}

/* Back on the flow's own thread: send what the helper wrote. */
static void answer(void *arg)
{
    struct conn *c = arg;

    if (tlsflow_write(c->flow, c->buf, c->len, on_written, c) < 0)
        tlsflow_free(c->flow);
}

/* On the helper's thread: make the response, touching only c->buf. */
static void compute(void *arg)
{
    struct conn *c = arg;
    char body[128];
    int n = snprintf(body, sizeof(body), "accepted by thread %d, answered by thread %d\n",
                     c->home->index, c->helper->index);

    c->len = (size_t)snprintf(c->buf, sizeof(c->buf), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              "Content-Length: %d\r\nConnection: close\r\n\r\n%s", n, body);
    if (tlsflow_loop_post(c->home->loop, answer, c) < 0)
        abort();   /* out of memory: the flow would wait for ever */
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct conn *c = arg;
    size_t n;

    if (r->status != TLSFLOW_OK) {            /* EOF or error before a whole request */
        tlsflow_free(f); return;
    }
    n = r->len < sizeof(c->buf) - 1 - c->len ? r->len : sizeof(c->buf) - 1 - c->len;
    memcpy(c->buf + c->len, r->data, n);
    c->len += n;
    c->buf[c->len] = '\0';
    if (strstr(c->buf, "\r\n\r\n")) {         /* the request is complete: hand it over */
        if (tlsflow_loop_post(c->helper->loop, compute, c) < 0)
            tlsflow_free(f);
    } else if (c->len == sizeof(c->buf) - 1 || tlsflow_read(f, on_read, c) < 0) {
        tlsflow_free(f);
    }
}

static void on_flow(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct worker *w = arg;
    struct conn *c = r->status == TLSFLOW_OK ? calloc(1, sizeof(*c)) : NULL;

    if (r->status != TLSFLOW_OK)
        return;
    if (!c || tlsflow_on_release(f, conn_free, c) < 0) {
        free(c); tlsflow_free(f); return;
    }
    c->flow = f;
    c->home = w;
    c->helper = &workers[(w->index + 1) % nworkers];
    if (tlsflow_read(f, on_read, c) < 0)
        tlsflow_free(f);
}

static void *run(void *w) { tlsflow_loop_run(((struct worker *)w)->loop); return NULL; }

/* Posted by main: a run that has not begun yet is stopped as well. */
static void stop(void *arg) { tlsflow_loop_stop(((struct worker *)arg)->loop); }
int main(int argc, char **argv)
{
    tlsflow_config *cfg;
    tlsflow_listener *l;
    const char *port = argc > 4 ? argv[4] : "4433";
    char port0[16];
    sigset_t sigs;
    int ret, sig;

    if (argc < 4 || (nworkers = atoi(argv[3])) < 1 || nworkers > MAX_THREADS) {
        fprintf(stderr, "usage: threaded_server CERT.pem KEY.pem THREADS(1..16) [PORT]\n");
        return 2;
    }
    sigemptyset(&sigs);   /* SIGINT, SIGTERM: for sigwait below, not the workers */
    sigaddset(&sigs, SIGINT), sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if ((ret = tlsflow_config_new(&cfg, TLSFLOW_SERVER)) < 0 ||
        (ret = tlsflow_config_set_cert_file(cfg, argv[1], argv[2])) < 0)
        goto fail;
    /* Each loop and listener is made here and then run by its thread only. */
    for (int i = 0; i < nworkers; i++) {
        workers[i].index = i;
        if ((ret = tlsflow_loop_new(&workers[i].loop, 0)) < 0 ||
            (ret = tlsflow_listen(workers[i].loop, cfg, "127.0.0.1", port, on_flow, &workers[i], &l)) < 0)
            goto fail;
        snprintf(port0, sizeof(port0), "%d", tlsflow_listener_port(l));
        port = port0;   /* the others join the first one's port */
    }
    printf("listening on 127.0.0.1:%s\n", port);
    fflush(stdout);
    for (int i = 0; i < nworkers; i++)
        pthread_create(&workers[i].thread, NULL, run, &workers[i]);
    sigwait(&sigs, &sig);
    for (int i = 0; i < nworkers; i++) {
        if (tlsflow_loop_post(workers[i].loop, stop, &workers[i]) < 0)
            abort();
        pthread_join(workers[i].thread, NULL);
    }
    for (int i = 0; i < nworkers; i++)   /* no thread runs now: no post can race */
        tlsflow_loop_free(workers[i].loop);
    tlsflow_config_free(cfg);
    return 0;
fail:
    fprintf(stderr, "threaded_server: %s\n", strerror(-ret));
    return 1;
}
