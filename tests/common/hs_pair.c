/* Two handshake sessions (handshake/) talking through buffers, no socket:
 * for tests of the record layer's own parts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tf_hs_pair.h"

void tf_hs_pump(tf_hs_end *from, tf_hs_end *to)
{
    size_t n = from->out.len;

    if (!n)
        return;
    assert_int_equal(tf_buf_reserve(&to->in, n), 0);
    memcpy(tf_buf_tail(&to->in), tf_buf_head(&from->out), n);
    to->in.len += n;
    tf_buf_consume(&from->out, n);
}

static void step(tf_hs_end *e)
{
    int ret;

    if (e->done)
        return;
    ret = tf_hs_handshake(&e->hs);
    if (ret == 0)
        e->done = true;
    else if (ret != GNUTLS_E_AGAIN)
        fail_msg("handshake: %s", gnutls_strerror(ret));
}

void tf_hs_pair_init(tf_hs_end *c, tf_hs_end *s, const tlsflow_config *ccfg,
                     const tlsflow_config *scfg, const char *key)
{
    memset(c, 0, sizeof(*c));
    memset(s, 0, sizeof(*s));
    assert_int_equal(tf_hs_session_init(&c->hs, ccfg, "localhost", key, &c->in, &c->out, &c->eof), 0);
    assert_int_equal(tf_hs_session_init(&s->hs, scfg, NULL, NULL, &s->in, &s->out, &s->eof), 0);
}

void tf_hs_pair_handshake(tf_hs_end *c, tf_hs_end *s)
{
    for (int i = 0; i < 20 && !(c->done && s->done); i++) {
        step(c);
        tf_hs_pump(c, s);
        step(s);
        tf_hs_pump(s, c);
    }
    assert_true(c->done && s->done);
}

void tf_hs_pair_free(tf_hs_end *c, tf_hs_end *s)
{
    tf_hs_end *e[2] = { c, s };

    for (int i = 0; i < 2; i++) {
        tf_hs_session_deinit(&e[i]->hs);
        tf_buf_free(&e[i]->in);
        tf_buf_free(&e[i]->out);
    }
}
