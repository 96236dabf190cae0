/* tlsflow_on_release: the callback runs once, from the loop, after
 * tlsflow_free and after every callback the flow still owed (read, write and
 * close completing with TLSFLOW_E_CANCELED), never inside tlsflow_free,
 * also for a flow freed in its own callback; a second registration replaces
 * the first; misuse is refused; tlsflow_loop_free drops it uncalled.
 * (Registered from tests/ring/CMakeLists.txt.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tf_test.h"

/* What a flow's callbacks and its release saw. */
struct seen {
    tf_done read, write, close;
    int     released;
    int     owed_at_release;   /* callbacks not yet run when the release came */
    int     in_free;           /* set around tlsflow_free */
    int     released_in_free;
};

static void on_release(void *arg)
{
    struct seen *s = arg;

    s->released++;
    if (s->in_free)
        s->released_in_free++;
    s->owed_at_release = (s->read.n == 0) + (s->write.n == 0) + (s->close.n == 0);
}

static void on_release_wrong(void *arg)
{
    (void)arg;
    fail_msg("a replaced release callback ran");
}

static void on_release_never(void *arg)
{
    (void)arg;
    fail_msg("a release ran after tlsflow_loop_free");
}

static void free_flow(tlsflow *f, struct seen *s)
{
    s->in_free = 1;
    tlsflow_free(f);
    s->in_free = 0;
}

static bool cond_released(void *arg)
{
    return ((struct seen *)arg)->released > 0;
}

TF_TEST(test_misuse, 30)
{
    tf_env e;
    tlsflow *s, *c;
    struct seen sn;

    memset(&sn, 0, sizeof(sn));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_on_release(NULL, on_release, &sn), -EINVAL);
    assert_int_equal(tlsflow_on_release(c, NULL, &sn), -EINVAL);
    /* Registering twice replaces. */
    assert_int_equal(tlsflow_on_release(c, on_release_wrong, NULL), 0);
    assert_int_equal(tlsflow_on_release(c, on_release, &sn), 0);
    /* A pending read keeps the freed flow's memory: a registration now is refused. */
    assert_int_equal(tlsflow_read(c, tf_on_done, &sn.read), 0);
    free_flow(c, &sn);
    assert_int_equal(tlsflow_on_release(c, on_release_wrong, NULL), -EINVAL);
    tf_run_until(e.loop, cond_released, &sn, 5000, "release");
    assert_int_equal(sn.released, 1);
    assert_int_equal(sn.released_in_free, 0);
    assert_int_equal(sn.read.n, 1);
    assert_int_equal(sn.read.error.code, TLSFLOW_E_CANCELED);
    tlsflow_free(s);
    tf_run_for(e.loop, 20);
    assert_int_equal(sn.released, 1);
    tf_env_fini(&e);
}

/* Freed outside the loop with a read, a write and a close pending: the
 * release comes after all three, once. */
#define BIG (16u * 1024 * 1024)

TF_TEST(test_after_pending, 30)
{
    tf_env e;
    tlsflow *s, *c;
    struct seen sn;
    uint8_t *big = malloc(BIG);

    assert_non_null(big);
    memset(big, 'x', BIG);
    memset(&sn, 0, sizeof(sn));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_on_release(c, on_release, &sn), 0);
    assert_int_equal(tlsflow_read(c, tf_on_done, &sn.read), 0);
    /* The server never reads: the write stays pending, and so does the close behind it. */
    assert_int_equal(tlsflow_write(c, big, BIG, tf_on_done, &sn.write), 0);
    assert_int_equal(tlsflow_close(c, tf_on_done, &sn.close), 0);
    tf_run_for(e.loop, 50);
    assert_int_equal(sn.read.n + sn.write.n + sn.close.n, 0);
    free_flow(c, &sn);
    assert_int_equal(sn.released, 0);
    tf_run_until(e.loop, cond_released, &sn, 5000, "release");
    assert_int_equal(sn.released, 1);
    assert_int_equal(sn.released_in_free, 0);
    assert_int_equal(sn.owed_at_release, 0);
    assert_int_equal(sn.read.n, 1);
    assert_int_equal(sn.read.error.code, TLSFLOW_E_CANCELED);
    assert_int_equal(sn.write.n, 1);
    assert_int_equal(sn.write.status, TLSFLOW_ERROR);
    assert_int_equal(sn.close.n, 1);
    assert_int_equal(sn.close.error.code, TLSFLOW_E_CANCELED);
    tf_run_for(e.loop, 20);
    assert_int_equal(sn.released, 1);
    tlsflow_free(s);
    tf_env_fini(&e);
    free(big);
}

/* Nothing pending: the last reference goes inside tlsflow_free itself; the
 * release still waits for the loop. */
TF_TEST(test_idle_flow, 30)
{
    tf_env e;
    tlsflow *s, *c;
    struct seen sn;

    memset(&sn, 0, sizeof(sn));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_on_release(c, on_release, &sn), 0);
    free_flow(c, &sn);
    assert_int_equal(sn.released, 0);
    assert_true(tlsflow_loop_run_once(e.loop, 0) >= 0);
    assert_int_equal(sn.released, 1);
    assert_int_equal(sn.released_in_free, 0);
    tlsflow_free(s);
    tf_env_fini(&e);
}

/* Freed in its own read callback. */
struct self {
    struct seen sn;
    int         released_in_cb;
    int         in_cb;
};

static void on_release_self(void *arg)
{
    struct self *x = arg;

    on_release(&x->sn);
    if (x->in_cb)
        x->released_in_cb++;
}

static void read_then_free(tlsflow *f, const tlsflow_result *r, void *arg)
{
    struct self *x = arg;

    tf_on_done(f, r, &x->sn.read);
    x->in_cb = 1;
    free_flow(f, &x->sn);
    /* Still inside the flow's callback: the flow is freed, not released. */
    assert_int_equal(tlsflow_on_release(f, on_release_wrong, NULL), -EINVAL);
    x->in_cb = 0;
}

TF_TEST(test_free_in_callback, 30)
{
    tf_env e;
    tlsflow *s, *c;
    struct self x;
    tf_done w = { 0 };

    memset(&x, 0, sizeof(x));
    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_on_release(c, on_release_self, &x), 0);
    assert_int_equal(tlsflow_read(c, read_then_free, &x), 0);
    assert_int_equal(tlsflow_write(s, "hello", 5, tf_on_done, &w), 0);
    tf_run_until(e.loop, cond_released, &x.sn, 5000, "release");
    assert_int_equal(x.sn.read.n, 1);
    assert_int_equal(x.sn.read.status, TLSFLOW_OK);
    assert_int_equal(x.sn.released, 1);
    assert_int_equal(x.sn.released_in_free, 0);
    assert_int_equal(x.released_in_cb, 0);
    tf_run_for(e.loop, 20);
    assert_int_equal(x.sn.released, 1);
    tlsflow_free(s);
    tf_env_fini(&e);
}

/* Flows still open at tlsflow_loop_free go without their release (and
 * without leaking it). */
TF_TEST(test_loop_free, 30)
{
    tf_env e;
    tlsflow *s, *c;

    tf_env_init(&e);
    tf_env_pair(&e, "localhost", &s, &c);
    assert_int_equal(tlsflow_on_release(c, on_release_never, NULL), 0);
    assert_int_equal(tlsflow_on_release(s, on_release_never, NULL), 0);
    /* One of them freed, its release queued but not yet run; the loop is
     * freed without another run (tf_env_fini would run it). */
    tlsflow_free(s);
    tlsflow_listener_close(e.ls);
    tlsflow_loop_free(e.loop);
    tlsflow_config_free(e.scfg);
    tlsflow_config_free(e.ccfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_misuse),
        TF_CASE(test_after_pending),
        TF_CASE(test_idle_flow),
        TF_CASE(test_free_in_callback),
        TF_CASE(test_loop_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
