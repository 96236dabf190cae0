/* A TCP relay in a thread between a client and a real server, that can cut the
 * connection to the client at an exact byte (mid-record truncation and resets
 * that no well-behaved peer produces) and lets a hook see and change every
 * byte on its way (a flipped bit inside a record). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tf_test.h"

struct tf_relay {
    int           lfd, target;
    tf_relay_hook *hook;
    void         *hook_arg;
    pthread_t     thread;
    atomic_bool   stop, cut, ended;
    atomic_size_t pass;          /* server -> client bytes still forwarded after the cut */
    atomic_bool   reset;
    atomic_size_t to_client, to_server;
};

static bool pump_once(tf_relay *r, int from, int to, bool to_client, size_t limit, size_t *moved)
{
    uint8_t buf[16384];
    ssize_t n = read(from, buf, limit < sizeof(buf) ? limit : sizeof(buf));

    *moved = 0;
    if (n <= 0)
        return false;
    if (r->hook)
        r->hook(buf, (size_t)n, to_client, r->hook_arg);
    for (ssize_t off = 0, w; off < n; off += w) {
        w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0)
            return false;
    }
    *moved = (size_t)n;
    return true;
}

static void *relay_main(void *arg)
{
    tf_relay *r = arg;
    struct pollfd pl = { r->lfd, POLLIN, 0 };
    int c = -1, s = -1;

    while (!atomic_load(&r->stop) && poll(&pl, 1, 20) <= 0)
        ;
    if (atomic_load(&r->stop) || (c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
        goto out;
    if ((s = tf_tcp_connect(r->target)) < 0)
        goto out;
    while (!atomic_load(&r->stop)) {
        struct pollfd p[2] = { { c, POLLIN, 0 }, { s, POLLIN, 0 } };
        size_t moved;

        if (poll(p, 2, 20) < 0)
            break;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (!pump_once(r, c, s, false, SIZE_MAX, &moved))
                break;
            atomic_fetch_add(&r->to_server, moved);
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            bool cut = atomic_load(&r->cut);
            size_t limit = cut ? atomic_load(&r->pass) : SIZE_MAX;

            if (cut && limit == 0)
                break;
            if (!pump_once(r, s, c, true, limit, &moved))
                break;
            atomic_fetch_add(&r->to_client, moved);
            if (cut && atomic_fetch_sub(&r->pass, moved) == moved)
                break;
        }
    }
out:
    if (c >= 0 && atomic_load(&r->reset))
        tf_tcp_reset(c);
    else if (c >= 0)
        close(c);
    if (s >= 0)
        close(s);
    atomic_store(&r->ended, true);
    return NULL;
}

tf_relay *tf_relay_start_hook(int target_port, int *port, tf_relay_hook *hook, void *arg)
{
    tf_relay *r = calloc(1, sizeof(*r));

    if (!r)
        abort();
    r->target = target_port;
    r->hook = hook;
    r->hook_arg = arg;
    r->lfd = tf_tcp_listen(port);
    if (r->lfd < 0 || pthread_create(&r->thread, NULL, relay_main, r)) {
        if (r->lfd >= 0)
            close(r->lfd);
        free(r);
        return NULL;
    }
    return r;
}

tf_relay *tf_relay_start(int target_port, int *port)
{
    return tf_relay_start_hook(target_port, port, NULL, NULL);
}

void tf_relay_cut(tf_relay *r, size_t pass_bytes, bool reset)
{
    atomic_store(&r->pass, pass_bytes);
    atomic_store(&r->reset, reset);
    atomic_store(&r->cut, true);
}

bool tf_relay_ended(const tf_relay *r)
{
    return atomic_load(&r->ended);
}

size_t tf_relay_to_client(const tf_relay *r)
{
    return atomic_load(&r->to_client);
}

void tf_relay_stop(tf_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    close(r->lfd);
    free(r);
}
