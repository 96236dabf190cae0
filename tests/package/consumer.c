/* A program written only against the installed <tlsflow.h>: a tlsflow server
 * and a tlsflow client on one loop exchange "ping"/"pong" and close cleanly.
 * Usage: consumer CERTDIR.  Exit 0 on success. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tlsflow.h>

static int closed, failures;
static char got[64];
static size_t ngot;

static void fail(const char *what, const tlsflow_result *r)
{
    fprintf(stderr, "consumer: %s%s%s\n", what, r ? ": " : "", r ? tlsflow_error_message(r->error) : "");
    failures++;
}

static void on_closed(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK)
        fail("close", r);
    tlsflow_free(f);
    closed++;
}

static void on_written(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)f;
    (void)arg;
    if (r->status != TLSFLOW_OK || r->len != 4)
        fail("write", r);
}

/* Server: answer each segment with "pong", close at the client's close. */
static void on_server_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status == TLSFLOW_OK) {
        if (tlsflow_write(f, "pong", 4, on_written, NULL) || tlsflow_read(f, on_server_read, NULL))
            fail("server submit", NULL);
    } else if (r->status == TLSFLOW_EOF) {
        if (tlsflow_close(f, on_closed, NULL))
            fail("server close", NULL);
    } else {
        fail("server read", r);
    }
}

static void on_accept(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK) {
        fail("accept", r);
        return;
    }
    if (tlsflow_read(f, on_server_read, NULL))
        fail("server read submit", NULL);
}

static void on_client_read(tlsflow *f, const tlsflow_result *r, void *arg)
{
    (void)arg;
    if (r->status != TLSFLOW_OK) {
        fail("client read", r);
        return;
    }
    if (ngot + r->len > sizeof(got)) {
        fail("too much data", NULL);
        return;
    }
    memcpy(got + ngot, r->data, r->len);
    ngot += r->len;
    if (ngot < 4) {
        if (tlsflow_read(f, on_client_read, NULL))
            fail("client reread", NULL);
    } else if (tlsflow_close(f, on_closed, NULL)) {
        fail("client close", NULL);
    }
}

static void on_connect(tlsflow *f, const tlsflow_result *r, void *arg)
{
    tlsflow_info info;

    (void)arg;
    if (r->status != TLSFLOW_OK) {
        fail("connect", r);
        return;
    }
    if (tlsflow_get_info(f, &info) || info.tls_version < 0x0303 || !info.cipher)
        fail("info", NULL);
    if (tlsflow_write(f, "ping", 4, NULL, NULL) != -EINVAL)
        fail("a write without callback was accepted", NULL);
    if (tlsflow_write(f, "ping", 4, on_written, NULL) || tlsflow_read(f, on_client_read, NULL))
        fail("client submit", NULL);
}

int main(int argc, char **argv)
{
    char cert[512], key[512], ca[512], port[16];
    tlsflow_loop *loop;
    tlsflow_config *scfg, *ccfg;
    tlsflow_listener *ls;
    time_t deadline = time(NULL) + 10;

    if (argc != 2) {
        fprintf(stderr, "usage: consumer CERTDIR\n");
        return 2;
    }
    snprintf(cert, sizeof(cert), "%s/server-ecdsa.pem", argv[1]);
    snprintf(key, sizeof(key), "%s/server-ecdsa-key.pem", argv[1]);
    snprintf(ca, sizeof(ca), "%s/ca.pem", argv[1]);
    if (strcmp(tlsflow_version(), TLSFLOW_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: library %s, header %s\n", tlsflow_version(), TLSFLOW_VERSION_STRING);
        return 1;
    }
    if (tlsflow_loop_new(&loop, 0) || tlsflow_config_new(&scfg, TLSFLOW_SERVER) ||
        tlsflow_config_new(&ccfg, TLSFLOW_CLIENT) ||
        tlsflow_config_set_cert_file(scfg, cert, key) || tlsflow_config_set_ca_file(ccfg, ca) ||
        tlsflow_listen(loop, scfg, "127.0.0.1", "0", on_accept, NULL, &ls)) {
        fprintf(stderr, "consumer: set-up failed\n");
        return 1;
    }
    snprintf(port, sizeof(port), "%d", tlsflow_listener_port(ls));
    if (tlsflow_connect(loop, ccfg, "localhost", port, on_connect, NULL)) {
        fprintf(stderr, "consumer: connect refused\n");
        return 1;
    }
    while (closed < 2 && !failures && time(NULL) < deadline)
        if (tlsflow_loop_run_once(loop, 100) < 0)
            break;
    tlsflow_listener_close(ls);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
    if (closed < 2 || failures || ngot != 4 || memcmp(got, "pong", 4) != 0) {
        fprintf(stderr, "consumer: failed (closed %d, failures %d, got %zu bytes)\n", closed, failures, ngot);
        return 1;
    }
    printf("consumer: ok, tlsflow %s\n", tlsflow_version());
    return 0;
}
