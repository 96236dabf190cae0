/* Ports: a free one, waiting for a peer to listen, plain TCP sockets, their
 * resets and drains. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

static int bind_any(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || getsockname(fd, (struct sockaddr *)&sa, &len)) {
        int err = -errno;

        close(fd);
        return err;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

int tf_free_port(void)
{
    int port = 0, fd = bind_any(&port);

    if (fd < 0)
        return fd;
    close(fd);
    return port;
}

int tf_tcp_listen(int *port)
{
    int fd = bind_any(port);

    if (fd >= 0 && listen(fd, 1024)) {
        int err = -errno;

        close(fd);
        return err;
    }
    return fd;
}

int tf_tcp_connect(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        int err = -errno;

        close(fd);
        return err;
    }
    return fd;
}

void tf_tcp_pair(int *a, int *b)
{
    int port = 0, l = tf_tcp_listen(&port);

    if (l < 0)
        fail_msg("listen on 127.0.0.1: %s", strerror(-l));
    *a = tf_tcp_connect(port);
    if (*a < 0)
        fail_msg("connect to 127.0.0.1:%d: %s", port, strerror(-*a));
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (*b < 0)
        fail_msg("accept: %s", strerror(errno));
    close(l);
}

void tf_tcp_reset(int fd)
{
    struct linger lg = { 1, 0 };

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

long tf_drain(int fd, int timeout_ms)
{
    long long end = tf_now_ms() + tf_ms(timeout_ms);
    char buf[4096];
    long total = 0;

    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        long long left = end - tf_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) == 0)
            return -ETIMEDOUT;
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0)
            return total;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (n > 0)
            total += n;
    }
}

/* Whether /proc/net/tcp{,6} shows a socket in LISTEN (state 0A) on port.
 * Looking instead of connecting leaves single-connection peers untouched.
 * -1 when /proc cannot say. */
static int is_listening(int port)
{
    static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    int seen = -1;

    for (size_t i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        char line[512];

        if (!f)
            continue;
        seen = 0;
        while (fgets(line, sizeof(line), f)) {
            unsigned lport, state;
            char *colon;

            /* "  0: 0100007F:1F90 00000000:0000 0A ..." */
            colon = strchr(line, ':');
            if (!colon || !(colon = strchr(colon + 1, ':')))
                continue;
            if (sscanf(colon + 1, "%x %*s %x", &lport, &state) == 2 && (int)lport == port &&
                state == 0x0A) {
                fclose(f);
                return 1;
            }
        }
        fclose(f);
    }
    return seen;
}

int tf_wait_port(int port, int timeout_ms, tf_peer *peer)
{
    long long end = tf_now_ms() + tf_ms(timeout_ms);
    struct timespec pause = { 0, 10 * 1000000L };

    for (;;) {
        int r = is_listening(port);

        if (r < 0) {   /* no /proc: try to connect */
            int fd = tf_tcp_connect(port);

            r = fd >= 0;
            if (fd >= 0)
                close(fd);
        }
        if (r > 0)
            return 0;
        if (peer && tf_peer_exited(peer))
            return -ESRCH;
        if (tf_now_ms() >= end)
            return -ETIMEDOUT;
        nanosleep(&pause, NULL);
    }
}
