/* ring/post.c: tlsflow_loop_post from any thread (every task runs once, in
 * order per producer, on the loop's thread), a post waking a loop blocked in
 * io_uring_enter, a pending post keeping tlsflow_loop_run going,
 * tlsflow_loop_stop from another thread, and posts never run dropped by
 * tlsflow_loop_free.  Also built with ThreadSanitizer (scripts/test.sh). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "tf_test.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static void count_task(void *arg)
{
    (*(int *)arg)++;
}

TF_TEST(test_misuse, 10)
{
    tlsflow_loop *loop = tf_loop_new();
    int n = 0;

    assert_int_equal(tlsflow_loop_post(NULL, count_task, &n), -EINVAL);
    assert_int_equal(tlsflow_loop_post(loop, NULL, &n), -EINVAL);
    tlsflow_loop_free(loop);
    assert_int_equal(n, 0);
}

/* Posted from the loop's own thread, outside a run: the run runs it (it
 * keeps the run going until then), never the post itself. */
TF_TEST(test_post_keeps_run, 10)
{
    tlsflow_loop *loop = tf_loop_new();
    int n = 0;

    assert_int_equal(tlsflow_loop_post(loop, count_task, &n), 0);
    assert_int_equal(tlsflow_loop_post(loop, count_task, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_int_equal(n, 2);
    tlsflow_loop_free(loop);
}

/* ---- a post wakes a blocked loop ---- */

struct waker {
    tlsflow_loop *loop;
    int           delay_ms;
    atomic_int    ran;
};

static void mark_ran(void *arg)
{
    struct waker *w = arg;

    atomic_store(&w->ran, 1);
}

static void *post_later(void *arg)
{
    struct waker *w = arg;

    sleep_ms(w->delay_ms);
    if (tlsflow_loop_post(w->loop, mark_ran, w) != 0)
        atomic_store(&w->ran, -1);   /* (no cmocka in this thread) */
    return NULL;
}

TF_TEST(test_post_wakes, 20)
{
    struct waker w;
    pthread_t th;
    long long t0;

    w.loop = tf_loop_new();
    w.delay_ms = 50;
    atomic_init(&w.ran, 0);
    t0 = tf_now_ms();
    assert_int_equal(pthread_create(&th, NULL, post_later, &w), 0);
    /* Blocks for ever unless the post wakes it. */
    while (!atomic_load(&w.ran))
        assert_true(tlsflow_loop_run_once(w.loop, tf_ms(10000)) >= 0);
    assert_int_equal(atomic_load(&w.ran), 1);
    assert_true(tf_now_ms() - t0 < tf_ms(5000));
    pthread_join(th, NULL);
    tlsflow_loop_free(w.loop);
}

/* ---- 4 producers, 1,000,000 tasks ---- */

#define PRODUCERS 4
#define PER_PRODUCER 250000

struct prod {
    tlsflow_loop *loop;
    int           id;
    int           refused;
};

/* Loop-thread state. */
static uint32_t next_seq[PRODUCERS];
static long     ran, out_of_order, wrong_thread;
static pthread_t loop_thread;
static atomic_long ran_shared;   /* what the stopper watches */

static void seq_task(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    unsigned id = (unsigned)(v >> 24);
    uint32_t seq = (uint32_t)(v & 0xffffff);

    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread++;
    if (id >= PRODUCERS || seq != next_seq[id])
        out_of_order++;
    else
        next_seq[id]++;
    ran++;
    atomic_store_explicit(&ran_shared, ran, memory_order_relaxed);
}

static void *producer(void *arg)
{
    struct prod *p = arg;

    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        uintptr_t v = ((uintptr_t)p->id << 24) | i;
        if (tlsflow_loop_post(p->loop, seq_task, (void *)v) != 0)
            p->refused++;
        if ((i & 4095) == 0)
            sched_yield();   /* let the queue run empty now and then: coalescing both ways */
    }
    return NULL;
}

struct stopper {
    tlsflow_loop *loop;
    pthread_t     th[PRODUCERS];
    int           timed_out;
};

/* Joins the producers, waits until the loop ran everything, then stops it
 * from this thread: the loop is blocked in io_uring_enter by then. */
static void *stopper(void *arg)
{
    struct stopper *s = arg;
    long long end;

    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(s->th[i], NULL);
    end = tf_now_ms() + tf_ms(60000);
    while (atomic_load_explicit(&ran_shared, memory_order_relaxed) < (long)PRODUCERS * PER_PRODUCER) {
        if (tf_now_ms() > end) {
            s->timed_out = 1;
            break;
        }
        sleep_ms(1);
    }
    sleep_ms(20);
    tlsflow_loop_stop(s->loop);
    return NULL;
}

static void never_timer(tlsflow_timer *t, void *arg)
{
    (void)t;
    (void)arg;
}

TF_TEST(test_many_producers, 240)
{
    tlsflow_loop *loop = tf_loop_new();
    struct prod p[PRODUCERS];
    struct stopper s = { loop, { 0 }, 0 };
    tlsflow_timer *keep;
    pthread_t st;
    long long t0 = tf_now_ms();

    loop_thread = pthread_self();
    /* Keeps the run going between bursts: only the stop ends it. */
    assert_int_equal(tlsflow_timer_new(loop, &keep), 0);
    assert_int_equal(tlsflow_timer_start(keep, 3600 * 1000, 0, never_timer, NULL), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        p[i].loop = loop;
        p[i].id = i;
        p[i].refused = 0;
        assert_int_equal(pthread_create(&s.th[i], NULL, producer, &p[i]), 0);
    }
    assert_int_equal(pthread_create(&st, NULL, stopper, &s), 0);
    assert_int_equal(tlsflow_loop_run(loop), 0);
    pthread_join(st, NULL);
    print_message("1000000 posts from 4 threads in %lld ms\n", tf_now_ms() - t0);
    assert_int_equal(s.timed_out, 0);
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(p[i].refused, 0);
        assert_int_equal(next_seq[i], PER_PRODUCER);
    }
    assert_int_equal(ran, (long)PRODUCERS * PER_PRODUCER);
    assert_int_equal(out_of_order, 0);
    assert_int_equal(wrong_thread, 0);
    /* Nothing runs twice: nothing is left either. */
    assert_int_equal(tlsflow_loop_run_once(loop, 0) >= 0, 1);
    assert_int_equal(ran, (long)PRODUCERS * PER_PRODUCER);
    tlsflow_timer_free(keep);
    tlsflow_loop_free(loop);
}

/* ---- stop from another thread, posts left at loop_free ---- */

struct stop_later {
    tlsflow_loop *loop;
    int           delay_ms;
};

static void *stop_later(void *arg)
{
    struct stop_later *s = arg;

    sleep_ms(s->delay_ms);
    tlsflow_loop_stop(s->loop);
    return NULL;
}

static void must_not_run(void *arg)
{
    (void)arg;
    fail_msg("a task posted to a freed loop ran");
}

TF_TEST(test_stop_and_free, 20)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_timer *keep;
    struct stop_later s = { loop, 50 };
    pthread_t th;
    long long t0;

    assert_int_equal(tlsflow_timer_new(loop, &keep), 0);
    assert_int_equal(tlsflow_timer_start(keep, 3600 * 1000, 0, never_timer, NULL), 0);
    t0 = tf_now_ms();
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    /* Blocked in io_uring_enter with a timer an hour away: the stop wakes it. */
    assert_int_equal(tlsflow_loop_run(loop), 0);
    assert_true(tf_now_ms() - t0 >= 40);
    assert_true(tf_now_ms() - t0 < tf_ms(5000));
    pthread_join(th, NULL);
    /* Posted, never run: freed with the loop (ASan's leak check). */
    for (int i = 0; i < 10; i++)
        assert_int_equal(tlsflow_loop_post(loop, must_not_run, NULL), 0);
    tlsflow_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_misuse),
        TF_CASE(test_post_keeps_run),
        TF_CASE(test_post_wakes),
        TF_CASE(test_many_producers),
        TF_CASE(test_stop_and_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
