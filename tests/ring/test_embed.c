/* tlsflow_loop_fd: a loop driven only from an epoll loop of the
 * application's, which calls tlsflow_loop_run_once(loop, 0) when the fd
 * fires.  The fd must be readable whenever there is work (completions, due
 * timers, posts, work queued outside the loop) and not otherwise: an epoll
 * wait that times out while run_once(loop, 0) would have had work is a
 * failure, and so is an idle loop whose fd keeps firing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "tf_test.h"

#define EPOLL_WAIT_MS 200

typedef struct {
    tlsflow_loop *loop;
    int           epfd;
    int           wakes;      /* the fd fired */
    int           timeouts;   /* epoll_wait timed out */
    int           missed;     /* ... while run_once(loop, 0) had work */
} driver;

static void driver_init(driver *d, tlsflow_loop *loop)
{
    struct epoll_event ev = { .events = EPOLLIN };

    d->loop = loop;
    d->wakes = d->timeouts = d->missed = 0;
    assert_true(tlsflow_loop_fd(loop) >= 0);
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(d->epfd >= 0);
    assert_int_equal(epoll_ctl(d->epfd, EPOLL_CTL_ADD, tlsflow_loop_fd(loop), &ev), 0);
}

/* One wait of the application's loop: true when the fd fired. */
static bool driver_step(driver *d, int wait_ms)
{
    struct epoll_event ev;
    int n = epoll_wait(d->epfd, &ev, 1, wait_ms);

    if (n < 0) {
        assert_int_equal(errno, EINTR);   /* io_uring's task work interrupts waits */
        return false;
    }
    if (n == 0) {
        d->timeouts++;
        /* Nothing may have been waiting. */
        if (tlsflow_loop_run_once(d->loop, 0) > 0)
            d->missed++;
        return false;
    }
    d->wakes++;
    assert_true(tlsflow_loop_run_once(d->loop, 0) >= 0);
    return true;
}

static void driver_until(driver *d, tf_cond *cond, void *arg, int timeout_ms, const char *what)
{
    long long end = tf_now_ms() + tf_ms(timeout_ms);

    while (!cond(arg)) {
        if (tf_now_ms() > end)
            fail_msg("epoll loop: no %s after %d ms (%d wakes, %d timeouts, %d missed)", what,
                     timeout_ms, d->wakes, d->timeouts, d->missed);
        driver_step(d, EPOLL_WAIT_MS);
    }
}

static void driver_fini(driver *d)
{
    close(d->epfd);
}

/* ---- an idle loop's fd stays quiet ---- */

TF_TEST(test_idle_quiet, 10)
{
    tlsflow_loop *loop = tf_loop_new();
    struct epoll_event ev;
    driver d;

    assert_int_equal(tlsflow_loop_fd(NULL), -EINVAL);
    driver_init(&d, loop);
    assert_true(tlsflow_loop_run_once(loop, 0) >= 0);
    assert_int_equal(epoll_wait(d.epfd, &ev, 1, 50), 0);
    driver_fini(&d);
    tlsflow_loop_free(loop);
}

/* ---- timers and posts ---- */

static void on_timer(tlsflow_timer *t, void *arg)
{
    (void)t;
    *(long long *)arg = tf_now_ms();
}

TF_TEST(test_timer_fires_fd, 20)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_timer *t;
    long long fired = 0, t0;
    driver d;

    driver_init(&d, loop);
    assert_true(tlsflow_loop_run_once(loop, 0) >= 0);
    assert_int_equal(tlsflow_timer_new(loop, &t), 0);
    t0 = tf_now_ms();
    /* Started outside the loop: the fd says there is a timer to arm, and
     * then fires again when it is due. */
    assert_int_equal(tlsflow_timer_start(t, 100, 0, on_timer, &fired), 0);
    while (!fired && tf_now_ms() - t0 < tf_ms(5000))
        driver_step(&d, 2000);
    assert_true(fired);
    assert_true(fired - t0 >= 100);
    assert_int_equal(d.timeouts, 0);
    assert_true(d.wakes <= 4);     /* no busy loop on the way */
    tlsflow_timer_free(t);
    driver_fini(&d);
    tlsflow_loop_free(loop);
}

struct poster {
    tlsflow_loop *loop;
    atomic_int    ran;
};

static void post_task(void *arg)
{
    atomic_store(&((struct poster *)arg)->ran, 1);
}

static void *post_later(void *arg)
{
    struct poster *p = arg;
    struct timespec ts = { 0, 50 * 1000000L };

    nanosleep(&ts, NULL);
    if (tlsflow_loop_post(p->loop, post_task, p) != 0)
        atomic_store(&p->ran, -1);
    return NULL;
}

TF_TEST(test_post_fires_fd, 20)
{
    struct poster p;
    pthread_t th;
    long long t0;
    driver d;

    p.loop = tf_loop_new();
    atomic_init(&p.ran, 0);
    driver_init(&d, p.loop);
    assert_true(tlsflow_loop_run_once(p.loop, 0) >= 0);
    t0 = tf_now_ms();
    assert_int_equal(pthread_create(&th, NULL, post_later, &p), 0);
    while (!atomic_load(&p.ran) && tf_now_ms() - t0 < tf_ms(5000))
        driver_step(&d, 2000);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&p.ran), 1);
    assert_int_equal(d.timeouts, 0);
    /* A post from the loop's own thread, outside a run. */
    atomic_store(&p.ran, 0);
    assert_int_equal(tlsflow_loop_post(p.loop, post_task, &p), 0);
    assert_true(driver_step(&d, 2000));
    assert_int_equal(atomic_load(&p.ran), 1);
    driver_fini(&d);
    tlsflow_loop_free(p.loop);
}

/* ---- a flow echoing megabytes ---- */

#define ECHO_LEN (6u * 1024 * 1024)

static tf_echo echo;

TF_TEST(test_echo_epoll, 120)
{
    tlsflow_loop *loop = tf_loop_new();
    tlsflow_config *scfg = tf_config(TLSFLOW_SERVER, NULL, 0);
    tlsflow_config *ccfg = tf_config(TLSFLOW_CLIENT, NULL, 0);
    tf_done con = { 0 }, closed = { 0 };
    char port[16];
    tf_xfer x;
    driver d;

    driver_init(&d, loop);
    tf_echo_listen(&echo, loop, scfg);
    snprintf(port, sizeof(port), "%d", echo.port);
    /* Everything from here on, the handshake included, is driven by epoll. */
    assert_int_equal(tlsflow_connect(loop, ccfg, "localhost", port, tf_on_done, &con), 0);
    driver_until(&d, tf_cond_done, &con, 10000, "open");
    if (con.status != TLSFLOW_OK)
        fail_msg("open: %s", con.message);
    tf_xfer_start(&x, con.flow, ECHO_LEN, ECHO_LEN, 7, TF_DATA_BINARY);
    driver_until(&d, tf_xfer_cond, &x, 60000, "echo");
    if (x.failed)
        fail_msg("echo: %s", x.message);
    assert_int_equal(x.received, ECHO_LEN);
    assert_int_equal(tlsflow_close(con.flow, tf_on_done, &closed), 0);
    driver_until(&d, tf_cond_done, &closed, 10000, "close");
    assert_int_equal(closed.status, TLSFLOW_OK);
    tlsflow_free(con.flow);
    driver_until(&d, tf_cond_echo_settled, &echo, 10000, "server end");
    print_message("%d wakes, %d epoll timeouts, %d missed\n", d.wakes, d.timeouts, d.missed);
    /* The transfer never waited on a quiet fd while work was there. */
    assert_int_equal(d.missed, 0);
    assert_true(d.timeouts <= 2);
    tf_xfer_release(&x);
    tf_echo_close(&echo);
    driver_fini(&d);
    tlsflow_loop_free(loop);
    tlsflow_config_free(scfg);
    tlsflow_config_free(ccfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_idle_quiet),
        TF_CASE(test_timer_fires_fd),
        TF_CASE(test_post_fires_fd),
        TF_CASE(test_echo_epoll),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
