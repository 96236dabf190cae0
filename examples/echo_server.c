/* An echo server: every flow sends back what it reads, until the peer's
 * close_notify; then it closes too.
 *
 *   echo_server CERT.pem KEY.pem [PORT]      (PORT 0 = any free port)
 *
 * Prints "listening on 127.0.0.1:PORT" once it listens; runs until killed.
 * Build: cc echo_server.c $(pkg-config --cflags --libs tlsflow) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlsflow.h>

/* A copy of one segment, alive until its write completes. */
static void on_written(tlsflow *f, const tlsflow_result *r, void *copy)
{
    (void)f;
    (void)r;   /* a failed write shows up in the next read as well */
    free(copy);
}

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)r;
    (void)arg;
    tlsflow_free(f);
}

static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    void *copy;

    if (r->status == TLSFLOW_EOF) {            /* the peer's close_notify */
        if (tlsflow_close(f, on_closed, NULL) < 0)
            tlsflow_free(f);
        return;
    }
    if (r->status == TLSFLOW_ERROR) {
        fprintf(stderr, "echo_server: %s\n", tlsflow_error_message(r->error));
        tlsflow_free(f);                       /* resets the connection */
        return;
    }
    /* r->data lives until this callback returns: the write needs a copy. */
    copy = malloc(r->len);
    if (!copy || tlsflow_write(f, memcpy(copy, r->data, r->len), r->len, on_written, copy) < 0) {
        free(copy);
        tlsflow_free(f);
        return;
    }
    if (tlsflow_read(f, on_read, arg) < 0)
        tlsflow_free(f);
}

static void on_flow(tlsflow *f, const tlsflow_result *r, void *arg)
{
    if (r->status != TLSFLOW_OK) {             /* one handshake failed; go on */
        fprintf(stderr, "echo_server: handshake: %s\n", tlsflow_error_message(r->error));
        return;
    }
    if (tlsflow_read(f, on_read, arg) < 0)
        tlsflow_free(f);
}

int main(int argc, char **argv)
{
    tlsflow_loop *loop = NULL;
    tlsflow_config *cfg = NULL;
    tlsflow_listener *l;
    int ret;

    if (argc < 3) {
        fprintf(stderr, "usage: echo_server CERT.pem KEY.pem [PORT]\n");
        return 2;
    }
    if ((ret = tlsflow_loop_new(&loop, 0)) < 0 ||
        (ret = tlsflow_config_new(&cfg, TLSFLOW_SERVER)) < 0 ||
        (ret = tlsflow_config_set_cert_file(cfg, argv[1], argv[2])) < 0 ||
        (ret = tlsflow_listen(loop, cfg, "127.0.0.1", argc > 3 ? argv[3] : "4433", on_flow, NULL,
                              &l)) < 0) {
        fprintf(stderr, "echo_server: %s\n", strerror(-ret));
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", tlsflow_listener_port(l));
    fflush(stdout);
    ret = tlsflow_loop_run(loop);               /* callbacks run only from here */
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    return ret < 0;
}
