/* The ring's set-up by probe (ring/setup.c): the newest task-work mode the
 * running kernel takes, what tlsflow_loop_ring_setup says, TLSFLOW_RING_FLAGS
 * forcing each set (a flow echoes under each), words it does not know
 * refused, and a loop owned by the first thread that runs it (made on
 * another, as a server's workers are): a third thread's run is -EEXIST. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <cmocka.h>

#include "tf_test.h"

static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;

    assert_int_equal(uname(&u), 0);
    assert_true(sscanf(u.release, "%d.%d", &ma, &mi) == 2);
    return ma > major || (ma == major && mi >= minor);
}

static bool starts_with(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

TF_TEST(test_probed_set, 10)
{
    tlsflow_loop *loop;
    const char *set;

    unsetenv("TLSFLOW_RING_FLAGS");
    assert_null(tlsflow_loop_ring_setup(NULL));
    assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
    set = tlsflow_loop_ring_setup(loop);
    print_message("io_uring set-up: %s\n", set);
    assert_non_null(set);
    assert_true(starts_with(set, "defer") || starts_with(set, "coop") || starts_with(set, "plain"));
    /* Cooperative task work since 5.19; deferred task work and a registered
     * descriptor only on request (they tie the ring to a thread), receive
     * bundles too (they did not pay, BENCHMARKS.md). */
    if (kernel_at_least(5, 19))
        assert_string_equal(set, "coop");
    else
        assert_string_equal(set, "plain");
    tlsflow_loop_free(loop);
}

TF_TEST(test_forced_sets_echo, 120)
{
    static const char *const sets[] = { "plain,noregfd", "plain", "coop,regfd", "defer", "defer,regfd",
                                        "coop,nobundle", "coop,bundle" };

    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        tf_echo_run r = { .len = 1 << 20 };

        if (!strncmp(sets[i], "coop", 4) && !kernel_at_least(5, 19))
            continue;
        if (!strncmp(sets[i], "defer", 5) && !kernel_at_least(6, 1))
            continue;
        if (strstr(sets[i], ",bundle") && !kernel_at_least(6, 10))
            continue;
        setenv("TLSFLOW_RING_FLAGS", sets[i], 1);
        tf_echo_roundtrip(&r);
        assert_true(r.ok);
        {
            tlsflow_loop *loop;
            assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
            assert_memory_equal(tlsflow_loop_ring_setup(loop), sets[i], strcspn(sets[i], ","));
            if (!strcmp(sets[i], "plain,noregfd"))
                assert_null(strstr(tlsflow_loop_ring_setup(loop), "regfd"));
            if (strstr(sets[i], "nobundle"))
                assert_null(strstr(tlsflow_loop_ring_setup(loop), "bundle"));
            if (strstr(sets[i], ",bundle"))
                assert_non_null(strstr(tlsflow_loop_ring_setup(loop), ",bundle"));
            /* (regfd is registered by the first run, on the thread that runs) */
            tlsflow_loop_free(loop);
        }
    }
    unsetenv("TLSFLOW_RING_FLAGS");
}

TF_TEST(test_unknown_words_refused, 10)
{
    static const char *const bad[] = { "fast", "defer,turbo", "regfd", "coop,plain,x" };
    tlsflow_loop *loop = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("TLSFLOW_RING_FLAGS", bad[i], 1);
        assert_int_equal(tlsflow_loop_new(&loop, 0), -EINVAL);
        assert_null(loop);
    }
    unsetenv("TLSFLOW_RING_FLAGS");
}

static void *run_elsewhere(void *arg)
{
    tlsflow_loop *loop = arg;

    return (void *)(intptr_t)tlsflow_loop_run_once(loop, 0);
}

/* A loop made on one thread and handed to another (a server's workers):
 * the thread that first runs it owns it; what was queued before (a listener's
 * accept) waits for that run; another thread's run is refused. */
TF_TEST(test_first_runner_owns, 30)
{
    static const char *const sets[] = { "defer", "coop,regfd", "coop", "plain,noregfd" };

    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        tlsflow_loop *loop;
        pthread_t t;
        void *ret;

        if (!strncmp(sets[i], "defer", 5) && !kernel_at_least(6, 1))
            continue;
        if (!strncmp(sets[i], "coop", 4) && !kernel_at_least(5, 19))
            continue;
        setenv("TLSFLOW_RING_FLAGS", sets[i], 1);
        assert_int_equal(tlsflow_loop_new(&loop, 0), 0);
        unsetenv("TLSFLOW_RING_FLAGS");
        assert_int_equal(pthread_create(&t, NULL, run_elsewhere, loop), 0);
        assert_int_equal(pthread_join(t, &ret), 0);
        assert_true((int)(intptr_t)ret >= 0);
        if (strstr(tlsflow_loop_ring_setup(loop), "regfd") || !strncmp(sets[i], "defer", 5))
            assert_int_equal(tlsflow_loop_run_once(loop, 0), -EEXIST);
        else
            assert_true(tlsflow_loop_run_once(loop, 0) >= 0);   /* a plain ring is no thread's */
        tlsflow_loop_free(loop);
    }
}

/* An echo whose listener and connect were set up on the main thread, run
 * entirely on another thread. */
static void *echo_elsewhere(void *arg)
{
    tf_echo_run *r = arg;

    tf_echo_roundtrip(r);
    return NULL;
}

TF_TEST(test_loop_on_a_worker, 60)
{
    tf_echo_run r = { .len = 256 << 10 };
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, echo_elsewhere, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(r.ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TF_CASE(test_probed_set),
        TF_CASE(test_forced_sets_echo),
        TF_CASE(test_unknown_words_refused),
        TF_CASE(test_first_runner_owns),
        TF_CASE(test_loop_on_a_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
