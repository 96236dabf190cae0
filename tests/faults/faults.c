/* See faults.h. */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"

static tlsflow_config *make(tlsflow_role role, const char *priority, unsigned ms)
{
    tlsflow_config *cfg;

    if (tlsflow_config_new(&cfg, role) < 0)
        abort();
    if (role == TLSFLOW_SERVER) {
        if (tlsflow_config_set_cert_file(cfg, TF_ECDSA_CERT, TF_ECDSA_KEY) < 0)
            abort();
    } else if (tlsflow_config_set_ca_file(cfg, TF_CA) < 0) {
        abort();
    }
    if (priority && tlsflow_config_set_priority(cfg, priority) < 0)
        abort();
    if (ms && tlsflow_config_set_handshake_timeout(cfg, ms) < 0)
        abort();
    return cfg;
}

tlsflow_config *fx_server_config(const char *priority, unsigned ms)
{
    return make(TLSFLOW_SERVER, priority, ms);
}

tlsflow_config *fx_client_config(const char *priority, unsigned ms)
{
    return make(TLSFLOW_CLIENT, priority, ms);
}

uint64_t fx_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* TF_TIME_SCALE=N stretches every deadline (valgrind runs ~20x slower). */
static int scale(int ms)
{
    const char *e = getenv("TF_TIME_SCALE");
    int k = e ? atoi(e) : 1;

    return ms * (k > 0 ? k : 1);
}

bool fx_run_until(tlsflow_loop *loop, volatile int *flag, int ms)
{
    uint64_t end = fx_now_ms() + (uint64_t)scale(ms);

    while (!*flag) {
        if (fx_now_ms() >= end)
            return false;
        if (tlsflow_loop_run_once(loop, 50) < 0)
            return false;
    }
    return true;
}

void fx_run_for(tlsflow_loop *loop, int ms)
{
    uint64_t end = fx_now_ms() + (uint64_t)ms;

    while (fx_now_ms() < end)
        tlsflow_loop_run_once(loop, 20);
}

int fx_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own descriptor */
}

bool fx_under_sanitizer(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

size_t fx_heap_in_use(void)
{
    if (fx_under_sanitizer())
        return 0;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

double fx_cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int fx_tcp_listen(int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (void *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (void *)&a, &al) < 0)
        abort();
    *port = ntohs(a.sin_port);
    return fd;
}

int fx_tcp_connect(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -errno;
    if (connect(fd, (void *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

void fx_tcp_pair(int *a, int *b)
{
    int port, l = fx_tcp_listen(&port);

    *a = fx_tcp_connect(port);
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (*a < 0 || *b < 0)
        abort();
    close(l);
}

void fx_reset(int fd)
{
    struct linger lg = { 1, 0 };

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

long fx_drain(int fd, int ms)
{
    uint64_t end = fx_now_ms() + (uint64_t)scale(ms);
    char buf[4096];
    long total = 0;

    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        int left = (int)(end - fx_now_ms());
        ssize_t n;

        if (left <= 0 || poll(&p, 1, left) == 0)
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

/* ---- the GnuTLS peer ---- */

static ssize_t byte_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    fx_peer *p = ptr;
    const uint8_t *b = buf;

    /* One byte per segment: TCP_NODELAY and a pause, so the server really
     * reads the flight in tiny pieces. */
    for (size_t i = 0; i < len; i++) {
        if (send(p->fd, b + i, 1, MSG_NOSIGNAL) != 1)
            return i ? (ssize_t)i : -1;
        usleep(200);
    }
    return (ssize_t)len;
}

static ssize_t plain_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    fx_peer *p = ptr;

    return send(p->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t plain_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    fx_peer *p = ptr;

    return recv(p->fd, buf, len, 0);
}

static void *peer_main(void *arg)
{
    fx_peer *p = arg;
    struct timeval tv = { scale(10), 0 };
    int ret;

    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    gnutls_certificate_allocate_credentials(&p->cred);
    if (p->server)
        gnutls_certificate_set_x509_key_file(p->cred, TF_ECDSA_CERT, TF_ECDSA_KEY, GNUTLS_X509_FMT_PEM);
    else
        gnutls_certificate_set_x509_trust_file(p->cred, TF_CA, GNUTLS_X509_FMT_PEM);
    gnutls_init(&p->s, p->server ? GNUTLS_SERVER : GNUTLS_CLIENT);
    if (p->priority)
        ret = gnutls_priority_set_direct(p->s, p->priority, NULL);
    else
        ret = gnutls_set_default_priority(p->s);
    if (ret < 0)
        abort();
    gnutls_credentials_set(p->s, GNUTLS_CRD_CERTIFICATE, p->cred);
    if (!p->server)
        gnutls_server_name_set(p->s, GNUTLS_NAME_DNS, "localhost", 9);
    gnutls_transport_set_ptr(p->s, p);
    gnutls_transport_set_push_function(p->s, p->one_byte_segments ? byte_push : plain_push);
    gnutls_transport_set_pull_function(p->s, plain_pull);
    do {
        ret = gnutls_handshake(p->s);
    } while (ret < 0 && !gnutls_error_is_fatal(ret) && ret != GNUTLS_E_AGAIN);
    p->hs_ret = ret;
    gnutls_transport_set_push_function(p->s, plain_push);
    if (ret == 0 && p->script)
        p->script(p);
    p->done = 1;
    return NULL;
}

void fx_peer_start(fx_peer *p)
{
    p->done = 0;
    if (pthread_create(&p->th, NULL, peer_main, p))
        abort();
}

void fx_peer_join(fx_peer *p)
{
    pthread_join(p->th, NULL);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    gnutls_deinit(p->s);
    gnutls_certificate_free_credentials(p->cred);
}

long fx_peer_send(fx_peer *p, const void *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = gnutls_record_send(p->s, (const char *)buf + off, len - off);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n < 0)
            return n;
        off += (size_t)n;
    }
    return (long)off;
}

void fx_pattern(uint8_t *buf, size_t len, uint32_t seed, uint64_t off)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull ^ seed * 0xBF58476D1CE4E5B9ull;
        x ^= x >> 29;
        buf[i] = (uint8_t)(x * 0x94D049BB133111EBull >> 56);
    }
}
