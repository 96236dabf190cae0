/* Helpers for the kTLS tests: the skip-or-fail rule and loopback pairs. */
#ifndef TF_KTLS_TEST_H
#define TF_KTLS_TEST_H

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tf_test.h"

/* TLSFLOW_EXPECT_KTLS=1 (set in the VM) turns "the kernel lacks it" from a
 * skip into a failure, so a missing feature never passes silently. */
static inline int expect_ktls(void)
{
    const char *e = getenv("TLSFLOW_EXPECT_KTLS");
    return e && strcmp(e, "1") == 0;
}

/* Exits 77 (skip) or 1 (fail) with the reason; for use before cmocka runs. */
static inline void skip_or_fail(const char *what, int err)
{
    fprintf(stderr, "%s: %s (%s)\n", what, strerror(-err),
            expect_ktls() ? "TLSFLOW_EXPECT_KTLS=1: failing" : "skipping");
    exit(expect_ktls() ? 1 : TF_SKIP);
}

/* A connected blocking TCP pair on 127.0.0.1 with 30 s send/receive timeouts
 * so that a broken peer fails a test instead of hanging it.  0 or -errno. */
static inline int tcp_pair(int fds[2])
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { .tv_sec = 30 };
    socklen_t al = sizeof(a);
    int l, c = -1, s = -1, ret = 0, i;

    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -errno;
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0) {
        ret = -errno;
        goto out;
    }
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, al) < 0 ||
        (s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        ret = -errno;
        goto out;
    }
    fds[0] = c;
    fds[1] = s;
    for (i = 0; i < 2; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
out:
    if (ret < 0 && c >= 0)
        close(c);
    close(l);
    return ret;
}

#endif
