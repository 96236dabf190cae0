/* The kernel's side of kTLS tests: whether the tls ULP is there (and whether
 * it must be: TLSFLOW_EXPECT_KTLS=1), whether TLS 1.3 rekeys, and
 * /proc/net/tls_stat snapshots. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <cmocka.h>

#include "ktls/ktls.h"
#include "tf_test.h"

bool tf_expect_ktls(void)
{
    const char *e = getenv("TLSFLOW_EXPECT_KTLS");

    return e && strcmp(e, "1") == 0;
}

bool tf_kernel_has_tls(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    int l, c, s;
    bool ok = false;

    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(l, (void *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
        getsockname(l, (void *)&a, &al) == 0 && connect(c, (void *)&a, sizeof(a)) == 0) {
        s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        ok = setsockopt(c, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
        if (s >= 0)
            close(s);
    }
    close(l);
    close(c);
    return ok;
}

int tf_kernel_prelude(void)
{
    if (tf_kernel_has_tls()) {
        /* The library's once-per-process probe makes kTLS sockets of its own:
         * run it now, so that tls_stat deltas count only the flows. */
        tf_ktls_probe_ulp();
        return 0;
    }
    if (tf_expect_ktls()) {
        fprintf(stderr, "TLSFLOW_EXPECT_KTLS=1 but the tls ULP is missing\n");
        return 1;
    }
    fprintf(stderr, "skip: this kernel has no tls ULP\n");
    return TF_SKIP;
}

bool tf_kernel_rekeys(void)
{
    struct utsname u;
    unsigned major = 0, minor = 0;

    if (uname(&u) || sscanf(u.release, "%u.%u", &major, &minor) != 2)
        fail_msg("uname");
    return major > 6 || (major == 6 && minor >= 14);
}

void tf_tls_stat_read(tf_tls_stat *s)
{
    FILE *f = fopen("/proc/net/tls_stat", "r");
    char name[32];
    long v;

    memset(s, 0, sizeof(*s));
    if (!f)
        return;
    while (s->n < TF_TLS_STAT_MAX && fscanf(f, "%31s %ld", name, &v) == 2) {
        snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
        s->val[s->n++] = v;
    }
    fclose(f);
}

long tf_tls_stat_get(const tf_tls_stat *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0)
            return s->val[i];
    return -1;
}

long tf_tls_stat_delta(const tf_tls_stat *before, const tf_tls_stat *after, const char *name)
{
    long a = tf_tls_stat_get(after, name), b = tf_tls_stat_get(before, name);

    if (a < 0 || b < 0)
        fail_msg("/proc/net/tls_stat has no %s", name);
    return a - b;
}

void tf_tls_stat_expect(const tf_tls_stat *before, const tf_tls_stat *after, const char *name,
                        long lo, long hi)
{
    long d = tf_tls_stat_delta(before, after, name);

    if (d < lo || d > hi)
        fail_msg("/proc/net/tls_stat %s moved by %ld; want %ld..%ld", name, d, lo, hi);
}
