/* One tlsflow-serve connection: echo, or HTTP/1.1 static files.
 *
 * Lifetime: a conn counts its operations in flight.  Once its flow is freed
 * (tlsflow_free completes those with TLSFLOW_E_CANCELED), the conn's memory
 * goes when the last of them has called back, so no callback ever sees freed
 * memory.  At most one read is pending; a response's writes are submitted
 * together (the library completes writes in order).
 *
 * Reading and writing take turns, so a peer that never reads costs this file a
 * bounded amount: no read is pending while a response (HTTP) or the echo of
 * the last segment is in flight, pipelined requests wait in `in` until the
 * response before them is out, and `in` holds at most one request head
 * (TF_HTTP_MAX_HEAD) plus one read segment.  What the library keeps below
 * that is its receive budget and send batch (bench/memory.sh measures both). */
#include "common.h"
#include "serve.h"
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

atomic_int tf_serve_stop;

struct conn {
    struct worker *w;
    tlsflow       *flow;
    struct conn   *prev, *next;
    unsigned       pending;      /* operations in flight */
    int            is_freed;     /* tlsflow_free called */
    int            is_closing;   /* tlsflow_close submitted */
    int            is_reading;
    int            is_peer_done; /* read gave EOF: nothing more to read */
    unsigned       busy;         /* response writes (or the echo write) in flight */
    int            keep_alive;   /* after the current response */
    int            ktls_tx, ktls_rx;
    double         since;        /* when the connection last had nothing to do */
    double         request_at;   /* when the current request's first byte came, or 0 */
    double         close_at;     /* when our close_notify went out, or 0 */

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

/* Frees the flow; the conn's memory stays until op_end sees no operation left. */
static void conn_kill(struct conn *c)
{
    if (c->is_freed)
        return;
    c->is_freed = 1;
    atomic_fetch_sub_explicit(&c->w->stats.active, 1, memory_order_relaxed);
    if (c->ktls_tx)
        atomic_fetch_sub_explicit(&c->w->stats.ktls_tx, 1, memory_order_relaxed);
    if (c->ktls_rx)
        atomic_fetch_sub_explicit(&c->w->stats.ktls_rx, 1, memory_order_relaxed);
    tlsflow_free(c->flow);
    c->flow = NULL;
}

/* Every callback is op_begin, a body, op_end: the operation's count holds the
 * conn through the body, whatever the body frees. */
static int op_begin(struct conn *c)
{
    if (!c->is_freed)
        return 0;
    if (--c->pending == 0)
        conn_release(c);
    return 1;
}

static void op_end(struct conn *c)
{
    if (--c->pending == 0 && c->is_freed)
        conn_release(c);
}

#define CALLBACK(name, body)                                                  \
    static void name(tlsflow *flow, const tlsflow_result *res, void *arg)    \
    {                                                                         \
        struct conn *c = arg;                                                 \
        (void)flow;                                                           \
        if (op_begin(c))                                                      \
            return;                                                           \
        body(c, res);                                                         \
        op_end(c);                                                            \
    }

static void close_done(struct conn *c, const tlsflow_result *res)
{
    (void)res;
    conn_kill(c);   /* the peer has closed too (or the close failed) */
}
CALLBACK(on_close, close_done)

static void start_read(struct conn *c)
{
    if (c->is_reading || c->is_peer_done)
        return;
    if (tlsflow_read(c->flow, on_read, c) < 0) {
        conn_kill(c);
        return;
    }
    c->is_reading = 1;
    c->pending++;
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
    c->pending++;
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

/* ---- echo ---- */

static void echo_written(struct conn *c, const tlsflow_result *res)
{
    c->busy = 0;
    if (res->status != TLSFLOW_OK) {
        conn_kill(c);
        return;
    }
    atomic_fetch_add_explicit(&c->w->stats.bytes_out, res->len, memory_order_relaxed);
    c->in_len = 0;
    if (c->is_peer_done || atomic_load(&tf_serve_stop))
        start_close(c);
    else
        start_read(c);
}
CALLBACK(on_echo_written, echo_written)

static void echo_data(struct conn *c, const void *data, size_t len)
{
    c->in_len = 0;
    if (append_in(c, data, len) < 0 ||
        tlsflow_write(c->flow, c->in, len, on_echo_written, c) < 0) {
        conn_kill(c);
        return;
    }
    c->pending++;
    c->busy = 1;
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
CALLBACK(on_read, read_done)

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
    atomic_fetch_add_explicit(&c->w->stats.bytes_out, res->len, memory_order_relaxed);
    if (c->busy == 0)
        response_done(c);
}
CALLBACK(on_http_written, http_written)

static void file_sent(struct conn *c, const tlsflow_result *res)
{
    c->busy--;
    if (res->status != TLSFLOW_OK || res->len == 0 || res->len > c->file_left) {
        conn_kill(c);   /* the file shrank, or the peer went away */
        return;
    }
    atomic_fetch_add_explicit(&c->w->stats.bytes_out, res->len, memory_order_relaxed);
    c->file_off += (off_t)res->len;
    c->file_left -= res->len;
    if (c->file_left) {   /* a partial send: ask for the rest */
        if (tlsflow_sendfile(c->flow, c->file_fd, c->file_off, c->file_left, on_file_sent, c) < 0) {
            conn_kill(c);
            return;
        }
        c->pending++;
        c->busy++;
        return;
    }
    if (c->busy == 0)
        response_done(c);
}
CALLBACK(on_file_sent, file_sent)

static int send_head(struct conn *c, size_t len)
{
    if (tlsflow_write(c->flow, c->head, len, on_http_written, c) < 0)
        return -1;
    c->pending++;
    c->busy++;
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

/* RESOLVE_BENEATH keeps every component (symlinks included) inside the root;
 * without openat2 the ".."-free path plus O_NOFOLLOW on the last component has
 * to do. */
static int open_beneath(int dirfd, const char *path)
{
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    if (fd < 0 && errno == ENOSYS)
        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
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
        strcat(path, "/index.html");
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
    if (c->file_left) {
        if (tlsflow_sendfile(c->flow, fd, 0, c->file_left, on_file_sent, c) < 0) {
            conn_kill(c);
            return;
        }
        c->pending++;
        c->busy++;
    }
}

/* Empty lines before a request line are ignored (RFC 9112 section 2.2), and
 * the parser does not count them against the head's limit: dropped here, so
 * that a peer sending nothing but CRLFs holds no memory (and is not re-scanned
 * from the start on every read).  request_at stays: it is still the slow
 * request it was. */
static void drop_empty_lines(struct conn *c)
{
    size_t pos = 0;
    while (pos + 1 < c->in_len && c->in[pos] == '\r' && c->in[pos + 1] == '\n')
        pos += 2;
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
}

/* Serves the next complete request in the buffer, or reads more. */
static void http_next(struct conn *c)
{
    tf_http_request req;
    drop_empty_lines(c);
    int r = tf_http_parse_request(c->in, c->in_len, TF_HTTP_MAX_HEAD, &req);

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
    c->request_at = c->in_len ? tf_now_s() : 0;   /* a pipelined request starts now */
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
    if (!c) {
        tlsflow_free(flow);
        return;
    }
    c->w = w;
    c->flow = flow;
    c->file_fd = -1;
    c->since = tf_now_s();
    c->pending = 1;   /* held through this function */
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
    op_end(c);
}

size_t tf_serve_close_all(struct worker *w)
{
    size_t open = 0;
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->is_freed)
            continue;
        c->pending++;   /* keep c (and so next's link) valid across the call */
        if (!c->busy)
            start_close(c);
        open += !c->is_freed;
        next = c->next;
        op_end(c);
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

void tf_serve_sweep(struct worker *w, double now)
{
    const struct serve_opts *o = w->opts;

    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->is_freed)
            continue;
        c->pending++;
        if (c->is_closing) {
            if (now - c->close_at > o->request_timeout)
                conn_kill(c);           /* the peer never answered our close_notify */
        } else if (!c->busy && c->request_at && now - c->request_at > o->request_timeout) {
            start_close(c);             /* a request dribbled in too slowly */
        } else if (!c->busy && !c->in_len && now - c->since > o->idle_timeout) {
            start_close(c);
        }
        next = c->next;
        op_end(c);
    }
}

void tf_serve_kill_all(struct worker *w)
{
    for (struct conn *c = w->conns, *next; c; c = next) {
        c->pending++;
        conn_kill(c);
        next = c->next;
        op_end(c);
    }
}

void tf_serve_release_all(struct worker *w)
{
    while (w->conns) {
        w->conns->pending = 0;
        conn_release(w->conns);
    }
}
