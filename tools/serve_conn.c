/* One tlsflow-serve connection: echo, or HTTP/1.1 static files.
 *
 * Lifetime: a conn registers tlsflow_on_release once, at accept, and its
 * memory goes in that callback, which the library runs after the freed flow's
 * last completion (cancelled ones included), so no callback ever sees freed
 * memory.  A completion that arrives after conn_kill only returns.  At most
 * one read is pending; a response's writes are submitted together (the
 * library completes writes in order).
 *
 * Reading and writing take turns, so a peer that never reads costs this file a
 * bounded amount: no read is pending while a response (HTTP) or the echo of
 * the last segment is in flight, pipelined requests wait in `in` until the
 * response before them is out, and `in` holds at most one request head
 * (TF_HTTP_MAX_HEAD) plus one read segment.  What the library keeps below
 * that is its receive budget and send batch (bench/memory.sh measures both).
 * Echo is therefore bounded already: one segment (at most the receive budget,
 * 64 KiB by default) is in flight as a write, and no read is pending until it
 * has completed, so more than 64 KiB of echo writes are never pending.
 *
 * Timeouts: one tlsflow timer per connection, armed for the earliest of its
 * deadlines (request, idle, send, close) and re-evaluated when it fires:
 * progress only moves deadlines later, so it costs no timer call. */
#include "common.h"
#include "serve.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

atomic_int tf_serve_stop;

#define SEND_CHUNK (1024 * 1024)   /* a file goes out in sendfile calls this large */
#define STUCK_GRACE 1.0            /* after a send timeout, how long close_notify may take */

struct conn {
    struct worker *w;
    tlsflow       *flow;
    struct conn   *prev, *next;
    int            is_freed;     /* tlsflow_free called */
    int            is_closing;   /* tlsflow_close submitted */
    int            is_reading;
    int            is_peer_done; /* read gave EOF: nothing more to read */
    unsigned       busy;         /* response writes (or the echo write) in flight */
    int            keep_alive;   /* after the current response */
    int            ktls_tx, ktls_rx;
    int            is_send_stuck; /* closing because its writes made no progress */
    double         since;        /* the last progress: bytes read or a write completed */
    double         write_at;     /* the last write progress while busy */
    int            outq_seen;    /* unsent bytes in the kernel at the last idle check, -1 none */
    double         request_at;   /* when the current request's first byte came, or 0 */
    double         close_at;     /* when our close_notify went out, or 0 */
    tlsflow_timer *timer;        /* armed for the earliest deadline, freed by conn_kill */
    double         timer_at;     /* when it is armed for, or 0 */

    size_t         blank_len;    /* empty lines dropped before the current request */
    size_t         scan_from;    /* in[0..scan_from) holds no end of a head */

    char          *in;           /* received bytes not yet used (HTTP) / echo copy */
    size_t         in_len, in_cap;

    int            file_fd;      /* the file being sent, or -1 */
    off_t          file_off;
    size_t         file_left;
    char           head[512];    /* a response head, or a whole error response */
};

static void on_read(tlsflow *flow, const tlsflow_result *res, void *arg);
static void on_file_sent(tlsflow *flow, const tlsflow_result *res, void *arg);
static void http_next(struct conn *c);
static void arm(struct conn *c);

static void conn_release(struct conn *c)
{
    struct worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->file_fd >= 0)
        close(c->file_fd);
    free(c->in);
    free(c);
}

/* Frees the flow; the conn's memory stays until on_released. */
static void conn_kill(struct conn *c)
{
    if (c->is_freed)
        return;
    c->is_freed = 1;
    tlsflow_timer_free(c->timer);   /* allowed from its own callback */
    c->timer = NULL;
    atomic_fetch_sub_explicit(&c->w->stats.active, 1, memory_order_relaxed);
    if (c->ktls_tx)
        atomic_fetch_sub_explicit(&c->w->stats.ktls_tx, 1, memory_order_relaxed);
    if (c->ktls_rx)
        atomic_fetch_sub_explicit(&c->w->stats.ktls_rx, 1, memory_order_relaxed);
    tlsflow_free(c->flow);
    c->flow = NULL;
}

/* tlsflow_on_release: the freed flow's last callback has run. */
static void on_released(void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    conn_release(c);
    if (!w->conns && w->is_stopping)   /* nothing left to wait for: handshakes */
        tlsflow_loop_stop(w->loop);     /* still under way are dropped */
}

/* Each tlsflow callback is a body and arm(): a completion of a flow already
 * freed (cancelled) only returns, since the conn stays until on_released. */
static void close_done(struct conn *c, const tlsflow_result *res)
{
    (void)res;
    conn_kill(c);   /* the peer has closed too (or the close failed) */
}
static void on_close(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct conn *c = arg;
    (void)flow;
    if (c->is_freed)
        return;
    close_done(c, res);
    arm(c);
}

static void start_read(struct conn *c)
{
    if (c->is_reading || c->is_peer_done)
        return;
    if (tlsflow_read(c->flow, on_read, c) < 0) {
        conn_kill(c);
        return;
    }
    c->is_reading = 1;
}

/* close_notify, then keep reading until the peer's close arrives. */
static void start_close(struct conn *c)
{
    if (c->is_closing)
        return;
    c->is_closing = 1;
    c->close_at = tf_now_s();
    if (tlsflow_close(c->flow, on_close, c) < 0) {
        conn_kill(c);
        return;
    }
    start_read(c);
}

static int append_in(struct conn *c, const void *data, size_t len)
{
    if (c->in_len + len > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + len)
            cap *= 2;
        char *p = realloc(c->in, cap);
        if (!p)
            return -1;
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    return 0;
}

static void begin_write(struct conn *c)
{
    if (c->busy++ == 0)
        c->write_at = tf_now_s();   /* the send clock starts with the first write */
    c->outq_seen = -1;
}

/* A response's last write completes once the kernel has it, which may be long
 * before a slow reader does: while the socket's send queue still shrinks, the
 * connection is not idle. */
static int kernel_draining(struct conn *c)
{
    int n = 0;

    if (ioctl(tlsflow_fd(c->flow), SIOCOUTQ, &n) < 0 || n <= 0)
        return 0;
    if (c->outq_seen >= 0 && n >= c->outq_seen)
        return 0;   /* nothing left the queue since the last look */
    c->outq_seen = n;
    return 1;
}

/* ---- echo ---- */

static void echo_written(struct conn *c, const tlsflow_result *res)
{
    c->busy = 0;
    if (res->status != TLSFLOW_OK) {
        conn_kill(c);
        return;
    }
    c->since = c->write_at = tf_now_s();
    atomic_fetch_add_explicit(&c->w->stats.bytes_out, res->len, memory_order_relaxed);
    c->in_len = 0;
    if (c->is_peer_done || atomic_load(&tf_serve_stop))
        start_close(c);
    else
        start_read(c);
}
static void on_echo_written(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct conn *c = arg;
    (void)flow;
    if (c->is_freed)
        return;
    echo_written(c, res);
    arm(c);
}

static void echo_data(struct conn *c, const void *data, size_t len)
{
    c->in_len = 0;
    if (append_in(c, data, len) < 0 ||
        tlsflow_write(c->flow, c->in, len, on_echo_written, c) < 0) {
        conn_kill(c);
        return;
    }
    begin_write(c);
}

/* ---- reading ---- */

static void read_done(struct conn *c, const tlsflow_result *res)
{
    c->is_reading = 0;
    if (res->status == TLSFLOW_ERROR) {
        conn_kill(c);
        return;
    }
    if (res->status == TLSFLOW_EOF) {
        /* the peer's close_notify: answer with ours; on_close frees the flow */
        c->is_peer_done = 1;
        if (!c->busy)
            start_close(c);
        return;
    }
    atomic_fetch_add_explicit(&c->w->stats.bytes_in, res->len, memory_order_relaxed);
    if (c->is_closing) {
        start_read(c);   /* discard until the peer closes */
        return;
    }
    c->since = tf_now_s();
    if (c->w->opts->mode == SERVE_ECHO) {
        echo_data(c, res->data, res->len);
        return;
    }
    if (!c->request_at)   /* 0 between requests (http_next) */
        c->request_at = c->since;
    if (append_in(c, res->data, res->len) < 0) {
        conn_kill(c);
        return;
    }
    http_next(c);
}
static void on_read(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct conn *c = arg;
    (void)flow;
    if (c->is_freed)
        return;
    read_done(c, res);
    arm(c);
}

/* ---- HTTP ---- */

static void response_done(struct conn *c)
{
    if (c->file_fd >= 0) {
        close(c->file_fd);
        c->file_fd = -1;
    }
    if (!c->keep_alive || c->is_peer_done || atomic_load(&tf_serve_stop))
        start_close(c);
    else
        http_next(c);
}

static void http_written(struct conn *c, const tlsflow_result *res)
{
    c->busy--;
    if (res->status != TLSFLOW_OK) {
        conn_kill(c);
        return;
    }
    c->since = c->write_at = tf_now_s();
    atomic_fetch_add_explicit(&c->w->stats.bytes_out, res->len, memory_order_relaxed);
    if (c->busy == 0)
        response_done(c);
}
static void on_http_written(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct conn *c = arg;
    (void)flow;
    if (c->is_freed)
        return;
    http_written(c, res);
    arm(c);
}

/* Files go out in chunks so that each completion is progress the send and
 * idle clocks can see (one sendfile completes only when all of it is out). */
static int send_chunk(struct conn *c)
{
    size_t n = c->file_left < SEND_CHUNK ? c->file_left : SEND_CHUNK;
    if (tlsflow_sendfile(c->flow, c->file_fd, c->file_off, n, on_file_sent, c) < 0)
        return -1;
    begin_write(c);
    return 0;
}

static void file_sent(struct conn *c, const tlsflow_result *res)
{
    c->busy--;
    if (res->status != TLSFLOW_OK || res->len == 0 || res->len > c->file_left) {
        conn_kill(c);   /* the file shrank, or the peer went away */
        return;
    }
    c->since = c->write_at = tf_now_s();
    atomic_fetch_add_explicit(&c->w->stats.bytes_out, res->len, memory_order_relaxed);
    c->file_off += (off_t)res->len;
    c->file_left -= res->len;
    if (c->file_left) {   /* the next chunk, or the rest of a partial send */
        if (send_chunk(c) < 0)
            conn_kill(c);
        return;
    }
    if (c->busy == 0)
        response_done(c);
}
static void on_file_sent(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct conn *c = arg;
    (void)flow;
    if (c->is_freed)
        return;
    file_sent(c, res);
    arm(c);
}

static int send_head(struct conn *c, size_t len)
{
    if (tlsflow_write(c->flow, c->head, len, on_http_written, c) < 0)
        return -1;
    begin_write(c);
    return 0;
}

static void send_error(struct conn *c, int minor, int status, int keep_alive)
{
    const char *reason = tf_http_reason(status);
    size_t body = strlen(reason) + 5;   /* "404 Not Found\n" */
    int n = tf_http_format_head(c->head, sizeof(c->head) - body - 1, minor, status, body,
                                "text/plain", status == 405 ? "GET, HEAD" : NULL, keep_alive);
    if (n < 0) {
        conn_kill(c);
        return;
    }
    n += snprintf(c->head + n, sizeof(c->head) - (size_t)n, "%d %s\n", status, reason);
    c->keep_alive = keep_alive;
    if (send_head(c, (size_t)n) < 0)
        conn_kill(c);
}

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* Without openat2: one openat per component, each with O_NOFOLLOW, so no
 * symlink (of a directory or of the file) is followed at all; the path has no
 * "." or ".." segments (tf_http_target_path).  Stricter than RESOLVE_BENEATH,
 * which follows symlinks that stay inside the root. */
static int open_walk(int dirfd, const char *path)
{
    char comp[NAME_MAX + 1];
    int dir = dirfd;
    for (;;) {
        const char *slash = strchr(path, '/');
        if (!slash) {
            int fd = openat(dir, path, OPEN_FLAGS | O_NOFOLLOW);
            int e = errno;
            if (dir != dirfd)
                close(dir);
            errno = e;
            return fd;
        }
        size_t n = (size_t)(slash - path);
        if (n == 0 || n > NAME_MAX) {
            if (dir != dirfd)
                close(dir);
            errno = n ? ENAMETOOLONG : ENOENT;
            return -1;
        }
        memcpy(comp, path, n);
        comp[n] = '\0';
        int next = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (dir != dirfd)
            close(dir);
        if (next < 0) {
            errno = e == ENOTDIR ? ENOENT : e;   /* a symlink to a directory */
            return -1;
        }
        dir = next;
        path = slash + 1;
    }
}

/* A test seam: TLSFLOW_SERVE_NO_OPENAT2=1 takes the fallback as on a kernel
 * without openat2 (before 5.6). */
static int has_openat2(void)
{
    static int cached = -1;
    if (cached < 0) {
        const char *e = getenv("TLSFLOW_SERVE_NO_OPENAT2");
        cached = !(e && *e == '1');
    }
    return cached;
}

/* RESOLVE_BENEATH keeps every component (symlinks included) inside the root;
 * without openat2, open_walk. */
static int open_beneath(int dirfd, const char *path)
{
    struct open_how how = {
        .flags = OPEN_FLAGS,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    if (!has_openat2())
        return open_walk(dirfd, path);
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    if (fd < 0 && errno == ENOSYS)
        fd = open_walk(dirfd, path);
    return fd;
}

static int status_for_errno(int e)
{
    return e == EACCES || e == EPERM ? 403 : e == ENOENT || e == ENOTDIR || e == ELOOP ||
           e == EXDEV || e == ENAMETOOLONG ? 404 : 500;
}

/* Opens the file a request names: its fd and size, or -STATUS. */
static int open_target(struct conn *c, const tf_http_request *req, const char **type, off_t *size)
{
    char path[4096];
    struct stat st;
    int r = tf_http_target_path(req->target, req->target_len, path, sizeof(path));
    if (r < 0)
        return r;
    int fd = open_beneath(c->w->opts->root_fd, path);
    if (fd < 0)
        return -status_for_errno(errno);
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        int idx = open_beneath(fd, "index.html");
        close(fd);
        if (idx < 0)
            return -status_for_errno(errno);
        fd = idx;
        /* only the name's extension matters from here (the content type) */
        static const char idx_name[] = "/index.html";
        size_t len = strlen(path);
        if (len + sizeof(idx_name) > sizeof(path)) {
            close(fd);
            return -414;
        }
        memcpy(path + len, idx_name, sizeof(idx_name));
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -404;
    }
    *type = tf_http_content_type(path);
    *size = st.st_size;
    return fd;
}

static void http_request(struct conn *c, const tf_http_request *req)
{
    const char *type = NULL;
    off_t size = 0;
    int keep_alive = req->keep_alive && !req->has_body;   /* bodies are not read */

    atomic_fetch_add_explicit(&c->w->stats.requests, 1, memory_order_relaxed);
    if (req->method == TF_HTTP_OTHER) {
        send_error(c, req->minor, 405, keep_alive);
        return;
    }
    int fd = open_target(c, req, &type, &size);
    if (fd < 0) {
        send_error(c, req->minor, -fd, keep_alive);
        return;
    }
    int n = tf_http_format_head(c->head, sizeof(c->head), req->minor, 200, (uint64_t)size,
                                type, NULL, keep_alive);
    c->keep_alive = keep_alive;
    c->file_fd = fd;
    c->file_off = 0;
    c->file_left = req->method == TF_HTTP_GET ? (size_t)size : 0;
    if (n < 0 || send_head(c, (size_t)n) < 0) {
        conn_kill(c);
        return;
    }
    if (c->file_left && send_chunk(c) < 0)
        conn_kill(c);
}

/* Empty lines before a request line are ignored (RFC 9112 section 2.2) but
 * count against the head's limit (blank_len): dropped here, so that a peer
 * sending nothing but CRLFs holds no memory and is not re-scanned.
 * request_at stays: it is still the slow request it was. */
static void drop_empty_lines(struct conn *c)
{
    size_t pos = 0;
    while (pos + 1 < c->in_len && c->in[pos] == '\r' && c->in[pos + 1] == '\n')
        pos += 2;
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
        c->blank_len += pos;
        c->scan_from = c->scan_from > pos ? c->scan_from - pos : 0;
    }
}

/* Whether in may hold a whole head (or a line the parser refuses): the head
 * ends at an empty line.  Only the bytes since the last look are searched, so
 * a head that comes a byte at a time costs linear time, not quadratic. */
static int may_have_head(struct conn *c, size_t limit)
{
    size_t from = c->scan_from > 2 ? c->scan_from - 2 : 0;
    if (c->in_len >= limit)
        return 1;   /* the parser answers 431 */
    for (const char *p = c->in + from, *end = c->in + c->in_len;
         (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) {
        if ((p + 1 < end && p[1] == '\n') || (p + 2 < end && p[1] == '\r' && p[2] == '\n'))
            return 1;
    }
    c->scan_from = c->in_len;
    return 0;
}

/* Serves the next complete request in the buffer, or reads more. */
static void http_next(struct conn *c)
{
    tf_http_request req;
    drop_empty_lines(c);
    if (c->blank_len >= TF_HTTP_MAX_HEAD) {   /* a flood of empty lines */
        c->in_len = 0;
        send_error(c, 1, 400, 0);
        return;
    }
    size_t limit = TF_HTTP_MAX_HEAD - c->blank_len;
    int r = may_have_head(c, limit) ? tf_http_parse_request(c->in, c->in_len, limit, &req) : 0;

    if (r == 0) {
        if (atomic_load(&tf_serve_stop))
            start_close(c);
        else
            start_read(c);
        return;
    }
    if (r < 0) {
        c->in_len = 0;
        send_error(c, 1, -r, 0);
        return;
    }
    http_request(c, &req);   /* uses req.target, which points into c->in */
    if (c->is_freed)
        return;
    memmove(c->in, c->in + r, c->in_len - (size_t)r);
    c->in_len -= (size_t)r;
    c->blank_len = 0;
    c->scan_from = 0;
    c->request_at = c->in_len ? tf_now_s() : 0;   /* a pipelined request starts now */
}

/* ---- timeouts ---- */

/* The connection's earliest deadline (0 = none) and whether it is a send
 * timeout. */
static double deadline(const struct conn *c)
{
    const struct serve_opts *o = c->w->opts;
    if (c->is_closing)   /* the peer must answer our close_notify */
        return c->close_at + (c->is_send_stuck ? STUCK_GRACE : o->request_timeout);
    if (c->busy)         /* writes in flight must make progress */
        return c->write_at + o->send_timeout;
    if (c->request_at)   /* a started request must be complete */
        return c->request_at + o->request_timeout;
    return c->in_len ? 0 : c->since + o->idle_timeout;
}

static void on_timer(tlsflow_timer *t, void *arg)
{
    struct conn *c = arg;
    (void)t;
    c->timer_at = 0;
    double d = deadline(c);
    if (d && d <= tf_now_s() + 0.001) {
        if (c->is_closing) {
            conn_kill(c);   /* no close_notify came back: reset */
        } else if (c->busy) {
            c->is_send_stuck = 1;   /* try close_notify behind the stuck writes, then reset */
            start_close(c);
        } else if (!c->request_at && kernel_draining(c)) {
            c->since = tf_now_s();   /* the last response is still leaving */
        } else {
            start_close(c);   /* a request dribbled in too slowly, or idle */
        }
    }
    arm(c);
}

/* Makes the timer fire no later than the connection's deadline. */
static void arm(struct conn *c)
{
    if (c->is_freed || !c->timer)
        return;
    double d = deadline(c);
    if (!d) {
        if (c->timer_at)
            tlsflow_timer_stop(c->timer);
        c->timer_at = 0;
        return;
    }
    if (c->timer_at && c->timer_at <= d)
        return;   /* it fires first and looks again */
    double ms = (d - tf_now_s()) * 1000.0 + 2;   /* rounded up: never early */
    if (ms < 1)
        ms = 1;
    if (tlsflow_timer_start(c->timer, (unsigned)ms, 0, on_timer, c) < 0) {
        conn_kill(c);
        return;
    }
    c->timer_at = d;
}

/* ---- accepting, shutting down ---- */

void tf_serve_accept(tlsflow *flow, const tlsflow_result *res, void *arg)
{
    struct worker *w = arg;
    tlsflow_info info;

    if (!flow || res->status != TLSFLOW_OK) {
        atomic_fetch_add_explicit(&w->stats.failed, 1, memory_order_relaxed);
        if (flow)
            tlsflow_free(flow);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || tlsflow_timer_new(w->loop, &c->timer) < 0 ||
        tlsflow_on_release(flow, on_released, c) < 0) {
        if (c)
            tlsflow_timer_free(c->timer);
        free(c);
        tlsflow_free(flow);   /* nothing submitted yet: no callback to wait for */
        return;
    }
    c->w = w;
    c->flow = flow;
    c->file_fd = -1;
    c->outq_seen = -1;
    c->since = tf_now_s();
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add_explicit(&w->stats.accepted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.active, 1, memory_order_relaxed);
    if (tlsflow_get_info(flow, &info) == 0) {
        c->ktls_tx = info.ktls_tx;
        c->ktls_rx = info.ktls_rx;
        if (c->ktls_tx)
            atomic_fetch_add_explicit(&w->stats.ktls_tx, 1, memory_order_relaxed);
        if (c->ktls_rx)
            atomic_fetch_add_explicit(&w->stats.ktls_rx, 1, memory_order_relaxed);
    }
    if (atomic_load(&tf_serve_stop))
        start_close(c);
    else
        start_read(c);
    arm(c);
}

size_t tf_serve_close_all(struct worker *w)
{
    size_t open = 0;
    /* conn_kill only frees the flow: c and its links stay until on_released,
     * which runs from the loop, never from inside these calls */
    for (struct conn *c = w->conns; c; c = c->next) {
        if (c->is_freed)
            continue;
        if (!c->busy) {
            start_close(c);
            arm(c);
        }
        open += !c->is_freed;
    }
    return open;
}

size_t tf_serve_open_count(const struct worker *w)
{
    size_t open = 0;
    for (const struct conn *c = w->conns; c; c = c->next)
        open += !c->is_freed;
    return open;
}

void tf_serve_kill_all(struct worker *w)
{
    for (struct conn *c = w->conns; c; c = c->next)
        conn_kill(c);
}

void tf_serve_release_all(struct worker *w)
{
    while (w->conns)
        conn_release(w->conns);
}
