/* A program written only against the installed <tlsflow.h>, exchanging data
 * with real OpenSSL and GnuTLS peers:
 *   peers client HOST PORT CAFILE   sends 64 KiB of text lines, expects them echoed
 *   peers server CERT KEY           echoes one connection; prints "port N" first
 * Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlsflow.h>

#define TOTAL (64 * 1024)

static char out[TOTAL], in[TOTAL];
static size_t got;
static int done, failed;

static void fail(const char *what, const tlsflow_result *r)
{
    fprintf(stderr, "peers: %s: %s\n", what, r ? tlsflow_error_message(r->error) : "");
    failed = done = 1;
}

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)r;
    (void)arg;
    tlsflow_free(f);
    done = 1;
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    free(arg);
    if (r->status == TLSFLOW_ERROR)
        fail("write", r);
}

/* Client: reads the echo back; server: echoes until the peer closes. */
static void on_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    int server = arg != NULL;

    if (r->status == TLSFLOW_EOF) {
        if (!server && got != TOTAL)
            fail("early EOF", NULL);
        tlsflow_close(f, on_closed, NULL);
        return;
    }
    if (r->status == TLSFLOW_ERROR) {
        if (server)   /* many peers end without close_notify: fine for an echo */
            done = 1;
        else
            fail("read", r);
        tlsflow_free(f);
        return;
    }
    if (server) {
        void *copy = malloc(r->len);
        memcpy(copy, r->data, r->len);
        tlsflow_write(f, copy, r->len, on_written, copy);
    } else {
        if (got + r->len > TOTAL) {
            fail("too much data", NULL);
            return;
        }
        memcpy(in + got, r->data, r->len);
        got += r->len;
        if (got == TOTAL) {
            if (memcmp(in, out, TOTAL))
                fail("echo differs", NULL);
            tlsflow_close(f, on_closed, NULL);
            return;
        }
    }
    tlsflow_read(f, on_read, arg);
}

static void on_open(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tlsflow_info info;

    if (r->status != TLSFLOW_OK) {
        fail("open", r);
        return;
    }
    tlsflow_get_info(f, &info);
    fprintf(stderr, "peers: %s, %s\n", info.tls_version == 0x0304 ? "TLS 1.3" : "TLS 1.2", info.cipher);
    if (!arg)
        tlsflow_write(f, out, TOTAL, on_written, NULL);
    tlsflow_read(f, on_read, arg);
}

int main(int argc, char **argv)
{
    tlsflow_loop *loop;
    tlsflow_config *cfg;
    tlsflow_listener *ls = NULL;
    int server = argc == 4 && strcmp(argv[1], "server") == 0;

    if (!server && !(argc == 5 && strcmp(argv[1], "client") == 0)) {
        fprintf(stderr, "usage: peers client HOST PORT CAFILE | peers server CERT KEY\n");
        return 2;
    }
    for (size_t i = 0; i < TOTAL; i++)   /* text lines: gnutls-serv echoes line by line */
        out[i] = (i % 64 == 63) ? '\n' : (char)('a' + (i * 7 + i / 64) % 26);
    if (tlsflow_loop_new(&loop, 0) < 0 ||
        tlsflow_config_new(&cfg, server ? TLSFLOW_SERVER : TLSFLOW_CLIENT) < 0)
        return 1;
    if (server) {
        if (tlsflow_config_set_cert_file(cfg, argv[2], argv[3]) < 0 ||
            tlsflow_listen(loop, cfg, "127.0.0.1", "0", on_open, (void *)1, &ls) < 0)
            return 1;
        printf("port %d\n", tlsflow_listener_port(ls));
        fflush(stdout);
    } else if (tlsflow_config_set_ca_file(cfg, argv[4]) < 0 ||
               tlsflow_connect(loop, cfg, argv[2], argv[3], on_open, NULL) < 0) {
        return 1;
    }
    while (!done && tlsflow_loop_run_once(loop, 10000) > 0)
        ;
    if (!done)
        fail("timed out", NULL);
    if (ls)
        tlsflow_listener_close(ls);
    tlsflow_loop_free(loop);
    tlsflow_config_free(cfg);
    return failed;
}
