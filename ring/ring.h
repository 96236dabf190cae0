/* ring/ — the io_uring loop and the flow's data path.  The only layer that
 * submits I/O and calls the application back. */
#ifndef TF_RING_H
#define TF_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define TF_KTX_IOV 64
#define TF_INLINE_IOV 8
#define TF_BGID 7                 /* our provided-buffer group */
#define TF_BR_ENTRIES 128         /* ring of provided buffers, each TF_BR_SIZE */
#define TF_BR_SIZE (32 * 1024)
#define TF_IN_CAP (32 * 1024)
#define TF_RECV_ROOM (16 * 1024 + 512) /* a private receive: a full record and its header */
#define TF_RX_HIGH (256 * 1024)   /* bytes a flow takes in before it stops receiving */
#define TF_TX_CAP (320 * 1024)    /* a send batch and a record more */
#define TF_FILE_CAP (128 * 1024)  /* file bytes read per io_uring READ */
#define TF_POOL_MAX 64

/* Buffers of one size kept for reuse: a busy flow neither allocates nor
 * faults pages in per operation, an idle one holds none. */
typedef struct {
    uint8_t *items[TF_POOL_MAX];
    size_t   n, cap;
} tf_pool;

#include "include/tlsflow.h"
#include "handshake/handshake.h"

/* An operation in flight: user_data of its SQE points here. */
typedef struct tf_op tf_op;
typedef void tf_op_fn(tf_op *op, int res, unsigned cqe_flags);
struct tf_op {
    tf_op_fn *done;
    bool      busy;      /* submitted and not yet completed (for multishot: armed) */
};

/* Deferred work run by the loop after completions: how callbacks are kept out
 * of the calls that submitted their operations. */
typedef struct tf_task tf_task;
struct tf_task {
    void   (*run)(tf_task *t);
    tf_task *next;
    bool     queued;
};

/* Everything a loop owns, for tlsflow_loop_free: destroy releases an object
 * without calling anyone back. */
typedef struct tf_link tf_link;
struct tf_link {
    tf_link *prev, *next;
    void   (*destroy)(tf_link *l);
};

struct tlsflow_loop {
    struct io_uring ring;
    bool     stopped;
    unsigned live;                /* flows, listeners and connects not yet released */
    tf_task *tasks, **tasks_tail;
    struct io_uring_cqe *stash;   /* CQEs reaped while the SQ was full */
    size_t   nstash, capstash;
    tf_link  objects;             /* flows and listeners, for loop_free */
    /* Receives land in a ring of provided buffers shared by every flow, so an
     * idle flow holds no receive buffer; a flow keeps bytes only while they
     * wait for GnuTLS or the application. */
    int      br_state;            /* 0 not tried, 1 ready, -errno unavailable */
    struct io_uring_buf_ring *br;
    uint8_t *br_bufs;
    tf_pool  in_pool;             /* spare receive buffers */
    tf_pool  tx_pool;             /* spare send buffers */
    tf_pool  file_pool;           /* spare file-read buffers (sendfile in userspace) */
    unsigned inflight;            /* our requests the kernel has not finished */
    uint64_t submissions;         /* SQEs handed to the kernel, for the tools' counters */
    uint64_t enters;
    uint64_t plain_copied, cipher_copied;
    struct tf_write *free_writes; /* write requests kept for reuse */
    size_t   nfree_writes;
};

/* loop.c */
struct io_uring_sqe *tf_ring_sqe(tlsflow_loop *loop, tf_op *op);   /* never NULL */
void tf_ring_sqe_detached(tlsflow_loop *loop, struct io_uring_sqe **out); /* user_data 0: result ignored */
void tf_ring_defer(tlsflow_loop *loop, tf_task *t);
void tf_ring_track(tlsflow_loop *loop, tf_link *l);
void tf_ring_untrack(tf_link *l);
void tf_ring_cancel(tlsflow_loop *loop, tf_op *op);
void tf_ring_timeout(tlsflow_loop *loop, tf_op *op, struct __kernel_timespec *ts, unsigned ms);
bool tf_ring_bufring(tlsflow_loop *loop);            /* the provided-buffer ring, set up on first use */
const uint8_t *tf_ring_buf(tlsflow_loop *loop, unsigned bid);
void tf_ring_buf_recycle(tlsflow_loop *loop, unsigned bid);
int  tf_pool_acquire(tf_pool *pool, tf_buf *b);   /* memory for a buffer that has none */
void tf_pool_release(tf_pool *pool, tf_buf *b);   /* an empty b gives its memory back */
void tf_pool_drain(tf_pool *pool);

/* A write request queued on a flow. */
typedef struct tf_write tf_write;
struct tf_write {
    tf_write     *next;
    tlsflow_cb   *cb;
    void         *arg;
    struct iovec *iov;        /* points at inline_iov or heap */
    int           iovcnt, cur;/* next iovec to encrypt */
    size_t        cur_off;    /* bytes of iov[cur] already taken */
    size_t        total;
    uint64_t      end;        /* tx stream position at which every byte is out */
    bool          taken;      /* fully encrypted (userspace) / queued (kernel) */
    int           file_fd;    /* sendfile: the file, else -1 */
    off_t         file_off;
    struct iovec  inline_iov[TF_INLINE_IOV];
    struct iovec *big_iov;    /* for longer arrays; kept when the request is reused */
    int           big_cap;
};

/* sendmsg/recvmsg headers for the kernel path, allocated at the switch so
 * that userspace flows do not carry them. */
struct tf_kio {
    struct msghdr krx_msg;
    struct iovec  krx_iov;
    union { struct cmsghdr h; uint8_t b[CMSG_SPACE(1)]; } krx_cmsg;
    struct msghdr ktx_msg;
    struct iovec  ktx_iov[TF_KTX_IOV];
    union { struct cmsghdr h; uint8_t b[CMSG_SPACE(1)]; } ktx_cmsg;
};

enum tf_flow_state { FLOW_CONNECTING, FLOW_HANDSHAKE, FLOW_OPEN, FLOW_DEAD };

struct tlsflow {
    tf_link            link;
    tlsflow_loop      *loop;
    const tlsflow_config *cfg;
    int                fd;
    enum tf_flow_state state;
    unsigned           refs;        /* 1 for the application + 1 per op in flight + 1 while progressing */
    bool               freed;
    tlsflow_error      err;         /* sticky */
    tf_task            task;
    tf_session         hs;

    /* opening */
    tlsflow_cb        *open_cb;
    void              *open_arg;
    tf_op              timer_op;
    struct __kernel_timespec timer_ts;

    /* receive side */
    tf_buf             in;          /* ciphertext not yet taken by GnuTLS */
    tf_op              recv_op;
    bool               rx_multishot;/* receives from the shared ring (never for kTLS RX) */
    bool               rx_eof;      /* TCP FIN seen */
    int                rx_errno;    /* recv failed with this errno */
    tlsflow_error      rx_err;      /* found by the receive side: reported after the bytes before it */
    bool               peer_closed; /* close_notify seen */
    bool               rx_truncated;/* the peer dropped the connection after our close_notify */
    tlsflow_cb        *read_cb;
    void              *read_arg;
    bool               read_pending;

    gnutls_packet_t    held;        /* a record read while no read was pending */
    const void        *held_data;
    size_t             held_len;

    /* send side: GnuTLS appends to `out`; `sending` is in the kernel's hands
     * and never moves until its send completes */
    tf_buf             out;
    tf_buf             sending;
    tf_op              send_op;
    tf_buf             fbuf;        /* sendfile in userspace: file bytes read, not yet encrypted */
    tf_op              file_op;
    uint64_t           tx_sent;     /* stream position: bytes handed to the kernel */
    tf_write          *wq, **wq_tail;
    tf_write          *wq_next;     /* first write not yet taken */
    bool               wr_eof;      /* peer stopped reading: writes give EOF */

    /* closing */
    tlsflow_cb        *close_cb;
    void              *close_arg;
    bool               close_pending, bye_sent, shut_sent;
    tf_op              shut_op;
    tf_op              cancel_op;

    /* kernel TLS, per direction */
    bool               ktls_tx, ktls_rx;           /* the kernel holds the key */
    bool               ktls_tx_pending, ktls_rx_pending; /* switch when at a record boundary */
    bool               ulp_attached;
    bool               tx_rekey_pending;           /* new TX key after our KeyUpdate is out */
    struct tf_kio     *kio;                        /* message headers, once a key is in the kernel */
    int                ktx_kind;                   /* what the send in flight carries */
    tf_buf             post_out;                   /* handshake messages for the peer */
    uint64_t           tx_pos;                     /* kernel: stream position given to writes */
    uint64_t           tx_records, tx_record_limit;
    unsigned           tls_version;
    int                pipe_fd[2];                 /* sendfile: file -> pipe -> socket */
    size_t             pipe_len;
    tf_op              splice_op;
};

/* flow_ktls.c: the kernel's side of a flow */
enum { KTX_DATA = 1, KTX_HANDSHAKE, KTX_ALERT, KTX_SPLICE };
tlsflow_error tf_flow_ktls_plan(tlsflow *f);
void tf_flow_ktls_attach_early(tlsflow *f);
bool tf_flow_ktls_tx_switch(tlsflow *f);   /* false: the flow failed */
bool tf_flow_ktls_rx_switch(tlsflow *f);
void tf_flow_krx_post(tlsflow *f);
void tf_flow_ktx_progress(tlsflow *f);
bool tf_flow_ktx_close(tlsflow *f);       /* sends close_notify; false while not possible */

/* flow.c */
void tf_write_put(tlsflow_loop *loop, tf_write *w);
tlsflow *tf_flow_new(tlsflow_loop *loop, const tlsflow_config *cfg, int fd);
void tf_flow_start_handshake(tlsflow *f, const char *server_name, const char *cache_key,
                             tlsflow_cb *cb, void *arg);
void tf_flow_schedule(tlsflow *f);
void tf_flow_release(tlsflow *f);   /* drop one ref; frees at zero */

/* flow_rx.c / flow_tx.c */
void tf_flow_rx_progress(tlsflow *f);
/* Appends bytes that came in a shared ring buffer to the flow's receive
 * buffer (and stops the arm when nobody reads); false when it failed the flow. */
bool tf_flow_take_in(tlsflow *f, const void *src, size_t len, unsigned cqe_flags);
void tf_flow_tx_progress(tlsflow *f);
void tf_flow_post_recv(tlsflow *f, size_t max);   /* max 0: as much as fits */
void tf_flow_flush(tlsflow *f);
void tf_flow_fail(tlsflow *f, tlsflow_error err);

static inline tlsflow_error tf_err(tlsflow_errcode code, int detail)
{
    tlsflow_error e = { code, detail };
    return e;
}

/* Bytes the kernel wrote through io_uring are invisible to valgrind. */
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define tf_mark_defined(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
#define tf_mark_defined(p, n) ((void)0)
#endif

/* TLSFLOW_TRACE=1 in the environment: one line per event on stderr, for
 * finding out where a flow stands.  Never prints key material. */
extern int tf_trace_on;
void tf_trace_printf(const void *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define tf_trace(who, ...) do { if (tf_trace_on) tf_trace_printf((who), __VA_ARGS__); } while (0)

#define TF_CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
