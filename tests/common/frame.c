/* The test frame: an alarm per test that kills the peers and fails fast, a
 * teardown that stops peers and shows their logs when the test failed, skip
 * helpers, the clock and TF_TIME_SCALE. */
#include <fnmatch.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

/* Also read by the alarm handler. */
static char test_name[128] = "(no test)";
static volatile sig_atomic_t passed = 1;

void tf_peers_kill_all_async(void);   /* peer.c: async-signal-safe */

static void on_alarm(int sig)
{
    static const char pre[] = "\n*** tlsflow test timed out: ";

    (void)sig;
    tf_peers_kill_all_async();
    (void)!write(2, pre, sizeof(pre) - 1);
    (void)!write(2, test_name, strlen(test_name));
    (void)!write(2, "\n", 1);
    _exit(1);
}

static void at_exit(void)
{
    tf_peers_stop_all(false);
}

void tf_test_begin(const char *name, unsigned timeout_s)
{
    static bool once;
    struct sigaction sa;

    if (!once) {
        once = true;
        signal(SIGPIPE, SIG_IGN);
        atexit(at_exit);
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
    }
    snprintf(test_name, sizeof(test_name), "%s", name);
    passed = 0;
    /* TF_ONLY=glob runs just the tests whose function name matches. */
    if (getenv("TF_ONLY") && fnmatch(getenv("TF_ONLY"), name, 0)) {
        passed = 1;
        skip();
    }
    alarm((unsigned)tf_time_scale() * (timeout_s ? timeout_s : 60));
}

void tf_test_end(void)
{
    passed = 1;
}

const char *tf_test_name(void)
{
    return test_name;
}

const char *tf_name(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    return s;
}

/* ---- time ---- */

long long tf_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tf_time_scale(void)
{
    const char *e = getenv("TF_TIME_SCALE");   /* read each time: threads call this too */
    int k = e ? atoi(e) : 1;

    return k > 0 ? k : 1;
}

int tf_ms(int ms)
{
    return ms * tf_time_scale();
}

int tf_test_teardown(void **state)
{
    (void)state;
    alarm(0);
    tf_peers_stop_all(!passed);
    passed = 1;
    return 0;
}

void tf_skip_note(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "SKIP %s: ", test_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool tf_have_bin(const char *bin)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (strchr(bin, '/'))
        return access(bin, X_OK) == 0;
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        struct stat st;

        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, bin);
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

void tf_require_bins(const char *bin, ...)
{
    va_list ap;

    va_start(ap, bin);
    for (const char *b = bin; b; b = va_arg(ap, const char *)) {
        if (!tf_have_bin(b)) {
            fprintf(stderr, "SKIP: %s not found in PATH\n", b);
            va_end(ap);
            exit(TF_SKIP);
        }
    }
    va_end(ap);
}
