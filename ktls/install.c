/* ktls/install.c — hand a connected socket and its record keys to the kernel:
 * TCP_ULP "tls", then SOL_TLS TLS_TX / TLS_RX.  The crypto_info is built by
 * crypto_info.c; the copy made here lives on the stack only as long as the
 * setsockopt call and is wiped on every path. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "ktls/ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

int tf_ktls_attach(int fd)
{
    static const char ulp[] = "tls";

    if (fd < 0)
        return -EBADF;
    /* Must follow the handshake: the ULP refuses a socket that is not yet
     * ESTABLISHED (ENOTCONN right after a non-blocking connect). */
    if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, ulp, sizeof(ulp)) < 0)
        return -errno;
    return 0;
}

int tf_ktls_install(int fd, enum tf_ktls_dir dir, const tf_ktls_secret *s)
{
    tf_ktls_crypto_info ci;
    size_t len;
    int ret;

    if (fd < 0)
        return -EBADF;
    if (dir != TF_KTLS_TX && dir != TF_KTLS_RX)
        return -EINVAL;
    ret = tf_ktls_build_crypto_info(s, &ci, &len);
    if (ret < 0)
        goto out;
    /* -EBUSY here on a second call means the kernel cannot rekey (see kver.c). */
    if (setsockopt(fd, SOL_TLS, dir == TF_KTLS_TX ? TLS_TX : TLS_RX, &ci, (socklen_t)len) < 0)
        ret = -errno;
out:
    explicit_bzero(&ci, sizeof(ci));
    return ret;
}

int tf_ktls_set_flag(int fd, enum tf_ktls_flag flag)
{
    unsigned int one = 1;
    int opt;

    switch (flag) {
#ifdef TLS_TX_ZEROCOPY_RO
    case TF_KTLS_FLAG_ZEROCOPY_RO: opt = TLS_TX_ZEROCOPY_RO; break;
#endif
#ifdef TLS_RX_EXPECT_NO_PAD
    case TF_KTLS_FLAG_RX_NO_PAD: opt = TLS_RX_EXPECT_NO_PAD; break;
#endif
    default: return -ENOPROTOOPT;
    }
    return setsockopt(fd, SOL_TLS, opt, &one, sizeof(one)) < 0 ? -errno : 0;
}
