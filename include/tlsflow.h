/* tlsflow — TLS flows at kernel speed.
 *
 * GnuTLS performs the handshake in userspace; the record keys then go into the
 * kernel (kTLS) where it can take them, and io_uring carries every read, write,
 * splice and shutdown.  Where the kernel cannot take a key, the same flow runs on
 * GnuTLS's userspace records over the same loop, invisibly to the application.
 *
 * Lifecycle rules (all calls):
 *  - Every int-returning call returns 0 when the operation was accepted, or a
 *    negative errno (-EINVAL, -ENOMEM, -EBUSY ...) when it was refused.  A refused
 *    operation never calls its callback; an accepted one calls it exactly once.
 *  - Callbacks run only from tlsflow_loop_run*(), never inside the call that
 *    submitted the operation.
 *  - A loop, its flows and its listeners belong to the thread that runs the loop
 *    (where TLSFLOW_RING_FLAGS ties the ring to a thread, see
 *    tlsflow_loop_ring_setup: the first to run it, which must also free it).
 *    A config is read-only once a flow used it and may be shared across loops.
 *    Configs are reference counted: every flow, connect and listener keeps the
 *    config it started with, so tlsflow_config_free may come at any time.
 *  - No data-path call blocks: tlsflow_connect resolves names on a resolver
 *    thread, sendfile reads through the loop; tlsflow_loop_run* wait only for
 *    the loop's own events.  Three calls may wait, none on a peer: tlsflow_listen
 *    resolves its host at the call (an address literal needs no lookup), the
 *    config setters read their files at the call, and tlsflow_loop_free waits
 *    (at most 5 s) for the kernel to end the operations it cancels.
 *  - Each call below says what it returns when refused and how long a pointer
 *    it hands out stays valid.  Pages: man 7 tlsflow, man 3 tlsflow_<call>.
 */
#ifndef TLSFLOW_H
#define TLSFLOW_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TLSFLOW_VERSION_STRING "0.1.0"

typedef struct tlsflow_loop     tlsflow_loop;      /* one io_uring; use from one thread */
typedef struct tlsflow_config   tlsflow_config;    /* credentials + policy; immutable once used */
typedef struct tlsflow          tlsflow;           /* one TLS flow */
typedef struct tlsflow_listener tlsflow_listener;

typedef enum { TLSFLOW_OK = 0, TLSFLOW_EOF = 1, TLSFLOW_ERROR = 2 } tlsflow_status;

typedef enum {                 /* tlsflow_error.code; 0 means no error */
    TLSFLOW_E_SYSTEM = 1,      /* an OS call failed: detail = errno */
    TLSFLOW_E_TLS,             /* GnuTLS failed: detail = GnuTLS error code */
    TLSFLOW_E_ALERT,           /* the peer sent a fatal alert: detail = alert number */
    TLSFLOW_E_CERTIFICATE,     /* the peer's certificate was rejected: detail = GnuTLS verify status */
    TLSFLOW_E_TRUNCATED,       /* transport closed without close_notify (never reported as EOF) */
    TLSFLOW_E_BAD_RECORD,      /* a record failed authentication or was malformed */
    TLSFLOW_E_TIMEOUT,
    TLSFLOW_E_CLOSED,          /* the flow was already closed for that direction: a write pending when
                                  a fatal error found by the receive side ended the sending side */
    TLSFLOW_E_CANCELED,        /* the flow was freed with the operation pending */
    TLSFLOW_E_KTLS_UNAVAILABLE,/* TLSFLOW_KTLS_REQUIRE and the kernel could not take the keys: detail = errno */
    TLSFLOW_E_RESOLVE,         /* the host name did not resolve: detail = getaddrinfo's EAI_* code */
    TLSFLOW_E_REKEY,           /* a key had to change and this kernel cannot take a new one: detail = errno */
} tlsflow_errcode;

typedef struct { tlsflow_errcode code; int detail; } tlsflow_error;

/* Never NULL; says what happened in words (errno text, GnuTLS text, alert name,
 * certificate reason).  Valid until the next call in the same thread. */
const char *tlsflow_error_message(tlsflow_error err);

typedef struct {
    tlsflow_status status;
    const void    *data;   /* read: the segment, valid until the callback returns */
    size_t         len;    /* read: its length; write/writev/sendfile: bytes accepted; splice: moved */
    tlsflow_error  error;  /* when status == TLSFLOW_ERROR */
} tlsflow_result;

typedef void tlsflow_cb(tlsflow *flow, const tlsflow_result *res, void *arg);

/* ---- Loop ---- */
/* *out: valid until tlsflow_loop_free.  0, -EINVAL (NULL, depth > 32768, a
 * TLSFLOW_RING_FLAGS it does not know), -ENOMEM, or io_uring_setup's -errno
 * (-EPERM/-ENOSYS: io_uring disabled or absent, -EMFILE). */
int  tlsflow_loop_new(tlsflow_loop **out, unsigned queue_depth /* 0 = default */);
/* Runs until no flow, listener or operation is left, or tlsflow_loop_stop():
 * 0 then; -EINVAL (NULL); -EEXIST (see tlsflow_loop_run_once); the kernel's
 * -errno when the ring broke. */
int  tlsflow_loop_run(tlsflow_loop *loop);
/* One round: waits up to timeout_ms (-1 = forever, 0 = poll) for completions and
 * runs their callbacks.  Returns the number of callbacks-worth of events handled
 * (0 too when the wait ended early); -EINVAL (NULL); -EEXIST (the ring is tied
 * to another thread, see tlsflow_loop_ring_setup); the kernel's -errno when the
 * ring broke. */
int  tlsflow_loop_run_once(tlsflow_loop *loop, int timeout_ms);
/* Makes the tlsflow_loop_run in progress return after its current round (a run
 * started later is not affected).  Callable from any thread: it wakes the loop. */
void tlsflow_loop_stop(tlsflow_loop *loop);
/* Counters of what the loop did, for tools and benchmarks. */
typedef struct {
    unsigned long long submissions;       /* SQEs handed to the kernel */
    unsigned long long enters;            /* io_uring_enter calls */
    unsigned long long plaintext_copied;  /* plaintext bytes tlsflow copied in userspace: file reads,
                                             small writes coalesced, kernel-decrypted bytes held
                                             while no read was pending (a pending read gets them
                                             in the receive buffer the kernel filled) */
    unsigned long long ciphertext_copied; /* received bytes copied out of the shared buffer ring */
} tlsflow_loop_stats;
int  tlsflow_loop_get_stats(const tlsflow_loop *loop, tlsflow_loop_stats *out);   /* 0, -EINVAL */
/* How the loop's io_uring was set up: "coop" (COOP_TASKRUN, where the kernel
 * has it) or "plain", chosen by probe at tlsflow_loop_new; TLSFLOW_RING_FLAGS in
 * the environment forces a set: "defer" (SINGLE_ISSUER|DEFER_TASKRUN), "coop"
 * or "plain", optionally ",regfd" (a registered ring descriptor) and
 * ",bundle" (receive bundles, 6.10; the string then ends in ",bundle") or
 * ",nobundle".  defer and regfd tie the ring to
 * the first thread that runs the loop: another's run is -EEXIST, and that
 * thread must also free it.  Valid as long as the loop; NULL for NULL. */
const char *tlsflow_loop_ring_setup(const tlsflow_loop *loop);
/* Frees the loop; flows, listeners and timers still there are freed with it,
 * and posted tasks not yet run are dropped, all without their callbacks (no
 * on_release either).  It cancels every operation in flight and waits for the
 * kernel to end them; if the kernel does not within 5 s, what it may still
 * write into is leaked rather than freed.  No post may race with it. */
void tlsflow_loop_free(tlsflow_loop *loop);
/* Caps the received bytes all flows of the loop hold together (default 256 MiB,
 * 0 = no cap).  Past it, the flows holding most stop receiving first, until
 * their application reads.  0, -EINVAL. */
int  tlsflow_loop_set_memory_limit(tlsflow_loop *loop, size_t bytes);

/* ---- Timers ----
 * Callbacks run from tlsflow_loop_run*; a started timer keeps tlsflow_loop_run
 * going, a stopped one does not.  All timers of a loop share one io_uring
 * timeout (armed for the earliest): starting or stopping one is O(log n) and
 * costs no submission of its own.  Timers use CLOCK_MONOTONIC. */
typedef struct tlsflow_timer tlsflow_timer;
typedef void tlsflow_timer_cb(tlsflow_timer *t, void *arg);
/* A stopped timer of loop in *out: 0, -EINVAL (NULL), -ENOMEM. */
int  tlsflow_timer_new(tlsflow_loop *loop, tlsflow_timer **out);
/* (Re)starts t: cb(t, arg) after timeout_ms, then every repeat_ms (0 = once);
 * a started timer is restarted.  0, -EINVAL (NULL t or cb), -ENOMEM. */
int  tlsflow_timer_start(tlsflow_timer *t, unsigned timeout_ms, unsigned repeat_ms,
                         tlsflow_timer_cb *cb, void *arg);
/* Never fires after this returns, even when already due; NULL or stopped: nothing. */
void tlsflow_timer_stop(tlsflow_timer *t);
/* Stops and frees t; allowed from any callback, its own included.  NULL: nothing.
 * (A timer is valid until this, or until tlsflow_loop_free frees it with the loop.) */
void tlsflow_timer_free(tlsflow_timer *t);

/* ---- Posts and embedding ---- */
typedef void tlsflow_task_fn(void *arg);
/* The one call that is safe from any thread: fn(arg) runs on the loop's
 * thread from tlsflow_loop_run*, in order of posting per posting thread; a
 * post waiting to run keeps tlsflow_loop_run going.  0, -EINVAL (NULL loop or
 * fn), -ENOMEM. */
int  tlsflow_loop_post(tlsflow_loop *loop, tlsflow_task_fn *fn, void *arg);
/* A descriptor (the io_uring's own) for another event loop (epoll, libuv):
 * it polls readable whenever tlsflow_loop_run_once(loop, 0) has work —
 * completions, due timers, posts, work queued by calls made outside the loop.
 * Level-triggered: after it fires, call tlsflow_loop_run_once(loop, 0).  Do
 * not read it or close it.  The fd, or -EINVAL (NULL). */
int  tlsflow_loop_fd(const tlsflow_loop *loop);

/* ---- Configuration ---- */
typedef enum { TLSFLOW_CLIENT, TLSFLOW_SERVER } tlsflow_role;
typedef enum { TLSFLOW_KTLS_AUTO, TLSFLOW_KTLS_REQUIRE, TLSFLOW_KTLS_OFF } tlsflow_ktls_mode;
typedef enum { TLSFLOW_VERIFY_REQUIRED, TLSFLOW_VERIFY_OPTIONAL, TLSFLOW_VERIFY_NONE } tlsflow_verify;

/* *out: valid until tlsflow_config_free.  0, -EINVAL (NULL out, bad role), -ENOMEM.
 * Setters below: 0, -EINVAL (NULL cfg, a bad value), -EBUSY once a flow or
 * listener used cfg; the file setters also -ENOENT (unreadable), -ENOMEM; all
 * copy their strings. */
int  tlsflow_config_new(tlsflow_config **out, tlsflow_role role);
/* Drops the caller's reference; flows and listeners using cfg keep theirs and
 * the last of them frees it.  NULL: nothing. */
void tlsflow_config_free(tlsflow_config *cfg);
/* Servers: a certificate chain and its key (PEM), loaded at the call; the
 * same as tlsflow_config_add_cert_file (the first pair is the default).
 * 0, -EINVAL, -ENOENT (a file missing or unreadable), -EBADMSG (not a PEM
 * certificate or key), -EKEYREJECTED (the key is not the certificate's),
 * -EBUSY once used, -ENOMEM. */
int  tlsflow_config_set_cert_file(tlsflow_config *cfg, const char *cert_pem, const char *key_pem);
int  tlsflow_config_set_ca_file(tlsflow_config *cfg, const char *ca_pem);  /* clients default to the system trust store */
/* Clients default to REQUIRED (the handshake fails on an untrusted or
 * misnamed certificate); OPTIONAL verifies and reports the result in
 * tlsflow_info.peer_verify_status without failing; NONE does not verify.
 * Servers default to NONE (no client certificate asked); OPTIONAL asks for one
 * and verifies it when given (an untrusted one fails the handshake), REQUIRED
 * demands one.  Servers that asked read the client's chain with
 * tlsflow_get_peer_certificate and its status in tlsflow_info. */
int  tlsflow_config_set_verify(tlsflow_config *cfg, tlsflow_verify mode);
/* Checked now: -EINVAL for a string GnuTLS refuses; -ENOMEM. */
int  tlsflow_config_set_priority(tlsflow_config *cfg, const char *gnutls_priority);
/* At most 8 protocols, in order of preference; count 0 clears the list.  Each
 * name is 1..31 bytes: GnuTLS refuses longer ones when a session is set up
 * (RFC 7301 allows 255), so they are refused here with -EINVAL. */
int  tlsflow_config_set_alpn(tlsflow_config *cfg, const char *const *protocols, size_t count);
int  tlsflow_config_set_ktls(tlsflow_config *cfg, tlsflow_ktls_mode mode);          /* default AUTO */
int  tlsflow_config_set_handshake_timeout(tlsflow_config *cfg, unsigned ms);        /* default 30000, 0 = none */
/* (set_ktls, set_handshake_timeout, set_resumption, set_ktls_flags: 0, -EINVAL, -EBUSY) */
/* What a flow may hold of received bytes (ciphertext waiting for GnuTLS, or
 * plaintext waiting for a read) before it stops receiving until the
 * application reads: default 64 KiB, at least 32 KiB (a whole record must
 * fit), at most 64 MiB; -EINVAL outside, -EBUSY once used.  The kernel's
 * socket buffer holds the rest.  A flow holds at most this, one record GnuTLS
 * is working on, and one send batch (64 KiB of ciphertext, or the
 * application's own buffers with kTLS): a peer that sends and never reads
 * costs a bounded amount of memory. */
#define TLSFLOW_RECEIVE_BUDGET_MIN (32u * 1024)
#define TLSFLOW_RECEIVE_BUDGET_MAX (64u * 1024 * 1024)
int  tlsflow_config_set_receive_budget(tlsflow_config *cfg, size_t bytes);
/* Clients keep the newest session ticket per server and resume with it;
 * servers issue tickets.  Default on; 0 turns both off. */
int  tlsflow_config_set_resumption(tlsflow_config *cfg, int enabled);
/* Without tlsflow_config_set_priority, servers choose the cipher by their own
 * order (%SERVER_PRECEDENCE): AES-GCM first on a CPU with AES instructions
 * (GnuTLS's userspace ChaCha20 is far slower there), ChaCha20 first on one
 * without; where this kernel takes ChaCha20 keys in both directions (probed
 * at tlsflow_loop_new) and the config lets keys go there, a client that lists
 * ChaCha20 first gets it. */
/* Opt-in kernel TLS tuning, applied where the kernel has it (ignored otherwise):
 * TLSFLOW_KTLS_ZEROCOPY_RO: TLS_TX_ZEROCOPY_RO — sendfile pages are encrypted
 *   in place; the file must not change while it is being sent.
 * TLSFLOW_KTLS_RX_NO_PAD: TLS_RX_EXPECT_NO_PAD — TLS 1.3 records are expected
 *   without padding (one copy less); a padded record is still handled. */
#define TLSFLOW_KTLS_ZEROCOPY_RO 0x1u
#define TLSFLOW_KTLS_RX_NO_PAD   0x2u
int  tlsflow_config_set_ktls_flags(tlsflow_config *cfg, unsigned flags);

/* ---- Certificates ---- */
/* Servers: adds a certificate chain and key (PEM) beside those already there.
 * Per handshake GnuTLS picks the pair whose names match the client's SNI and
 * whose key the client's signature algorithms allow (an RSA and an ECDSA
 * certificate for one name); no SNI, or a name no pair has: the first pair
 * that suits the client.  Errors as tlsflow_config_set_cert_file. */
int  tlsflow_config_add_cert_file(tlsflow_config *cfg, const char *cert_pem, const char *key_pem);
/* Servers: the session ticket key from a file of exactly 64 bytes (make one
 * with `openssl rand 64 > FILE`; keep it private), instead of a key made per
 * config.  Loops sharing a config always resume each other's tickets; with
 * the same file several processes or machines do.  GnuTLS derives the key of
 * each ticket-lifetime window from it (6 h), so tickets rotate by themselves
 * and an older one gets a full handshake.  0, -EINVAL (NULL, empty, a client
 * config), -ENOENT/-EACCES (cannot open), -EBADMSG (not 64 bytes), -EBUSY
 * once used, -ENOMEM. */
int  tlsflow_config_set_ticket_key_file(tlsflow_config *cfg, const char *path);
/* Servers: staples the DER OCSP response in der_file for the certificate
 * pair added last (load it again with the certificate to refresh it).
 * 0, -EINVAL (NULL, a client config, no certificate yet), -ENOENT, -EBADMSG
 * (not an OCSP response), -EKEYREJECTED (a response for another
 * certificate), -ESTALE (past its nextUpdate; GnuTLS also stops stapling a
 * response once it goes stale), -EKEYREVOKED (it says revoked: GnuTLS 3.7
 * staples none such), -EBUSY once used, -ENOMEM. */
int  tlsflow_config_set_ocsp_file(tlsflow_config *cfg, const char *der_file);
/* Clients: what a stapled OCSP response must be.  CHECK (the default)
 * reports it in tlsflow_info.ocsp_status; REQUIRE also fails the handshake
 * unless a good one came; OFF neither reports nor requires one.  GnuTLS 3.7
 * asks every server for a response and, under TLSFLOW_VERIFY_REQUIRED,
 * itself refuses a certificate whose stapled response says revoked or cannot
 * be believed, whatever the mode.  A resumed session has no certificate
 * exchange: ocsp_status 0, and REQUIRE held for the handshake it resumes.
 * A response is checked against the trust
 * store (none is loaded under TLSFLOW_VERIFY_NONE: every response then reads
 * invalid).  0, -EINVAL (a server config, a bad mode), -EBUSY once used. */
typedef enum { TLSFLOW_OCSP_OFF, TLSFLOW_OCSP_CHECK, TLSFLOW_OCSP_REQUIRE } tlsflow_ocsp_mode;
int  tlsflow_config_set_ocsp(tlsflow_config *cfg, tlsflow_ocsp_mode mode);
/* New handshakes of l use cfg (a server config; the listener keeps a
 * reference); flows already open keep the config they started with.  For a
 * reload without dropping a connection: build a new config, set it, free
 * yours.  0, -EINVAL (NULL, a client config, one without a certificate, a
 * closed listener), -ENOENT, -ENOMEM (as when a flow first uses a config). */
int  tlsflow_listener_set_config(tlsflow_listener *l, const tlsflow_config *cfg);

/* ---- Opening: cb gets flow == NULL and TLSFLOW_ERROR when the connection or handshake fails ---- */
/* tlsflow_connect does not block: a host name is resolved on a resolver
 * thread (an address literal needs none) while the loop runs on, then every
 * address it resolves to is tried in turn.  A name that does not resolve
 * completes cb with TLSFLOW_E_RESOLVE (detail: the EAI_* code; EAI_SYSTEM
 * comes as TLSFLOW_E_SYSTEM with its errno).  tlsflow_loop_free while the
 * lookup runs drops it: cb is not called.  Refused (cb never called): -EINVAL
 * (NULL, not a client config, a bad priority), -ENOENT (no system trust
 * store), -EAGAIN (no resolver thread), -ENOMEM. */
int  tlsflow_connect(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host,
                     const char *port, tlsflow_cb *cb, void *arg);
/* fd: a connected stream socket; the flow owns it once the call is accepted.
 * 0, or (fd stays the caller's) -EINVAL (NULL, fd not a stream socket, a
 * server config without a certificate), -ENOENT, -ENOMEM as for connect. */
int  tlsflow_wrap_fd(tlsflow_loop *loop, const tlsflow_config *cfg, int fd,
                     const char *server_name /* clients: SNI + verification name */,
                     tlsflow_cb *cb, void *arg);
/* on_flow runs once per handshaken flow; a connection whose handshake failed
 * is reported with flow == NULL and the error (the listener goes on).  The
 * socket has SO_REUSEPORT, so that one listener per loop and thread can share
 * a port (the kernel spreads connections among them).  host NULL: every local
 * address.  Returns 0, or:
 *   -EINVAL         a bad argument, a client config, a server config without a
 *                   certificate, or a port that is neither a number nor a
 *                   TCP service name;
 *   -ENOENT         host does not resolve (no such name, not an address literal);
 *   -EAGAIN         the resolver failed for now (try again later);
 *   -EIO            the resolver failed for good;
 *   -ENOMEM         out of memory;
 *   -EADDRINUSE, -EADDRNOTAVAIL, -EACCES ...  socket(), bind() or listen()
 *                   refused the last address host resolved to (its errno);
 *                   -EADDRNOTAVAIL: the address is not one of this host's. */
int  tlsflow_listen(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host, const char *port,
                    tlsflow_cb *on_flow /* once per handshaken flow */, void *arg,
                    tlsflow_listener **out);
int  tlsflow_listener_port(const tlsflow_listener *l);   /* the bound port (useful with port "0"), -EINVAL */
/* Stops accepting; handshakes under way still reach on_flow.  l is invalid after. */
void tlsflow_listener_close(tlsflow_listener *l);

/* ---- The flow interface ---- */
/* Completes with one segment as soon as any plaintext is available; EOF only after
 * the peer's close_notify.  One read may be pending at a time.  0, -EINVAL (NULL,
 * a freed flow, a read already pending). */
int  tlsflow_read(tlsflow *flow, tlsflow_cb *cb, void *arg);
/* Complete in submission order once every byte was handed to the kernel; buf must
 * stay untouched until then.  The iovec array itself is copied at the call.
 * 0, -EINVAL (NULL, a bad iovec, after tlsflow_close), -ENOMEM. */
int  tlsflow_write(tlsflow *flow, const void *buf, size_t len, tlsflow_cb *cb, void *arg);
int  tlsflow_writev(tlsflow *flow, const struct iovec *iov, int iovcnt, tlsflow_cb *cb, void *arg);
/* Flushes pending writes, sends close_notify, shuts down for writing and completes
 * when the peer has closed too.  Reads stay allowed until then.  0, -EINVAL (NULL,
 * freed, already closing). */
int  tlsflow_close(tlsflow *flow, tlsflow_cb *cb, void *arg);
/* Releases the flow (may be called from any of its callbacks); flow is invalid
 * after it.  An open flow is reset and its pending operations complete with
 * TLSFLOW_E_CANCELED, from later rounds of the loop. */
void tlsflow_free(tlsflow *flow);
/* cb(arg) runs once, from the loop, after tlsflow_free(flow) once the flow's
 * last callback has run (cancelled ones included), never inside tlsflow_free;
 * a second registration replaces the first.  Not called when
 * tlsflow_loop_free releases the flow.  0, -EINVAL (NULL flow or cb, or a
 * flow already freed), -ENOMEM. */
int  tlsflow_on_release(tlsflow *flow, tlsflow_task_fn *cb, void *arg);

/* ---- Beyond the seed ---- */
/* Sends len bytes of fd from offset (splice on kTLS, read + encrypt otherwise);
 * fd stays the caller's.  0, -EINVAL (fd or offset < 0, len too large, as write), -ENOMEM. */
int  tlsflow_sendfile(tlsflow *flow, int fd, off_t offset, size_t len, tlsflow_cb *cb, void *arg);

/* ---- Splicing ----
 * Between a flow and a plain descriptor (a socket or a pipe, not the flow's
 * own socket); max 0 = no limit; res->len is the bytes moved.  With the key
 * of that direction in the kernel the bytes go through a pipe of the flow by
 * splice and none enters userspace; otherwise they are read and encrypted
 * (or decrypted and written) through one pooled batch at a time.  The
 * descriptor stays the caller's (not closed); it may be blocking or not.
 * Like write(2), a descriptor whose reader is gone (a pipe, or a socket
 * spliced into) may raise SIGPIPE: ignore it. */
/* fd -> flow until fd's EOF or max bytes: OK (len < max: EOF came), EOF when
 * the peer stopped reading, ERROR with TLSFLOW_E_SYSTEM when fd failed (len:
 * what went before).  A write: in order with writes, refused after close.
 * 0, -EINVAL (NULL, not open, closed, bad fd, a splice_from pending), -ENOMEM. */
int  tlsflow_splice_from(tlsflow *flow, int fd, size_t max, tlsflow_cb *cb, void *arg);
/* flow -> fd until the peer's close_notify or max bytes: OK (len < max: the
 * close_notify came), EOF (as a read) when it came before any byte; ERROR as
 * reads fail, or TLSFLOW_E_SYSTEM when fd failed (what was taken for it is
 * lost).  Holds the read slot: no tlsflow_read meanwhile.  Control records
 * are handled as reads handle them.  0, -EINVAL (NULL, not open, bad fd, a
 * read or splice_to pending). */
int  tlsflow_splice_to(tlsflow *flow, int fd, size_t max, tlsflow_cb *cb, void *arg);

typedef struct {
    unsigned    tls_version;   /* 0x0303 = TLS 1.2, 0x0304 = TLS 1.3 */
    const char *cipher;        /* e.g. "AES-128-GCM" */
    const char *alpn;          /* NULL when none was agreed */
    const char *server_name;
    int         ktls_tx, ktls_rx;  /* 1 where the kernel holds that direction's key */
    int         resumed;
    unsigned    peer_verify_status; /* clients with TLSFLOW_VERIFY_OPTIONAL: the GnuTLS verify
                                       status of the server's certificate (0 = trusted); servers
                                       that asked for a client certificate: 0 = the client's is
                                       trusted, GNUTLS_CERT_INVALID (2) = it sent none; else 0 */
    int         ocsp_status;   /* clients: the OCSP response the server stapled, believed only when
                                  it is about its certificate, signed by a signer the trust store
                                  vouches for and not stale: TLSFLOW_OCSP_STATUS_* */
} tlsflow_info;
#define TLSFLOW_OCSP_STATUS_NONE    0   /* none stapled, or TLSFLOW_OCSP_OFF */
#define TLSFLOW_OCSP_STATUS_GOOD    1
#define TLSFLOW_OCSP_STATUS_REVOKED 2
#define TLSFLOW_OCSP_STATUS_INVALID 3   /* stale, for another certificate, badly signed, unknown */
/* The strings in *out are valid while the flow lives.  0, -EINVAL (NULL, freed). */
int  tlsflow_get_info(const tlsflow *flow, tlsflow_info *out);
/* The peer's certificate chain, leaf first: DER bytes of element index, valid
 * while the flow lives.  0, -ENOENT past the end (or no certificate), -EINVAL. */
int  tlsflow_get_peer_certificate(const tlsflow *flow, size_t index, const void **der, size_t *len);
/* The socket; with both directions in the kernel it may be used with plain
 * read/write/sendfile by other code (a plain read() fails with EIO at a
 * control record such as a late TLS 1.3 ticket: use recvmsg with a control
 * buffer, or leave receiving to tlsflow_read).  Owned by the flow: valid until
 * tlsflow_free; do not close it.  The fd, or -EINVAL (NULL). */
int  tlsflow_fd(const tlsflow *flow);
const char *tlsflow_version(void);   /* static: valid for ever */

#ifdef __cplusplus
}
#endif
#endif /* TLSFLOW_H */
