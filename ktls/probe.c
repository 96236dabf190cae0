/* ktls/probe.c — what this kernel's kTLS takes, found by trying it once per
 * process on throw-away loopback TCP pairs: TCP_ULP "tls", then TLS_TX and
 * TLS_RX with a zero key for every version x cipher, each on a fresh pair
 * (a socket takes one key per direction).  Results are 0 or -errno and never
 * change afterwards.  No version parsing here: see kver.c for that.
 * ENOENT from TCP_ULP also covers "tls.ko not loaded": the kernel autoloads
 * the module only for a caller with CAP_NET_ADMIN. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ktls/ktls.h"

#define NVER 2      /* TLS 1.2, TLS 1.3 */
#define NCIPHER 4   /* enum tf_ktls_cipher minus UNKNOWN */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ulp_result;
static int results[NVER][NCIPHER][2];
static atomic_uint runs;          /* times run_probe ran: 0 or 1 (tests read it) */
static atomic_bool is_done;       /* the results above are final */

/* A listening socket on loopback (IPv4, else IPv6 for v6-only namespaces). */
static int listener(void)
{
    struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int fd, ret;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a4, sizeof(a4)) == 0 && listen(fd, 4) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0 && listen(fd, 4) == 0)
        return fd;
    ret = -errno;
    close(fd);
    return ret;
}

/* A connected pair: fds[0] connects, fds[1] is accepted.  The accepted end
 * stays open while we probe: a peer's FIN would take the client out of
 * ESTABLISHED, and the ULP refuses such a socket (ENOTCONN). */
static int pair(int lfd, int fds[2])
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd, ret;

    if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        ret = -errno;
        goto out;
    }
    fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fds[1] < 0) {
        ret = -errno;
        goto out;
    }
    fds[0] = fd;
    return 0;
out:
    close(fd);
    return ret;
}

static void unpair(int fds[2])
{
    close(fds[0]);
    close(fds[1]);
}

static enum tf_ktls_cipher cipher_at(int i)
{
    return (enum tf_ktls_cipher)(TF_CIPHER_AES_128_GCM + i);
}

/* TLS_TX and TLS_RX with a zero key for one version x cipher on a fresh pair. */
static void try_one(int lfd, int v, int c)
{
    tf_ktls_secret s = {
        .version = v == 0 ? TLS_1_2_VERSION : TLS_1_3_VERSION,
        .cipher = cipher_at(c),
    };
    int fds[2], ret;

    s.key_len = s.cipher == TF_CIPHER_AES_256_GCM || s.cipher == TF_CIPHER_CHACHA20_POLY1305 ? 32 : 16;
    s.iv_len = s.version == TLS_1_3_VERSION || s.cipher == TF_CIPHER_CHACHA20_POLY1305 ? 12 : 4;
    ret = pair(lfd, fds);
    if (ret < 0) {
        results[v][c][TF_KTLS_TX] = results[v][c][TF_KTLS_RX] = ret;
        return;
    }
    ret = tf_ktls_attach(fds[0]);
    if (ret == 0) {
        results[v][c][TF_KTLS_TX] = tf_ktls_install(fds[0], TF_KTLS_TX, &s);
        results[v][c][TF_KTLS_RX] = tf_ktls_install(fds[0], TF_KTLS_RX, &s);
    } else {
        results[v][c][TF_KTLS_TX] = results[v][c][TF_KTLS_RX] = ret;
    }
    unpair(fds);
}

static void run_probe(void)
{
    int lfd, fds[2], v, c;

    lfd = listener();
    if (lfd < 0) {
        ulp_result = lfd;
    } else {
        ulp_result = pair(lfd, fds);
        if (ulp_result == 0) {
            ulp_result = tf_ktls_attach(fds[0]);
            unpair(fds);
        }
    }
    for (v = 0; v < NVER; v++)
        for (c = 0; c < NCIPHER; c++) {
            if (ulp_result < 0)   /* no ULP, no pair: every cell says why */
                results[v][c][TF_KTLS_TX] = results[v][c][TF_KTLS_RX] = ulp_result;
            else
                try_one(lfd, v, c);
        }
    if (lfd >= 0)
        close(lfd);
    atomic_fetch_add(&runs, 1);
    atomic_store(&is_done, true);
}

void tf_ktls_probe_once(void)
{
    pthread_once(&once, run_probe);
}

bool tf_ktls_probe_is_done(void)
{
    return atomic_load(&is_done);
}

unsigned tf_ktls_probe_runs(void)
{
    return atomic_load(&runs);
}

int tf_ktls_probe_ulp(void)
{
    pthread_once(&once, run_probe);
    return ulp_result;
}

int tf_ktls_probe(unsigned version, enum tf_ktls_cipher cipher, enum tf_ktls_dir dir)
{
    int v, c;

    if (version == TLS_1_2_VERSION)
        v = 0;
    else if (version == TLS_1_3_VERSION)
        v = 1;
    else
        return -EINVAL;
    c = (int)cipher - (int)TF_CIPHER_AES_128_GCM;
    if (c < 0 || c >= NCIPHER || (dir != TF_KTLS_TX && dir != TF_KTLS_RX))
        return -EINVAL;
    pthread_once(&once, run_probe);
    return results[v][c][dir];
}
