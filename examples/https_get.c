/* An HTTPS GET client: fetches one path and copies the response to stdout.
 *
 *   https_get HOST PORT PATH [CA.pem]     (default: the system trust store)
 *
 * Exits 0 when the response began with "HTTP/1.x 200" and the server closed
 * with close_notify (or the body ended and we closed), 1 otherwise.
 * Build: cc https_get.c $(pkg-config --cflags --libs tlsflow) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlsflow.h>

struct get {
    char request[1024];
    int  status;        /* the HTTP status, once seen */
    int  failed, done;
    char head[16];      /* the first bytes, to find the status */
    size_t nhead;
};

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct get *g = arg;

    if (r->status == TLSFLOW_ERROR) {
        fprintf(stderr, "https_get: close: %s\n", tlsflow_error_message(r->error));
        g->failed = 1;
    }
    g->done = 1;
    tlsflow_free(f);
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct get *g = arg;

    if (r->status == TLSFLOW_OK) {
        size_t n = r->len < sizeof(g->head) - 1 - g->nhead ? r->len : sizeof(g->head) - 1 - g->nhead;
        memcpy(g->head + g->nhead, r->data, n);
        g->nhead += n;
        fwrite(r->data, 1, r->len, stdout);
        if (tlsflow_read(f, on_read, g) == 0)
            return;
        g->failed = 1;
    } else if (r->status == TLSFLOW_EOF) {     /* the server's close_notify */
        if (tlsflow_close(f, on_closed, g) == 0)
            return;
    } else {
        fprintf(stderr, "https_get: read: %s\n", tlsflow_error_message(r->error));
        g->failed = 1;
    }
    g->done = 1;
    tlsflow_free(f);
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    if (r->status != TLSFLOW_OK) {
        fprintf(stderr, "https_get: write: %s\n",
                r->status == TLSFLOW_EOF ? "the server stopped reading" : tlsflow_error_message(r->error));
        ((struct get *)arg)->failed = 1;     /* the read reports the end */
    }
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct get *g = arg;
    tlsflow_info in;

    if (r->status != TLSFLOW_OK) {             /* f is NULL: nothing to free */
        fprintf(stderr, "https_get: %s\n", tlsflow_error_message(r->error));
        g->failed = g->done = 1;
        return;
    }
    if (tlsflow_get_info(f, &in) == 0)
        fprintf(stderr, "https_get: TLS %s %s, kernel TLS tx %s rx %s\n",
                in.tls_version == 0x0304 ? "1.3" : "1.2", in.cipher,
                in.ktls_tx ? "yes" : "no", in.ktls_rx ? "yes" : "no");
    if (tlsflow_write(f, g->request, strlen(g->request), on_written, g) < 0 ||
        tlsflow_read(f, on_read, g) < 0) {
        g->failed = g->done = 1;
        tlsflow_free(f);
    }
}

int main(int argc, char **argv)
{
    static struct get g;
    tlsflow_loop *loop;
    tlsflow_config *cfg;
    int ret;

    if (argc < 4) {
        fprintf(stderr, "usage: https_get HOST PORT PATH [CA.pem]\n");
        return 2;
    }
    snprintf(g.request, sizeof(g.request),
             "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[3], argv[1]);
    if ((ret = tlsflow_loop_new(&loop, 0)) < 0 ||
        (ret = tlsflow_config_new(&cfg, TLSFLOW_CLIENT)) < 0 ||
        (argc > 4 && (ret = tlsflow_config_set_ca_file(cfg, argv[4])) < 0) ||
        (ret = tlsflow_connect(loop, cfg, argv[1], argv[2], on_open, &g)) < 0) {
        fprintf(stderr, "https_get: %s\n", strerror(-ret));
        return 1;
    }
    while (!g.done && (ret = tlsflow_loop_run_once(loop, -1)) >= 0)
        ;
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    if (sscanf(g.head, "HTTP/1.%*d %d", &g.status) != 1 || g.status != 200)
        g.failed = 1;
    return ret < 0 || g.failed;
}
