/* ring/timer.c: timers fire in deadline order, repeat, stop and free from
 * their own callbacks, never fire once stopped (even when already due in the
 * same round), keep tlsflow_loop_run going only while started, and 100,000
 * of them cost far fewer submissions than one each. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <time.h>

#include "tf_test.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

TF_TEST(test_misuse, 10)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_timer *t = NULL;

    assert_int_equal(tlsflow_timer_new(NULL, &t), -EINVAL);
    assert_null(t);
    assert_int_equal(tlsflow_timer_new(loop, NULL), -EINVAL);
    assert_int_equal(tlsflow_timer_new(loop, &t), 0);
    assert_non_null(t);
    assert_int_equal(tlsflow_timer_start(NULL, 1, 0, NULL, NULL), -EINVAL);
    assert_int_equal(tlsflow_timer_start(t, 1, 0, NULL, NULL), -EINVAL);
    tlsflow_timer_stop(NULL);
    tlsflow_timer_free(NULL);
    tlsflow_timer_stop(t);    /* never started */
    tlsflow_timer_stop(t);
    /* A timer never started keeps nothing going. */
    assert_int_equal(tlsflow_loop_run(loop), 0);
    tlsflow_timer_free(t);
    tlsflow_loop_free(loop);
}

/* ---- order ---- */

struct order {
    int       fired[8];
    int       n;
    long long at[8];
};

struct slot {
    struct order *o;
    int           id;
};

static void on_order(tlsflow_timer *t, void *arg)
{
    struct slot *s = arg;

    (void)t;
    assert_true(s->o->n < 8);
    s->o->at[s->o->n] = tf_now_ms();
    s->o->fired[s->o->n++] = s->id;
}

TF_TEST(test_order, 20)
{
    static const unsigned ms[6] = { 60, 10, 40, 20, 50, 30 };
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_timer *t[6];
    struct slot s[6];
    struct order o = { { 0 }, 0, { 0 } };
    long long t0 = tf_now_ms();

    for (int i = 0; i < 6; i++) {
        s[i].o = &o;
        s[i].id = i;
        assert_int_equal(tlsflow_timer_new(loop, &t[i]), 0);
        assert_int_equal(tlsflow_timer_start(t[i], ms[i], 0, on_order, &s[i]), 0);
    }
    /* A restart moves the timer: 0 now fires after 5 (at 70 ms). */
    assert_int_equal(tlsflow_timer_start(t[0], 70, 0, on_order, &s[0]), 0);
    /* Started timers keep the run going; once all fired it returns. */
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(o.n, 6);
    {
        static const int want[6] = { 1, 3, 5, 2, 4, 0 };
        static const unsigned due[6] = { 10, 20, 30, 40, 50, 70 };
        for (int i = 0; i < 6; i++) {
            assert_int_equal(o.fired[i], want[i]);
            assert_true(o.at[i] - t0 >= due[i]);   /* never early */
        }
    }
    for (int i = 0; i < 6; i++)
        tlsflow_timer_free(t[i]);
    tlsflow_loop_free(loop);
}

/* ---- repeat, and stop inside its own callback ---- */

struct rep {
    int       n, stop_at;
    long long at[16];
};

static void on_repeat(tlsflow_timer *t, void *arg)
{
    struct rep *r = arg;

    assert_true(r->n < 16);
    r->at[r->n++] = tf_now_ms();
    if (r->n == r->stop_at)
        tlsflow_timer_stop(t);
}

TF_TEST(test_repeat_stop_inside, 20)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_timer *t;
    struct rep r = { 0, 5, { 0 } };
    long long t0;

    assert_int_equal(tlsflow_timer_new(loop, &t), 0);
    t0 = tf_now_ms();
    assert_int_equal(tlsflow_timer_start(t, 20, 10, on_repeat, &r), 0);
    /* Stopped in its own fifth callback, it no longer keeps the run going. */
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(r.n, 5);
    assert_true(r.at[0] - t0 >= 20);
    for (int i = 1; i < 5; i++)
        assert_true(r.at[i] - r.at[i - 1] >= 10);
    /* Stopped, it does not fire again. */
    tf_run_for(loop, 50);
    assert_int_equal(r.n, 5);
    /* A stopped timer may start again. */
    r.stop_at = 6;
    assert_int_equal(tlsflow_timer_start(t, 1, 1, on_repeat, &r), 0);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(r.n, 6);
    tlsflow_timer_free(t);
    tlsflow_loop_free(loop);
}

/* ---- free inside its own callback ---- */

static void on_free_self(tlsflow_timer *t, void *arg)
{
    (*(int *)arg)++;
    tlsflow_timer_free(t);
}

TF_TEST(test_free_inside, 20)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_timer *once, *rep;
    int n_once = 0, n_rep = 0;

    assert_int_equal(tlsflow_timer_new(loop, &once), 0);
    assert_int_equal(tlsflow_timer_new(loop, &rep), 0);
    assert_int_equal(tlsflow_timer_start(once, 5, 0, on_free_self, &n_once), 0);
    assert_int_equal(tlsflow_timer_start(rep, 5, 1, on_free_self, &n_rep), 0);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(n_once, 1);
    assert_int_equal(n_rep, 1);
    tlsflow_loop_free(loop);
}

/* ---- stopped after expiry, before its callback ---- */

struct pairt {
    tlsflow_timer *other;
    int            first, second;
    int            mode;   /* 0 stop the other, 1 free it, 2 restart it */
};

static void on_second(tlsflow_timer *t, void *arg)
{
    (void)t;
    ((struct pairt *)arg)->second++;
}

static void on_first(tlsflow_timer *t, void *arg)
{
    struct pairt *p = arg;

    (void)t;
    p->first++;
    /* The other one is due too, in this very round. */
    if (p->mode == 0) {
        tlsflow_timer_stop(p->other);
    } else if (p->mode == 1) {
        tlsflow_timer_free(p->other);
        p->other = NULL;
    } else {
        assert_int_equal(tlsflow_timer_start(p->other, 40, 0, on_second, p), 0);
    }
}

TF_TEST(test_stopped_when_due, 20)
{
    for (int mode = 0; mode < 3; mode++) {
        tlsflow_loop *loop = tf_loop_new();
        tlsflow_timer *a;
        struct pairt p = { NULL, 0, 0, mode };
        long long t0;

        assert_int_equal(tlsflow_timer_new(loop, &a), 0);
        assert_int_equal(tlsflow_timer_new(loop, &p.other), 0);
        assert_int_equal(tlsflow_timer_start(a, 10, 0, on_first, &p), 0);
        assert_int_equal(tlsflow_timer_start(p.other, 10, 0, on_second, &p), 0);
        /* Both are due before the loop looks: one round reaps both. */
        sleep_ms(30);
        t0 = tf_now_ms();
        TF_RUN_UNTIL(loop, p.first == 1, 2000);
        if (mode < 2) {
            /* Stopped or freed: it never fires, and keeps nothing going. */
            assert_int_equal(tlsflow_loop_run(loop), 0);
            tf_run_for(loop, 30);
            assert_int_equal(p.second, 0);
        } else {
            /* Restarted: it fires at its new deadline, not in that round. */
            assert_int_equal(p.second, 0);
            assert_int_equal(tlsflow_loop_run(loop), 0);
            assert_int_equal(p.second, 1);
            assert_true(tf_now_ms() - t0 >= 40);
        }
        tlsflow_timer_free(a);
        tlsflow_timer_free(p.other);
        tlsflow_loop_free(loop);
    }
}

/* ---- the loop's liveness and loop_free ---- */

static void on_never(tlsflow_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    fail_msg("a stopped timer fired");
}

TF_TEST(test_liveness_and_loop_free, 20)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_timer *t, *u;
    long long t0;

    assert_int_equal(tlsflow_timer_new(loop, &t), 0);
    assert_int_equal(tlsflow_timer_new(loop, &u), 0);
    assert_int_equal(tlsflow_timer_start(t, 10000, 0, on_never, NULL), 0);
    tlsflow_timer_stop(t);
    /* Stopped: the run returns at once. */
    t0 = tf_now_ms();
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_true(tf_now_ms() - t0 < 1000);
    /* A bounded wait with a stopped timer is not cut short by it either. */
    assert_true(tlsflow_loop_run_once(loop, 0) >= 0);
    t0 = tf_now_ms();
    assert_int_equal(tlsflow_loop_run_once(loop, 30), 0);
    assert_true(tf_now_ms() - t0 >= 25);
    /* Timers still there (started or not) go with the loop. */
    assert_int_equal(tlsflow_timer_start(u, 10000, 100, on_never, NULL), 0);
    tlsflow_loop_free(loop);
}

/* ---- 100,000 timers ---- */

#define MANY 100000

struct many {
    long long start, started;   /* ms, just before and just after the start */
    unsigned  ms;
    long long fired;
};

static struct many many[MANY];
static int many_fired, many_early;
static long long many_last_due;
static int many_disorder;

static void on_many(tlsflow_timer *t, void *arg)
{
    struct many *m = arg;
    long long now = tf_now_ms(), due = m->start + m->ms;

    m->fired = now;
    many_fired++;
    if (now < due)
        many_early++;
    /* Deadlines come in order: none fires after one that was certainly due
     * later (the deadline is known to lie in [start, started] + ms). */
    if (m->started + m->ms + 1 < many_last_due)
        many_disorder++;
    if (due > many_last_due)
        many_last_due = due;
    tlsflow_timer_free(t);
}

TF_TEST(test_many, 120)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_loop_stats before, after;
    tlsflow_timer *t;
    long long t0;
    double cpu0;
    uint64_t x = 88172645463325252ull;

    assert_int_equal(tlsflow_loop_get_stats(loop, &before), 0);
    cpu0 = tf_cpu_seconds();
    t0 = tf_now_ms();
    for (int i = 0; i < MANY; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        many[i].ms = 1 + (unsigned)(x % 300);
        many[i].start = tf_now_ms();
        assert_int_equal(tlsflow_timer_new(loop, &t), 0);
        assert_int_equal(tlsflow_timer_start(t, many[i].ms, 0, on_many, &many[i]), 0);
        many[i].started = tf_now_ms();
    }
    print_message("100000 timers started in %lld ms\n", tf_now_ms() - t0);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(many_fired, MANY);
    assert_int_equal(many_early, 0);
    assert_int_equal(many_disorder, 0);
    assert_int_equal(tlsflow_loop_get_stats(loop, &after), 0);
    print_message("%llu submissions, %llu enters, %.2f s CPU, %lld ms\n",
                  after.submissions - before.submissions, after.enters - before.enters,
                  tf_cpu_seconds() - cpu0, tf_now_ms() - t0);
    /* One timeout re-armed per round (at most a round a millisecond),
     * never one per timer. */
    assert_true(after.submissions - before.submissions < 2000);
    /* O(log n) each: a fraction of a second, even under a sanitizer. */
    assert_true(tf_cpu_seconds() - cpu0 < (tf_under_sanitizer() ? 20.0 : 5.0));
    tlsflow_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_misuse),
        TF_CASE(test_order),
        TF_CASE(test_repeat_stop_inside),
        TF_CASE(test_free_inside),
        TF_CASE(test_stopped_when_due),
        TF_CASE(test_liveness_and_loop_free),
        TF_CASE(test_many),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
