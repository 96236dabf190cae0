/* Deterministic data streams, a checker that finds the first wrong byte, and
 * pumps that feed a peer's stdin and check its stdout from threads. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tf_test.h"

static const char alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* splitmix64: one word per 8-byte block, so any offset is cheap to compute. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t block(uint64_t seed, uint64_t index)
{
    return mix(seed * 0x2545f4914f6cdd1dull + index);
}

uint8_t tf_data_byte(uint64_t seed, uint64_t offset, unsigned kind)
{
    uint8_t b = (uint8_t)(block(seed, offset / 8) >> (8 * (offset % 8)));

    if (kind == TF_DATA_TEXT)
        return offset % 64 == 63 ? '\n' : (uint8_t)alphabet[b & 63];
    return b;
}

void tf_data_fill(void *buf, size_t len, uint64_t seed, uint64_t offset, unsigned kind)
{
    uint8_t *p = buf;
    size_t i = 0;

    /* Head up to a block boundary, whole blocks, tail. */
    for (; i < len && (offset + i) % 8; i++)
        p[i] = tf_data_byte(seed, offset + i, kind);
    for (; i + 8 <= len; i += 8) {
        uint64_t w = block(seed, (offset + i) / 8);

        for (int k = 0; k < 8; k++)
            p[i + k] = (uint8_t)(w >> (8 * k));
        if (kind == TF_DATA_TEXT)
            for (int k = 0; k < 8; k++)
                p[i + k] = (offset + i + k) % 64 == 63 ? '\n' : (uint8_t)alphabet[p[i + k] & 63];
    }
    for (; i < len; i++)
        p[i] = tf_data_byte(seed, offset + i, kind);
}

void tf_checker_init(tf_checker *c, uint64_t seed, unsigned kind)
{
    memset(c, 0, sizeof(*c));
    c->seed = seed;
    c->kind = kind;
}

bool tf_checker_feed(tf_checker *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint8_t want[4096];

    if (c->bad) {
        c->offset += len;
        return false;
    }
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(want) ? len - done : sizeof(want);

        tf_data_fill(want, n, c->seed, c->offset, c->kind);
        if (memcmp(want, p + done, n)) {
            for (size_t i = 0; i < n; i++)
                if (want[i] != p[done + i]) {
                    c->bad = true;
                    c->bad_offset = c->offset + i;
                    c->want = want[i];
                    c->got = p[done + i];
                    break;
                }
            c->offset += len - done;
            return false;
        }
        c->offset += n;
        done += n;
    }
    return true;
}

/* ---- Pumps ---- */

struct tf_pump {
    int            wfd, rfd;
    size_t         len;
    uint64_t       seed;
    unsigned       kind, flags;
    pthread_t      writer, reader;
    bool           has_writer, has_reader;
    atomic_bool    wdone, rdone;
    atomic_size_t  received;
    tf_pump_result res;
};

static void *write_main(void *arg)
{
    tf_pump *p = arg;
    uint8_t buf[65536];

    while (p->res.written < p->len) {
        size_t n = p->len - p->res.written < sizeof(buf) ? p->len - p->res.written : sizeof(buf);
        ssize_t w;

        tf_data_fill(buf, n, p->seed, p->res.written, p->kind);
        for (size_t off = 0; off < n; off += (size_t)w) {
            w = write(p->wfd, buf + off, n - off);
            if (w < 0 && errno == EINTR) {
                w = 0;
                continue;
            }
            if (w < 0) {
                p->res.write_errno = errno;
                goto out;
            }
            p->res.written += (size_t)w;
        }
    }
out:
    if (p->flags & TF_PUMP_CLOSE) {
        close(p->wfd);
        p->wfd = -1;
    }
    atomic_store(&p->wdone, true);
    return NULL;
}

static void *read_main(void *arg)
{
    tf_pump *p = arg;
    uint8_t buf[65536];
    tf_checker chk;

    tf_checker_init(&chk, p->seed, p->kind);
    while ((p->flags & TF_PUMP_TO_EOF) || p->res.received < p->len) {
        ssize_t r = read(p->rfd, buf, sizeof(buf));

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            p->res.read_errno = errno;
            break;
        }
        if (r == 0) {
            p->res.eof = true;
            break;
        }
        tf_checker_feed(&chk, buf, (size_t)r);
        p->res.received += (size_t)r;
        atomic_store(&p->received, p->res.received);
    }
    p->res.mismatch = chk.bad;
    p->res.bad_offset = chk.bad_offset;
    atomic_store(&p->rdone, true);
    return NULL;
}

tf_pump *tf_pump_start(int wfd, int rfd, size_t len, uint64_t seed, unsigned kind, unsigned flags)
{
    tf_pump *p = calloc(1, sizeof(*p));

    if (!p)
        abort();
    /* Copies, so that the pump's closing never touches the caller's fds. */
    p->wfd = wfd >= 0 ? fcntl(wfd, F_DUPFD_CLOEXEC, 0) : -1;
    p->rfd = rfd >= 0 ? fcntl(rfd, F_DUPFD_CLOEXEC, 0) : -1;
    if ((wfd >= 0 && p->wfd < 0) || (rfd >= 0 && p->rfd < 0))
        abort();
    p->len = len;
    p->seed = seed;
    p->kind = kind;
    p->flags = flags;
    atomic_init(&p->wdone, p->wfd < 0);
    atomic_init(&p->rdone, p->rfd < 0);
    atomic_init(&p->received, 0);
    if (p->wfd >= 0)
        p->has_writer = pthread_create(&p->writer, NULL, write_main, p) == 0;
    if (p->rfd >= 0)
        p->has_reader = pthread_create(&p->reader, NULL, read_main, p) == 0;
    if ((p->wfd >= 0 && !p->has_writer) || (p->rfd >= 0 && !p->has_reader))
        abort();
    return p;
}

bool tf_pump_done(const tf_pump *p)
{
    if (p->has_reader)
        return atomic_load(&p->rdone);
    return atomic_load(&p->wdone);
}

size_t tf_pump_received(const tf_pump *p)
{
    return atomic_load(&p->received);
}

void tf_pump_finish(tf_pump *p, tf_pump_result *out)
{
    if (p->has_reader)
        pthread_join(p->reader, NULL);
    if (p->has_writer)
        pthread_join(p->writer, NULL);
    if (p->wfd >= 0)
        close(p->wfd);
    if (p->rfd >= 0)
        close(p->rfd);
    if (out)
        *out = p->res;
    free(p);
}
