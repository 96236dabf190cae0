/* ring/ — the io_uring loop and the flow's data path.  The only layer that
 * submits I/O and calls the application back. */
#ifndef TF_RING_H
#define TF_RING_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define TF_KTX_IOV 64
#define TF_INLINE_IOV 8
#define TF_BGID 7                 /* our provided-buffer group */
#define TF_BR_ENTRIES 64          /* ring of provided buffers, each TF_BR_SIZE: a fixed 2 MiB per loop */
#define TF_BR_SIZE (32 * 1024)
#define TF_BUNDLE_MAX (4 * TF_BR_SIZE) /* the most one bundled receive asks for */
/* 6.10's receive bundles, which Debian's liburing 2.3 does not name. */
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#define TF_IN_CAP (32 * 1024)
#define TF_RECV_ROOM (16 * 1024 + 512) /* a private receive: a full record and its header */
#define TF_TX_BATCH (64 * 1024)   /* ciphertext encrypted ahead of the kernel */
#define TF_TX_CAP (TF_TX_BATCH + 32 * 1024) /* a send batch and a record more */
#define TF_FILE_CAP (64 * 1024)   /* file bytes read per io_uring READ */
#define TF_LINGER_MS 2000         /* how long a failed flow may take to tell the peer */
#define TF_POOL_MAX 64
#define TF_POOL_WARM 8            /* pooled buffers that keep their pages */
#define TF_POOL_TRIM_MS 1000      /* unused this long, a pooled buffer's pages go back */

/* Buffers of one size kept for reuse (pool.c): a busy flow neither allocates
 * nor faults pages in per operation, an idle one holds none.  A stack:
 * items[0 .. n); `low` is the fewest it held since the last trim; cold[i]:
 * items[i]'s pages were given back (a release makes its slot warm again). */
typedef struct {
    uint8_t *items[TF_POOL_MAX];
    bool     cold[TF_POOL_MAX];
    size_t   n, low, cap;
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
    void   (*discard)(tf_task *t);  /* loop_free, the task still queued: frees what it owns (NULL: nothing) */
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

/* timer.c: every started timer is in one heap, ordered by (due, seq); one
 * io_uring timeout, armed for the earliest, wakes the loop. */
typedef struct {
    tlsflow_timer **heap;
    size_t   n, cap;              /* n: started timers (they keep tlsflow_loop_run going) */
    uint64_t seq;                 /* start order: ties, and which timers one round may fire */
    tlsflow_timer *all;           /* every timer of the loop, for loop_free */
    tf_op    op;                  /* the timeout */
    struct __kernel_timespec ts, update_ts;
    uint64_t armed_ns;            /* CLOCK_MONOTONIC deadline the kernel holds; 0: none (or being removed) */
} tf_timers;

/* post.c: tasks posted from any thread. */
typedef struct tf_post tf_post;

struct tlsflow_loop {
    struct io_uring ring;
    atomic_bool stopped;          /* tlsflow_loop_stop, from any thread */
    bool     in_run;              /* inside tlsflow_loop_run_once */
    unsigned live;                /* flows, listeners and connects not yet released */
    const char *ring_set;         /* setup.c: "defer", "coop" or "plain" */
    /* Before the first run the ring may be disabled (single issuer: the
     * first runner becomes the issuer) and SQEs wait in the queue; once live
     * it is bound to `owner` when single issuer or a registered fd says so. */
    bool     ring_live;           /* enabled, bound (tf_ring_bind) */
    bool     ring_disabled;       /* created IORING_SETUP_R_DISABLED, not enabled yet */
    bool     ring_regfd_want;     /* asked for (TLSFLOW_RING_FLAGS) */
    bool     ring_regfd;          /* the ring's descriptor is registered */
    bool     ring_bound;          /* only `owner` may enter */
    pthread_t owner;              /* the thread that first ran the loop */
    char     ring_desc[32];       /* tlsflow_loop_ring_setup */
    tf_task *tasks, **tasks_tail;
    /* Flows whose receive found the shared ring empty (ENOBUFS): they receive
     * again as buffers come back, a ring's worth per round, never in a spin. */
    tf_task *starved, **starved_tail;
    struct io_uring_cqe *stash;   /* CQEs reaped while the SQ was full */
    size_t   nstash, capstash;
    tf_link  objects;             /* flows and listeners, for loop_free */
    /* Receives land in a ring of provided buffers shared by every flow, so an
     * idle flow holds no receive buffer; a flow keeps bytes only while they
     * wait for GnuTLS or the application. */
    int      br_state;            /* 0 not tried, 1 ready, -errno unavailable */
    struct io_uring_buf_ring *br;
    uint8_t *br_bufs;
    /* Receive bundles (6.10): one userspace receive may fill several buffers,
     * the ring's entries that follow the first in the order they were added:
     * which buffer each entry holds, and where each buffer was added. */
    bool     br_bundle;           /* the kernel has them (setup.c), not turned off */
    uint8_t  br_slot_bid[TF_BR_ENTRIES], br_bid_slot[TF_BR_ENTRIES];
    tf_pool  in_pool;             /* spare receive buffers */
    tf_pool  tx_pool;             /* spare send buffers */
    tf_pool  file_pool;           /* spare file-read buffers (sendfile in userspace) */
    long long trim_at_ms;         /* the pools' next trim (CLOCK_MONOTONIC_COARSE) */
    unsigned inflight;            /* our requests the kernel has not finished */
    uint64_t submissions;         /* SQEs handed to the kernel, for the tools' counters */
    uint64_t enters;
    uint64_t plain_copied, cipher_copied;
    size_t   rx_held, mem_limit;  /* received bytes all flows hold; their cap (0 none) */
    tf_link  parked;              /* flows waiting for rx_held to go below mem_limit */
    struct tf_write *free_writes; /* write requests kept for reuse */
    size_t   nfree_writes;
    tf_timers timers;
    /* The only part other threads touch: the post queue (under post_lock)
     * and wake_fd, an eventfd the ring keeps a read on, so that a write
     * to it ends a wait in io_uring_enter and makes the ring fd readable. */
    pthread_mutex_t post_lock;
    tf_post *post_head, **post_tail;
    atomic_bool has_posts;        /* the queue is not empty */
    int      wake_fd;
    atomic_int embed_fd;          /* tlsflow_loop_fd with deferred task work: -1 until asked
                                     (set by the loop's thread, read by posting ones) */
    tf_op    wake_op;
    uint64_t wake_val;
    bool     is_kicked;           /* the loop wrote wake_fd itself and has not read it since */
    struct tf_resolve *resolving; /* lookups of tlsflow_connect in flight (loop thread only) */
};

/* loop.c */
struct io_uring_sqe *tf_ring_sqe(tlsflow_loop *loop, tf_op *op);   /* never NULL */
void tf_ring_sqe_detached(tlsflow_loop *loop, struct io_uring_sqe **out); /* user_data 0: result ignored */
int  tf_ring_setup(tlsflow_loop *loop, unsigned depth);   /* setup.c: the ring, by probe */
int  tf_ring_bind(tlsflow_loop *loop);    /* setup.c: the first run takes the ring */
void tf_ring_submit(tlsflow_loop *loop);  /* what is queued, to the kernel (best effort) */
void tf_post_drain_embed(tlsflow_loop *loop);   /* post.c: a run begins */
void tf_post_embed_end(tlsflow_loop *loop);     /* post.c: a run ends */
void tf_ring_defer(tlsflow_loop *loop, tf_task *t);
void tf_ring_starve(tlsflow_loop *loop, tf_task *t);   /* runs once ring buffers came back */
void tf_ring_track(tlsflow_loop *loop, tf_link *l);
void tf_ring_untrack(tf_link *l);
void tf_ring_cancel(tlsflow_loop *loop, tf_op *op);
void tf_ring_timeout(tlsflow_loop *loop, tf_op *op, struct __kernel_timespec *ts, unsigned ms);
bool tf_ring_bufring(tlsflow_loop *loop);            /* the provided-buffer ring, set up on first use */
/* A completion with IORING_CQE_F_BUFFER took buffers from the shared ring:
 * one, or with a bundle as many as its res filled (the first named in its
 * flags, the others the ring's next entries).  The i-th of them; and all of
 * them given back to the ring (once, when their bytes are no longer read). */
const uint8_t *tf_ring_cqe_buf(const tlsflow_loop *loop, unsigned flags, unsigned i);
void tf_ring_recycle_cqe(tlsflow_loop *loop, unsigned flags, int res);
int  tf_pool_acquire(tf_pool *pool, tf_buf *b);   /* memory for a buffer that has none */
void tf_pool_release(tf_pool *pool, tf_buf *b);   /* an empty b gives its memory back */
void tf_pool_trim(tf_pool *pool);    /* what sat unused since the last trim cools */
bool tf_pool_warm_excess(const tf_pool *pool);   /* a trim has pages to give back */
void tf_pool_drain(tf_pool *pool);

/* timer.c */
void tf_timers_sync(tlsflow_loop *loop);   /* arms the kernel's timeout for the earliest timer */
void tf_timers_free(tlsflow_loop *loop);   /* frees every timer of the loop, without callbacks */

/* post.c */
int  tf_post_init(tlsflow_loop *loop);     /* the eventfd and its read; -errno */
unsigned tf_post_run(tlsflow_loop *loop);  /* runs what was posted so far: how many */
bool tf_post_pending(tlsflow_loop *loop);
void tf_post_free(tlsflow_loop *loop);     /* drops posts not run; closes the eventfd */
void tf_ring_wake(tlsflow_loop *loop);     /* any thread: ends a wait, makes the ring fd readable */
/* The loop's thread, outside tlsflow_loop_run_once: work was queued that no
 * completion will announce (a task, a timer); the ring fd becomes readable. */
void tf_ring_kick(tlsflow_loop *loop);
/* A post whose node is allocated ahead, so that queueing it cannot fail. */
tf_post *tf_post_new(tlsflow_task_fn *fn, void *arg);   /* NULL: no memory */
void tf_post_discard(tf_post *p);                       /* frees one never queued */
void tf_post_queue(tlsflow_loop *loop, tf_post *p);     /* any thread; takes p */

/* resolve.c: getaddrinfo on a worker thread, the answer back on the loop's
 * thread through a post.  fn(arg, ...) runs from tlsflow_loop_run* and owns
 * res; gai_error as getaddrinfo returned it, sys_errno its errno for
 * EAI_SYSTEM.  fn never runs once the loop is freed. */
struct addrinfo;
typedef struct tf_resolve tf_resolve;
typedef void tf_resolve_fn(void *arg, struct addrinfo *res, int gai_error, int sys_errno);
int  tf_resolve_start(tlsflow_loop *loop, const char *host, const char *port,
                      const struct addrinfo *hints, tf_resolve_fn *fn, void *arg,
                      tf_resolve **out);                 /* 0 or -errno; fn not run on failure */
/* The requester goes away (loop_free, after tf_resolve_shutdown): fn never
 * runs; the lookup's answer, when it comes, is dropped by the worker. */
void tf_resolve_drop(tf_resolve *r);
/* loop_free, first: no worker touches the loop from now on. */
void tf_resolve_shutdown(tlsflow_loop *loop);

/* release.c: tlsflow_on_release */
struct tf_release;
void tf_release_queue(tlsflow_loop *loop, struct tf_release *r);   /* runs it from the loop; NULL: none */
void tf_release_discard(struct tf_release *r);                     /* frees it uncalled; NULL: none */

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
    int           file_fd;    /* sendfile: the file, else -1; splice_from: the descriptor */
    off_t         file_off;
    bool          is_stream;  /* splice_from: total is the most to move, cut to the bytes
                                 moved at the descriptor's EOF or error */
    int           stream_errno; /* splice_from: the descriptor failed (completes with ERROR) */
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
    uint8_t       alert[2];   /* the fatal alert going out */
    uint8_t       warning[2]; /* a warning alert to send (no_renegotiation); [0] = 0: none */
    bool          more;       /* the send in flight has MSG_MORE: its last record stays open */
};

/* A flow's operation in flight.  tf_flow_submit takes the flow's reference
 * for it; the one completion path (flow.c) runs fn and drops it. */
typedef struct tf_fop tf_fop;
typedef void tf_fop_fn(tlsflow *f, int res, unsigned cqe_flags);
struct tf_fop {
    tf_op      op;
    tlsflow   *flow;
    tf_fop_fn *fn;
};

/* The flow's life: OPENING until the handshake is done and the application
 * has its flow, OPEN while it may use it, DEAD once the opening failed (the
 * application never saw it; it lingers only to tell the peer why). */
enum tf_flow_state { FLOW_OPENING, FLOW_OPEN, FLOW_DEAD };

/* Who protects each direction's records.
 *  PATH_HANDSHAKE  GnuTLS, during the handshake.
 *  PATH_USER       GnuTLS in userspace: `in` holds ciphertext (rx); writes
 *                  are encrypted into `out` (tx).
 *  PATH_SWITCHING  the key goes to the kernel at the next record boundary:
 *                  rx gives GnuTLS whole records only; tx sends nothing new
 *                  until our last userspace record is out.
 *  PATH_KERNEL     the kernel: `in` holds plaintext and control records are
 *                  handled as they come (rx); writes go from the
 *                  application's buffers (tx). */
enum tf_path { PATH_HANDSHAKE, PATH_USER, PATH_SWITCHING, PATH_KERNEL };

/* How the incoming stream ended, once it has; set once, from RX_LIVE.  Reads
 * learn it after every byte that came before it:
 *  RX_LIVE      records may still come.
 *  RX_NOTIFIED  the peer's close_notify: reads get EOF.
 *  RX_CUT       the peer dropped the connection after our close_notify: the
 *               close completes, reads get TLSFLOW_E_TRUNCATED.
 *  RX_BAD       a fatal error in what came (rx_err); the peer has been told.
 * Nothing is received once it is not RX_LIVE.  A transport that ends
 * (rx_eof, rx_errno) is not yet an end of the stream: GnuTLS or the kernel
 * first says what the bytes before it were. */
enum tf_rx_end { RX_LIVE, RX_NOTIFIED, RX_CUT, RX_BAD };

/* The send side's phase, in order (it only moves forward):
 *  TX_OPEN      writes are taken.
 *  TX_BYE       close_notify is queued behind the last write.
 *  TX_SHUT      shutdown(SHUT_WR) is submitted after it.
 *  TX_ALERTING  a fatal error: what was already encrypted goes out, then one
 *               alert, then shutdown; bounded by the linger timer.
 *  TX_DONE      nothing more goes out (the alert and shutdown are out, the
 *               peer stopped reading, or the linger time ran out).
 * Writes are refused from TX_BYE on; in TX_ALERTING and TX_DONE pending
 * writes complete with the flow's error (or EOF, when the peer stopped
 * reading), never while the kernel may still read their buffers. */
enum tf_tx_phase { TX_OPEN, TX_BYE, TX_SHUT, TX_ALERTING, TX_DONE };

/* tlsflow_splice_to (flow_splice.c), one at a time in the read slot:
 *  SRX_NONE     none pending; read_cb is the application's.
 *  SRX_MOVING   pending: read_cb is the splice's own (userspace records
 *               land in srx_buf through it); bytes go to srx_fd.
 *  SRX_ENDING   the peer's close_notify came: what is still in the pipe
 *               or srx_buf goes out, then the splice completes with EOF.
 * A read is refused while it is not SRX_NONE. */
enum tf_srx_phase { SRX_NONE, SRX_MOVING, SRX_ENDING };
/* What srx_op carries, or the step due next when it is idle:
 *  SRX_STEP_MOVE     kernel: splice socket -> pipe (non-blocking).
 *  SRX_STEP_POLL     kernel: the socket had nothing: POLLIN on it first.
 *  SRX_STEP_READY    kernel: it polled readable: a splice that may wait for
 *                    the rest of the record.
 *  SRX_STEP_CONTROL  kernel: the next record is not data: one recvmsg
 *                    (recv_op, the read path) takes it, then splicing resumes.
 *  SRX_STEP_OUT_POLL srx_fd was full: POLLOUT on it before the next write.
 * Whatever the step, bytes waiting for srx_fd (the pipe, `in`, srx_buf) go
 * out first. */
enum tf_srx_step { SRX_STEP_MOVE, SRX_STEP_POLL, SRX_STEP_READY, SRX_STEP_CONTROL, SRX_STEP_OUT_POLL };
/* tlsflow_splice_from's next step on its descriptor (the stream write is
 *  wq_next while it moves):
 *  STX_STEP_READ  read (userspace) / splice fd -> pipe (kernel).
 *  STX_STEP_POLL  POLLIN first: the descriptor had nothing, or (kernel) a
 *                 splice from a blocking socket would wait in a kernel worker. */
enum tf_stx_step { STX_STEP_READ, STX_STEP_POLL };

struct tlsflow {
    tf_link            link;
    tlsflow_loop      *loop;
    const tlsflow_config *cfg;
    int                fd;
    enum tf_flow_state state;
    enum tf_path       rx_path, tx_path;
    enum tf_tx_phase   tx_phase;
    unsigned           refs;        /* 1 for the application + 1 per op in flight + 1 while a task is queued */
    bool               freed;
    tlsflow_error      err;         /* sticky */
    tf_task            task;
    tf_session         hs;
    struct tf_release *release;     /* tlsflow_on_release: called once the last reference is gone */

    /* opening */
    tlsflow_cb        *open_cb;
    void              *open_arg;
    tf_fop             timer_op;    /* the handshake timeout */
    struct __kernel_timespec timer_ts;

    /* receive side */
    tf_buf             in;          /* ciphertext not yet taken by GnuTLS, or kernel plaintext */
    tf_fop             recv_op;
    tf_task            starve_task; /* queued: waiting for a buffer of the shared ring */
    size_t             rx_held;     /* received bytes held, as counted in the loop's total */
    tf_link            park;        /* on the loop's list while its memory limit stops us */
    bool               rx_eof;      /* transport: TCP FIN seen (GnuTLS's pull reads it too) */
    int                rx_errno;    /* transport: a receive failed with this errno */
    enum tf_rx_end     rx_end;
    tlsflow_error      rx_err;      /* RX_BAD: the error */
    tlsflow_cb        *read_cb;     /* a read is pending */
    void              *read_arg;

    gnutls_packet_t    held;        /* a record read while no read was pending */
    const void        *held_data;
    size_t             held_len;

    /* send side: GnuTLS appends to `out`; `sending` is in the kernel's hands
     * and never moves until its send completes */
    tf_buf             out;
    tf_buf             sending;
    tf_fop             send_op;
    bool               tx_congested;/* the last send was short: encrypt no batch ahead */
    size_t             tx_corked;   /* plaintext in GnuTLS's cork, not yet records: 0 when
                                       no write is being joined; > 0 across a file read
                                       only while the file's rest fits the same record */
    uint64_t           tx_sent;     /* stream position: bytes handed to the kernel */
    tf_write          *wq, **wq_tail;
    tf_write          *wq_next;     /* first write not yet taken */
    bool               tx_peer_gone;/* EPIPE/reset: writes give EOF */
    int                alert;       /* fatal alert to send in TX_ALERTING, -1 none */
    tf_fop             linger_op;   /* bounds TX_ALERTING */
    struct __kernel_timespec linger_ts;

    /* closing */
    tlsflow_cb        *close_cb;    /* a close is pending */
    void              *close_arg;
    tf_fop             shut_op;

    /* sendfile */
    tf_buf             fbuf;        /* userspace: file bytes read, not yet encrypted */
    tf_fop             file_op;     /* userspace: read; kernel: splice file -> pipe */
    int                pipe_fd[2];  /* kernel: file -> pipe -> socket; -1 none */
    size_t             pipe_len;

    /* splicing (flow_splice.c) */
    enum tf_stx_step   stx_step;
    tf_fop             stx_poll;    /* splice_from: POLLIN on its descriptor */
    enum tf_srx_phase  srx_phase;
    enum tf_srx_step   srx_step;
    tf_fop             srx_op;      /* splice_to: one step at a time */
    tlsflow_cb        *srx_cb;
    void              *srx_arg;
    int                srx_fd;
    bool               srx_is_sock; /* send with MSG_NOSIGNAL, not write */
    size_t             srx_max, srx_moved;   /* srx_max 0: no limit */
    tf_buf             srx_buf;     /* userspace: plaintext on its way to srx_fd (one batch) */
    int                rx_pipe[2];  /* kernel: socket -> pipe -> srx_fd; -1 none */
    size_t             rx_pipe_len;

    /* kernel TLS */
    bool               ulp_attached;
    bool               tx_rekey_pending;           /* new TX key after our KeyUpdate is out */
    struct tf_kio     *kio;                        /* message headers, once a key is in the kernel */
    int                ktx_kind;                   /* what the send in flight carries */
    tf_buf             post_out;                   /* handshake messages for the peer */
    uint64_t           tx_pos;                     /* kernel: stream position given to writes */
    uint64_t           tx_records, tx_record_limit;
    size_t             tx_open_record;             /* bytes of the record the kernel keeps open (MSG_MORE) */
    unsigned           key_updates;                /* KeyUpdates since the last application data */
    unsigned           tls_version;
};

/* flow.c: lifecycle, the one submission and completion path, failing */
tf_write *tf_write_get(tlsflow_loop *loop);
void tf_write_put(tlsflow_loop *loop, tf_write *w);
tlsflow *tf_flow_new(tlsflow_loop *loop, const tlsflow_config *cfg, int fd);
void tf_flow_schedule(tlsflow *f);
void tf_flow_starve(tlsflow *f);     /* receive again once ring buffers came back */
void tf_flow_release(tlsflow *f);   /* drop one ref; frees at zero */
struct io_uring_sqe *tf_flow_submit(tlsflow *f, tf_fop *op, tf_fop_fn *fn);
/* The flow fails with err (sticky): everything in flight is cancelled, and
 * the peer is told with a fatal alert (desc >= 0) after what was already
 * encrypted.  tf_flow_alert_for names the alert for an error. */
void tf_flow_fail(tlsflow *f, tlsflow_error err);
void tf_flow_fail_alert(tlsflow *f, tlsflow_error err, int desc);
#define TF_ALERT_QUEUED 256    /* desc: GnuTLS already queued its alert in `out` */
int  tf_flow_alert_for(const tlsflow *f, tlsflow_error err);
bool tf_flow_tx_idle(const tlsflow *f);    /* nothing of ours being sent or waiting to be */
void tf_flow_tx_alert(tlsflow *f, int desc);   /* the send side ends with this alert (-1: without) */
void tf_flow_fail_writes(tlsflow *f, tlsflow_error err);
void tf_flow_tx_abort_progress(tlsflow *f);

/* flow_open.c: the handshake driver */
void tf_flow_start_handshake(tlsflow *f, const char *server_name, const char *cache_key,
                             tlsflow_cb *cb, void *arg);
void tf_flow_open_progress(tlsflow *f);
void tf_flow_stop_timer(tlsflow *f);

/* flow_rx.c: receiving (both paths), userspace records */
void tf_flow_post_recv(tlsflow *f, size_t max);   /* max 0: what the budget allows */
void tf_flow_rx_account(tlsflow *f);              /* after `in` or the held record changed */
void tf_flow_unpark(tlsflow *f);
void tf_flow_rx_progress(tlsflow *f);
void tf_flow_complete_read(tlsflow *f, tlsflow_status st, const void *data, size_t len,
                           tlsflow_error err);
void tf_flow_end_of_stream(tlsflow *f, tlsflow_error err);
void tf_flow_rx_fail(tlsflow *f, tlsflow_error err, int alert);
void tf_flow_take_in(tlsflow *f, const uint8_t *src, size_t len);
void tf_flow_recv_error(tlsflow *f, int res);   /* transient ones ignored, else rx_errno */
/* After GnuTLS read a record in userspace while the kernel holds the send
 * key: what GnuTLS owes the peer (a KeyUpdate, a no_renegotiation warning)
 * goes out through the kernel. */
void tf_flow_owed_by_gnutls(tlsflow *f);

/* flow_krx.c: the kernel's receive side */
/* A piece of one record the kernel decrypted, of the given type, and where
 * it lies: received at the tail of `in`, in a buffer of the shared ring (which
 * goes back to the ring after this returns), or elsewhere (copied if kept). */
typedef enum { SEG_IN_PLACE, SEG_RING, SEG_COPY } tf_seg_where;
void tf_flow_krx_segment(tlsflow *f, const uint8_t *p, size_t len, int type, tf_seg_where where);
void tf_flow_krx_error(tlsflow *f, int res);
void tf_flow_krx_progress(tlsflow *f);

/* flow_tx.c / flow_ktx.c: sending, closing */
void tf_flow_tx_progress(tlsflow *f);
void tf_flow_flush(tlsflow *f);
void tf_flow_close_progress(tlsflow *f);
void tf_flow_complete_writes(tlsflow *f);
enum { KTX_DATA = 1, KTX_HANDSHAKE, KTX_ALERT, KTX_SPLICE };
void tf_flow_ktx_progress(tlsflow *f);
void tf_flow_ktx_splice(tlsflow *f);      /* pipe -> socket */
void tf_flow_ktx_key_update(tlsflow *f);  /* our KeyUpdate, asked for by the peer */
void tf_flow_shutdown(tlsflow *f);        /* shutdown(SHUT_WR) through the ring */
bool tf_flow_ktx_close(tlsflow *f);       /* sends close_notify; false while not possible */
bool tf_flow_ktx_alert(tlsflow *f);       /* sends f->alert; false while not possible */

/* flow_file.c: sendfile */
/* Encrypts what was read of the file and reads on: 1 progress, 0 waiting
 * for the file, -1 the flow failed.  While f->tx_corked, the file's bytes
 * join the corked record (the caller checked that they fit). */
int  tf_flow_user_file(tlsflow *f, tf_write *w);
bool tf_flow_encrypt_fbuf(tlsflow *f, tf_write *w);   /* fbuf's bytes as records: false, failed */
void tf_flow_splice_file(tlsflow *f, tf_write *w);

/* flow_splice.c: splice_from (a stream write) and splice_to (the read slot) */
int  tf_flow_user_stream(tlsflow *f, tf_write *w);   /* as tf_flow_user_file */
void tf_flow_splice_stream(tlsflow *f, tf_write *w); /* as tf_flow_splice_file */
static inline bool tf_write_is_open_stream(const tf_write *w)
{
    return w->is_stream && w->cur_off < w->total;
}
static inline bool tf_flow_splicing_rx(const tlsflow *f)
{
    return f->srx_phase != SRX_NONE;
}
void tf_flow_splice_rx_progress(tlsflow *f);
/* splice_to on the userspace path: takes what fits of the held record;
 * false when some of it stays held (the batch is full or max reached). */
bool tf_flow_splice_take_held(tlsflow *f);
void tf_flow_splice_fail(tlsflow *f, tlsflow_error err);   /* completes a pending splice_to */
void tf_flow_splice_cancel(tlsflow *f);                    /* its operations in flight */
void tf_flow_splice_destroy(tlsflow *f);                   /* its pipe and buffer */
void tf_flow_user_rx_progress(tlsflow *f);

/* flow_switch.c: the keys' move to the kernel */
tlsflow_error tf_flow_ktls_plan(tlsflow *f);
void tf_flow_ktls_attach_early(tlsflow *f);
bool tf_flow_ktls_tx_switch(tlsflow *f);   /* false: the flow failed */
bool tf_flow_ktls_rx_switch(tlsflow *f);
int  tf_flow_ktls_install(tlsflow *f, enum tf_ktls_dir dir);

static inline void tf_rx_end(tlsflow *f, enum tf_rx_end end)
{
    if (f->rx_end == RX_LIVE)
        f->rx_end = end;
}

static inline tlsflow_error tf_err(tlsflow_errcode code, int detail)
{
    tlsflow_error e = { code, detail };
    return e;
}

/* Bytes the kernel wrote through io_uring are invisible to valgrind. */
/* Under valgrind (which runs one thread at a time and does not hand over
 * while the loop waits in io_uring_enter) names are resolved on the loop's
 * thread: a resolver thread would not run until the loop's wait ends. */
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define tf_mark_defined(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#define tf_under_valgrind() (RUNNING_ON_VALGRIND != 0)
#else
#define tf_mark_defined(p, n) ((void)0)
#define tf_under_valgrind() false
#endif

/* TLSFLOW_TRACE=1 in the environment: one line per event on stderr, for
 * finding out where a flow stands.  Never prints key material. */
extern int tf_trace_on;
void tf_trace_printf(const void *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define tf_trace(who, ...) do { if (tf_trace_on) tf_trace_printf((who), __VA_ARGS__); } while (0)

#define TF_CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
