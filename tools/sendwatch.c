/* tools/sendwatch.c — whether a socket's sending moves, for send timeouts.
 *
 * An operation that writes into a socket (a splice of up to 1 MiB, a
 * response's write) completes only when all of it is in the kernel: toward
 * a slow reader that is many seconds, and its progress is invisible to the
 * loop.  The kernel knows: a socket that polls writable has room (whatever
 * waits, waits for its source), and the bytes the peer acknowledged
 * (TCP_INFO's tcpi_bytes_acked, kernels >= 4.1) grow while it reads.  A
 * send queue that is refilled as it drains does not shrink, so its size is
 * not the measure; the acknowledged count is. */
#include "common.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>

int tf_send_look(int fd, struct tf_send_look *l)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (poll(&p, 1, 0) < 0)
        return -1;
    l->is_writable = (p.revents & POLLOUT) != 0;
    l->has_error = (p.revents & (POLLERR | POLLHUP)) != 0;
    l->acked = 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
        l->acked = ti.tcpi_bytes_acked;
    return 0;
}
