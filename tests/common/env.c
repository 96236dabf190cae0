/* tf_env: a loop, a server and a client config from the test PKI, a listener
 * whose flows are recorded, and pairs of flows opened through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

void tf_env_configs(tf_env *e, const char *cert, const char *key)
{
    memset(e, 0, sizeof(*e));
    e->loop = tf_loop_new();
    e->scfg = tf_server_config(cert ? cert : TF_ECDSA_CERT, key ? key : TF_ECDSA_KEY, NULL);
    e->ccfg = tf_client_config(NULL, TF_CA);
    assert_int_equal(tlsflow_config_set_handshake_timeout(e->scfg, (unsigned)tf_ms(5000)), 0);
    assert_int_equal(tlsflow_config_set_handshake_timeout(e->ccfg, (unsigned)tf_ms(5000)), 0);
}

void tf_env_listen(tf_env *e, const char *host)
{
    assert_int_equal(tlsflow_listen(e->loop, e->scfg, host, "0", tf_on_done, &e->acc, &e->ls), 0);
    snprintf(e->port, sizeof(e->port), "%d", tlsflow_listener_port(e->ls));
}

void tf_env_init(tf_env *e)
{
    tf_env_configs(e, NULL, NULL);
    tf_env_listen(e, "127.0.0.1");
}

void tf_env_pair(tf_env *e, const char *host, tlsflow **srv, tlsflow **cli)
{
    int acc = e->acc.n, con = e->con.n;

    memset(&e->con, 0, sizeof(e->con));
    e->con.n = con;
    assert_int_equal(tlsflow_connect(e->loop, e->ccfg, host, e->port, tf_on_done, &e->con), 0);
    TF_RUN_UNTIL(e->loop, e->acc.n > acc && e->con.n > con, 5000);
    if (e->con.status != TLSFLOW_OK)
        fail_msg("connect: %s", e->con.message);
    if (e->acc.status != TLSFLOW_OK)
        fail_msg("accept: %s", e->acc.message);
    assert_non_null(e->acc.flow);
    assert_non_null(e->con.flow);
    *srv = e->acc.flow;
    *cli = e->con.flow;
}

void tf_env_fini(tf_env *e)
{
    if (e->ls)
        tlsflow_listener_close(e->ls);
    for (int i = 0; i < 5; i++)
        assert_true(tlsflow_loop_run_once(e->loop, 0) >= 0);
    tlsflow_loop_free(e->loop);
    tlsflow_config_free(e->scfg);
    tlsflow_config_free(e->ccfg);
    memset(e, 0, sizeof(*e));
}
