/* The test harness of tlsflow's tests: certificate paths, the frame and the
 * clock, peer processes, checksummed data, a relay, tlsflow-side drivers, the
 * echo server, the kernel's kTLS side.  The in-thread peers have headers of
 * their own: tf_gnutls_peer.h (a GnuTLS session) and tf_forge.h (records by
 * hand).  See the .c files beside this one. */
#ifndef TF_TEST_H
#define TF_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tlsflow.h>

/* Certificates made by tests/common/make-certs.sh into TF_TEST_CERTS. */
#define TF_CERT(name) TF_TEST_CERTS "/" name
#define TF_CA             TF_CERT("ca.pem")
#define TF_RSA_CERT       TF_CERT("server-rsa.pem")
#define TF_RSA_KEY        TF_CERT("server-rsa-key.pem")
#define TF_ECDSA_CERT     TF_CERT("server-ecdsa.pem")
#define TF_ECDSA_KEY      TF_CERT("server-ecdsa-key.pem")
#define TF_EXPIRED_CERT   TF_CERT("expired.pem")
#define TF_EXPIRED_KEY    TF_CERT("expired-key.pem")
#define TF_WRONGHOST_CERT TF_CERT("wronghost.pem")
#define TF_WRONGHOST_KEY  TF_CERT("wronghost-key.pem")
#define TF_UNTRUSTED_CA   TF_CERT("untrusted-ca.pem")
#define TF_UNTRUSTED_CERT TF_CERT("untrusted.pem")
#define TF_UNTRUSTED_KEY  TF_CERT("untrusted-key.pem")
#define TF_CLIENT_CERT    TF_CERT("client.pem")
#define TF_CLIENT_KEY     TF_CERT("client-key.pem")
#define TF_UNTRUSTED_CLIENT_CERT TF_CERT("untrusted-client.pem")
#define TF_UNTRUSTED_CLIENT_KEY  TF_CERT("untrusted-client-key.pem")
/* SNI: alpha.test with an RSA and an ECDSA certificate, beta.test with ECDSA. */
#define TF_ALPHA_RSA_CERT   TF_CERT("alpha-rsa.pem")
#define TF_ALPHA_RSA_KEY    TF_CERT("alpha-rsa-key.pem")
#define TF_ALPHA_ECDSA_CERT TF_CERT("alpha-ecdsa.pem")
#define TF_ALPHA_ECDSA_KEY  TF_CERT("alpha-ecdsa-key.pem")
#define TF_BETA_CERT        TF_CERT("beta.pem")
#define TF_BETA_KEY         TF_CERT("beta-key.pem")

/* Exit code CTest reads as "skipped". */
#define TF_SKIP 77

/* ---- Test frame (frame.c) ----
 * TF_TEST(name, seconds) { body } defines a cmocka test whose body runs under
 * an alarm: past `seconds` every peer is killed and the executable fails at
 * once.  Register it with TF_CASE(name): its teardown stops the peers the test
 * started and prints their logs when the test did not pass.  Needs <cmocka.h>.
 * TF_ONLY=<glob> in the environment runs only the matching tests. */
void tf_test_begin(const char *name, unsigned timeout_s);
void tf_test_end(void);
int  tf_test_teardown(void **state);
const char *tf_test_name(void);
#define TF_TEST(fn, timeout_s)                                      \
    static void fn##_body(void **state);                            \
    static void fn(void **state)                                    \
    {                                                               \
        tf_test_begin(#fn, (timeout_s));                            \
        fn##_body(state);                                           \
        tf_test_end();                                              \
    }                                                               \
    static void fn##_body(void **state __attribute__((unused)))
#define TF_CASE(fn) cmocka_unit_test_teardown(fn, tf_test_teardown)
/* The same test once per state, with a name made at run time. */
#define TF_CASE_WITH(fn, name, st) { (name), fn, NULL, tf_test_teardown, (void *)(st) }
/* A name that lives as long as the process (for TF_CASE_WITH). */
const char *tf_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Skips the running test (cmocka skip) with a reason on stderr. */
#define TF_SKIP_TEST(...) do { tf_skip_note(__VA_ARGS__); tf_test_end(); skip(); } while (0)
void tf_skip_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when bin is an executable in $PATH (or a path to one). */
bool tf_have_bin(const char *bin);
/* Exits TF_SKIP with a reason unless every named binary exists; NULL ends the list. */
void tf_require_bins(const char *bin, ...) __attribute__((sentinel));

/* ---- Time (frame.c) ----
 * TF_TIME_SCALE=N in the environment stretches every timeout the harness
 * takes or sets by N (valgrind runs ~20x slower): the frame's alarm, the loop
 * runs, the waits for peers, the in-thread peers' deadlines, the handshake
 * timeouts of the configs made here.  A test's own deadline goes through tf_ms. */
long long tf_now_ms(void);      /* CLOCK_MONOTONIC */
int       tf_time_scale(void);  /* TF_TIME_SCALE, at least 1 */
int       tf_ms(int ms);        /* ms * tf_time_scale() */

/* ---- Peer processes (peer.c) ----
 * A peer runs in its own process group with stderr (and stdout unless
 * captured) in a log file under tests/peer-logs in the build tree (or
 * $TF_PEER_LOGS), removed when the test passes.  Every peer still running when the test ends is
 * killed and reaped by tf_test_teardown (or at exit). */
typedef struct tf_peer tf_peer;
typedef struct tf_pump tf_pump;
#define TF_PEER_STDIN  1u   /* a pipe to its stdin: tf_peer_stdin() */
#define TF_PEER_STDOUT 2u   /* its stdout into a pipe: tf_peer_stdout() */
/* argv: NULL-terminated; argv[0] is looked up in $PATH.  Fails the test when
 * the process cannot be started. */
tf_peer *tf_peer_startv(unsigned flags, const char *const *argv);
tf_peer *tf_peer_start(unsigned flags, const char *arg0, ...) __attribute__((sentinel));
int   tf_peer_stdin(const tf_peer *p);    /* write end, -1 without TF_PEER_STDIN */
int   tf_peer_stdout(const tf_peer *p);   /* read end, -1 without TF_PEER_STDOUT */
void  tf_peer_close_stdin(tf_peer *p);
pid_t tf_peer_pid(const tf_peer *p);
/* Signals the peer's process group. */
void  tf_peer_kill(tf_peer *p, int sig);
/* Waits for the peer to exit: its wait status (>= 0), or -1 after timeout_ms. */
int   tf_peer_wait(tf_peer *p, int timeout_ms);
bool  tf_peer_exited(tf_peer *p);
/* Its log so far (stderr, and stdout unless captured); malloc'ed, NUL-terminated. */
char *tf_peer_log(const tf_peer *p);
/* SIGTERM to a server peer, which must exit 0 within 10 s (else the test
 * fails): its whole log, malloc'ed.  The peer is not freed (tf_peer_stop). */
char *tf_peer_term_log(tf_peer *p);
bool  tf_peer_log_contains(const tf_peer *p, const char *needle);
const char *tf_peer_cmd(const tf_peer *p);   /* its command line, for messages */
/* Waits until the log contains needle: 0, or -1 after timeout_ms or the peer's exit. */
int   tf_peer_wait_log(tf_peer *p, const char *needle, int timeout_ms);
/* A pump on the peer's stdin (when TF_PEER_STDIN) and stdout (when
 * TF_PEER_STDOUT); with TF_PUMP_CLOSE the peer's stdin closes after the data. */
tf_pump *tf_peer_pump(tf_peer *p, size_t len, uint64_t seed, unsigned kind, unsigned flags);
/* Kills (SIGTERM, then SIGKILL) and reaps the group, prints the log when the
 * test is failing, frees p.  NULL is fine. */
void  tf_peer_stop(tf_peer *p);
/* Stops every peer; the log is printed for each when print_logs. */
void  tf_peers_stop_all(bool print_logs);

/* ---- Ports (net.c) ---- */
/* A TCP port free on 127.0.0.1 right now. */
int tf_free_port(void);
/* Waits until something listens on TCP port (IPv4 or IPv6): 0, -ETIMEDOUT, or
 * -ESRCH when peer (may be NULL) exited first. */
int tf_wait_port(int port, int timeout_ms, tf_peer *peer);
/* Connects a blocking TCP socket to 127.0.0.1:port: the fd or -errno. */
int tf_tcp_connect(int port);
/* A listening TCP socket on 127.0.0.1 at an ephemeral port: the fd or -errno. */
int tf_tcp_listen(int *port);
/* Both ends of a loopback TCP connection: a connected, b accepted.  Fails the
 * test when it cannot. */
void tf_tcp_pair(int *a, int *b);
/* Closes with an RST instead of a FIN (SO_LINGER 0). */
void tf_tcp_reset(int fd);
/* Reads until EOF, an error or timeout_ms: the bytes read before EOF,
 * -errno, or -ETIMEDOUT. */
long tf_drain(int fd, int timeout_ms);

/* ---- What the process holds (resources.c) ---- */
int    tf_fd_count(void);         /* entries of /proc/self/fd */
size_t tf_heap_in_use(void);      /* mallinfo2's uordblks; 0 under ASan */
bool   tf_under_sanitizer(void);
double tf_cpu_seconds(void);      /* user + system of this process */

/* ---- Relay (relay.c) ----
 * A thread relaying one connection from an ephemeral port to 127.0.0.1:target.
 * A hook sees each chunk before it is forwarded (in the relay's thread: no
 * cmocka there) and may change its bytes.  After tf_relay_cut it forwards at
 * most pass_bytes more from the server, then closes the client's side (with
 * an RST when reset).  NULL when it cannot start. */
typedef struct tf_relay tf_relay;
typedef void tf_relay_hook(uint8_t *buf, size_t len, bool to_client, void *arg);
tf_relay *tf_relay_start(int target_port, int *port);
tf_relay *tf_relay_start_hook(int target_port, int *port, tf_relay_hook *hook, void *arg);
void      tf_relay_cut(tf_relay *r, size_t pass_bytes, bool reset);
bool      tf_relay_ended(const tf_relay *r);
size_t    tf_relay_to_client(const tf_relay *r);
void      tf_relay_stop(tf_relay *r);

/* ---- Data (data.c) ----
 * A deterministic stream per seed, computable at any offset.  TEXT streams hold
 * only [A-Za-z0-9+/] and a '\n' every 64 bytes, for line-oriented peers. */
enum { TF_DATA_BINARY = 0, TF_DATA_TEXT = 1 };
void    tf_data_fill(void *buf, size_t len, uint64_t seed, uint64_t offset, unsigned kind);
uint8_t tf_data_byte(uint64_t seed, uint64_t offset, unsigned kind);

/* Checks a stream piece by piece; keeps the offset of the first mismatch. */
typedef struct {
    uint64_t seed, offset;
    unsigned kind;
    bool     bad;
    uint64_t bad_offset;
    uint8_t  want, got;
} tf_checker;
void tf_checker_init(tf_checker *c, uint64_t seed, unsigned kind);
/* False once any byte so far differed. */
bool tf_checker_feed(tf_checker *c, const void *buf, size_t len);

/* A pump: a thread writing len bytes of the stream to a copy of wfd (closing
 * it after, when TF_PUMP_CLOSE), and a thread reading a copy of rfd and checking
 * what comes until len bytes came (or EOF with TF_PUMP_TO_EOF).  Either fd may
 * be -1.  tf_pump_finish joins: let the other end finish or die first. */
#define TF_PUMP_CLOSE  1u
#define TF_PUMP_TO_EOF 2u
typedef struct {
    size_t   written, received;
    int      write_errno, read_errno;
    bool     eof;          /* rfd ended */
    bool     mismatch;
    uint64_t bad_offset;
} tf_pump_result;
tf_pump *tf_pump_start(int wfd, int rfd, size_t len, uint64_t seed, unsigned kind, unsigned flags);
bool     tf_pump_done(const tf_pump *p);       /* the reader finished (or rfd is -1 and the writer did) */
size_t   tf_pump_received(const tf_pump *p);
void     tf_pump_finish(tf_pump *p, tf_pump_result *out);   /* joins, frees */

/* ---- tlsflow helpers (flows.c) ----
 * Every timeout_ms is scaled (see Time); a loop run fails the test when
 * tlsflow_loop_run_once fails. */
/* Runs the loop until cond(arg), or *flag (read atomically: other threads may
 * set it); fails the test after timeout_ms with `what`. */
typedef bool tf_cond(void *arg);
void tf_run_until(tlsflow_loop *loop, tf_cond *cond, void *arg, int timeout_ms, const char *what);
void tf_run_until_flag(tlsflow_loop *loop, const int *flag, int timeout_ms, const char *what);
/* The same for an expression: TF_RUN_UNTIL(loop, a.n && b.n, 5000), made of
 * a deadline and single runs of the loop that fail the test past it. */
typedef struct {
    long long end;
    int       ms;
} tf_deadline;
tf_deadline tf_deadline_in(int timeout_ms);
void tf_run_step(tlsflow_loop *loop, const tf_deadline *d, const char *what);
#define TF_RUN_UNTIL(loop, cond, timeout_ms)                  \
    do {                                                      \
        tf_deadline tf_dl_ = tf_deadline_in(timeout_ms);      \
        while (!(cond))                                       \
            tf_run_step((loop), &tf_dl_, #cond);              \
    } while (0)
/* Like tf_run_until, but false after timeout_ms instead of failing. */
bool tf_try_run_until(tlsflow_loop *loop, tf_cond *cond, void *arg, int timeout_ms);
bool tf_cond_flag(void *flag);    /* *(int *)flag, read atomically */
/* Runs the loop for about ms. */
void tf_run_for(tlsflow_loop *loop, int ms);

/* A completion, recorded. */
typedef struct {
    int            n;              /* times called */
    tlsflow       *flow;
    tlsflow_status status;
    size_t         len;
    tlsflow_error  error;
    char           message[256];   /* tlsflow_error_message(error) at completion */
    int            reentered;      /* ran inside a TF_CALL */
} tf_done;
tlsflow_cb tf_on_done;            /* arg: tf_done * */
bool tf_cond_done(void *done);    /* it was called */

/* TF_CALL(expr) sets tf_in_call around a call that submits: a callback that
 * sees it set ran inside the call. */
extern int tf_in_call, tf_call_ret_;
#define TF_CALL(expr) (tf_in_call = 1, tf_call_ret_ = (expr), tf_in_call = 0, tf_call_ret_)

/* Opens a client flow and runs the loop until the callback: 0 on success. */
int tf_connect_sync(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host,
                    int port, tf_done *out, int timeout_ms);
/* The same on a TCP connection to 127.0.0.1:port (tlsflow_wrap_fd, server
 * name "localhost"). */
int tf_connect_fd_sync(tlsflow_loop *loop, const tlsflow_config *cfg, int port, tf_done *out,
                       int timeout_ms);
/* One read, one close, run until they complete: the result in *out. */
void tf_read_sync(tlsflow_loop *loop, tlsflow *flow, tf_done *out, int timeout_ms);
void tf_close_sync(tlsflow_loop *loop, tlsflow *flow, tf_done *out, int timeout_ms);

/* Reads into buf until EOF, an error or cap bytes (more fails the test),
 * rearming each time; with stop_at_cap it stops once cap bytes came. */
typedef struct {
    uint8_t      *buf;
    size_t        cap, got;
    int           reads, eof, errors;
    tlsflow_error error;
    int           stop_at_cap;
    int           reentered;      /* a read ran inside a TF_CALL */
} tf_sink;
tlsflow_cb tf_on_read;            /* arg: tf_sink * */
/* Allocates buf (free it) and arms the first read. */
void tf_sink_start(tlsflow *flow, tf_sink *s, size_t cap);

/* Sends len bytes of stream `seed` from `offset` on a flow (writes of chunk
 * bytes, 0: 256 KiB; four pending) while reading and checking `expect` bytes
 * of the same stream (from the same offset) back.  tf_xfer_begin takes what
 * the caller set above the line; tf_xfer_start sets it (chunk 0, offset 0). */
typedef struct {
    size_t        len, expect, chunk;
    uint64_t      seed, offset;
    unsigned      kind;
    /* ---- */
    tlsflow      *flow;
    size_t        submitted, written, received;
    size_t        writes;         /* completed OK */
    int           pending;
    uint8_t      *buf;
    tf_checker    chk;
    bool          reading, eof, failed, done;
    tlsflow_error error;
    char          message[256];
    int           errors;
} tf_xfer;
void tf_xfer_begin(tf_xfer *x, tlsflow *flow);
void tf_xfer_start(tf_xfer *x, tlsflow *flow, size_t len, size_t expect, uint64_t seed, unsigned kind);
bool tf_xfer_cond(void *x);       /* done: all expected bytes came, or EOF/error */
void tf_xfer_release(tf_xfer *x); /* frees its buffer (not the flow) */

/* ---- The echo server (echo.c) ----
 * An echoing tlsflow server: each flow it accepts (or is handed through
 * tf_echo_accept, the on_flow of a tlsflow_wrap_fd) echoes what it reads; at
 * the peer's EOF (or after close_after bytes, when non-zero) it closes, and
 * it is freed once closed or failed. */
#define TF_ECHO_MAX 64
typedef struct tf_echo tf_echo;
typedef struct {
    tf_echo      *srv;
    tlsflow      *flow;
    tlsflow_info  info;           /* at accept; cipher and alpn point to the copies below */
    char          cipher[48], alpn[48];
    size_t        echoed;
    int           pending;
    bool          eof, closing, closed, freed;
    bool          truncated_after_close;   /* the peer hung up without close_notify after ours */
    tlsflow_error error;          /* first error on the flow */
    char          message[256];
} tf_echo_conn;
struct tf_echo {
    tlsflow_listener *ls;
    int               port;
    size_t            close_after;
    int               accepted, failed;   /* on_flow with a flow / with an error */
    tlsflow_error     accept_error;       /* last failed handshake */
    char              accept_message[256];
    tf_echo_conn      conns[TF_ECHO_MAX];
};
/* Listens on 127.0.0.1:0; fails the test when it cannot. */
void tf_echo_listen(tf_echo *e, tlsflow_loop *loop, const tlsflow_config *cfg);
/* Without a listener: flows come through tf_echo_accept (arg: the tf_echo). */
void tf_echo_init(tf_echo *e);
tlsflow_cb tf_echo_accept;
/* Closes the listener, frees the flows still there. */
void tf_echo_close(tf_echo *e);
/* A failed handshake, or every accepted flow closed or failed (and freed). */
bool tf_cond_echo_settled(void *arg);

/* A round trip on a fresh loop: a tlsflow client opens to a tf_echo server
 * (server name "localhost"), writes len bytes of stream seed (chunk bytes a
 * write, four in flight; 0: 256 KiB), reads them back checked, and the flow
 * is closed by the client, or with close_from_server by the server once it
 * echoed everything (the client reads EOF, then closes).  Each step fails the
 * test when it goes wrong, but a failed open: open_error says why, and
 * nothing more ran.  The configs are the caller's, or when NULL
 * tf_config_ktls(role, priority, ktls) for both ends. */
typedef struct {
    const tlsflow_config *scfg, *ccfg;
    const char     *priority;
    tlsflow_ktls_mode ktls;
    size_t          len, chunk;
    uint64_t        seed;
    bool            close_from_server;
    /* results */
    tlsflow_info    cli, srv;         /* at open; cipher is GnuTLS's static string, the
                                         other strings went with the flows */
    char            server_name[64];  /* the client's, at open */
    tlsflow_errcode open_error;
    size_t          writes;           /* the client's, completed */
    bool            srv_eof;          /* the server read the client's close_notify */
    tlsflow_loop_stats stats;         /* the loop's (both ends), at the end */
    bool            ok;               /* all of it went well */
} tf_echo_run;
void tf_echo_roundtrip(tf_echo_run *r);

/* ---- Recorded accepts (accepts.c) ----
 * tf_accepts_on_flow, a listener's on_flow (arg: the tf_accepts), keeps per
 * handshake its tlsflow_info (strings copied), the peer's certificate chain
 * (DER copies) or the failure, then closes the flow (freed once closed). */
#define TF_ACCEPTS_MAX 16
#define TF_CHAIN_MAX 4
typedef struct {
    bool          ok;
    tlsflow_error error;          /* a failed handshake */
    char          message[256];
    tlsflow_info  info;           /* cipher and server_name point to the copies below */
    char          cipher[48], server_name[256];
    size_t        nchain;
    uint8_t      *chain[TF_CHAIN_MAX];
    size_t        chain_len[TF_CHAIN_MAX];
} tf_accepted;
typedef struct {
    int         n, closed;
    tf_accepted a[TF_ACCEPTS_MAX];
} tf_accepts;
tlsflow_cb tf_accepts_on_flow;
void tf_accepts_free(tf_accepts *a);
/* Runs a client program (argv) with its stdin closed while the loop serves,
 * until it exits (fails the test past timeout_ms): its log (free it), its
 * wait status in *status when not NULL. */
char *tf_run_client(tlsflow_loop *loop, const char *const *argv, int timeout_ms, int *status);

/* ---- A flow environment (env.c) ----
 * A loop, a server config (the ECDSA certificate, or cert and key) and a
 * client config trusting TF_CA, both with a 5 s handshake timeout; a listener
 * on host whose on_flow records into acc; con: the client's last open. */
typedef struct {
    tlsflow_loop     *loop;
    tlsflow_config   *scfg, *ccfg;
    tlsflow_listener *ls;
    char              port[16];
    tf_done           acc, con;
} tf_env;
void tf_env_configs(tf_env *e, const char *cert, const char *key);   /* no listener yet */
void tf_env_listen(tf_env *e, const char *host);
void tf_env_init(tf_env *e);      /* configs and a listener on 127.0.0.1 */
/* Connects host:port and waits for both ends; fails unless both opened. */
void tf_env_pair(tf_env *e, const char *host, tlsflow **srv, tlsflow **cli);
/* Frees everything; flows still open go with the loop. */
void tf_env_fini(tf_env *e);

/* ---- Real TLS peers and the suite matrix (tls_peers.c) ---- */
/* TLS 1.2 and 1.3, each with AES-128-GCM, AES-256-GCM and CHACHA20-POLY1305. */
typedef struct {
    const char *name;       /* "TLS1.3-AES-128-GCM" */
    unsigned    version;    /* as tlsflow_info.tls_version */
    const char *cipher;     /* as tlsflow_info.cipher */
    const char *priority;   /* GnuTLS priority: tlsflow and gnutls-serv/-cli */
    const char *ossl;       /* OpenSSL: TLS 1.2 cipher list or TLS 1.3 ciphersuite */
    const char *ossl_ver;   /* "TLS1.2" / "TLS1.3" (socat min-/max-version) */
} tf_suite;
#define TF_NSUITES 6
extern const tf_suite tf_suites[TF_NSUITES];

/* printf into one of a ring of static buffers: for building argv. */
const char *tf_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An argv under construction. */
#define TF_ARGS_MAX 64
typedef struct {
    const char *v[TF_ARGS_MAX];
    int         n;
} tf_args;
void tf_args_add(tf_args *a, const char *arg, ...) __attribute__((sentinel));
/* Starts the server and waits (10 s) until it listens on port; fails the test if not. */
tf_peer *tf_serve(tf_args *a, int port);

/* Echo servers on a free port (written to *port).  extra: NULL or more arguments. */
tf_peer *tf_start_gnutls_echo(int *port, const char *cert, const char *key,
                              const char *priority, const char *const *extra);
/* socat OPENSSL-LISTEN, forking, with EXEC:exec (NULL: cat); opts: more address
 * options (",min-version=TLS1.3"), may be NULL. */
tf_peer *tf_start_socat_server(int *port, const char *cert, const char *key,
                               const char *opts, const char *exec);
/* openssl s_server -rev (echoes each line reversed). */
tf_peer *tf_start_s_server(int *port, const char *cert, const char *key, const char *const *extra);

/* Configs, with a 10 s handshake timeout; a refused setting fails the test.
 * priority, ca, cert may be NULL. */
tlsflow_config *tf_client_config(const char *priority, const char *ca);
tlsflow_config *tf_server_config(const char *cert, const char *key, const char *priority);
/* From the test PKI: a server with the ECDSA certificate, a client trusting
 * TF_CA; handshake_ms, when not 0, replaces the 10 s (both scaled). */
tlsflow_config *tf_config(tlsflow_role role, const char *priority, unsigned handshake_ms);
tlsflow_config *tf_config_ktls(tlsflow_role role, const char *priority, tlsflow_ktls_mode mode);
tlsflow_loop   *tf_loop_new(void);

/* ---- The kernel's kTLS (kernel.c) ---- */
bool tf_expect_ktls(void);        /* TLSFLOW_EXPECT_KTLS=1: the kernel must have it */
bool tf_kernel_has_tls(void);     /* the tls ULP attaches here */
/* Call first in main(): 0 to run; else the exit code (77 without the tls
 * ULP, 1 when TLSFLOW_EXPECT_KTLS=1 says it must be there). */
int  tf_kernel_prelude(void);
/* The running kernel is 6.14 or later: it takes a second TLS 1.3 key. */
bool tf_kernel_rekeys(void);
/* /proc/net/tls_stat */
#define TF_TLS_STAT_MAX 32
typedef struct {
    int  n;
    char name[TF_TLS_STAT_MAX][32];
    long val[TF_TLS_STAT_MAX];
} tf_tls_stat;
void tf_tls_stat_read(tf_tls_stat *s);
long tf_tls_stat_get(const tf_tls_stat *s, const char *name);     /* -1: absent */
long tf_tls_stat_delta(const tf_tls_stat *before, const tf_tls_stat *after, const char *name);
/* Fails the test unless after - before of name is in [lo, hi]. */
void tf_tls_stat_expect(const tf_tls_stat *before, const tf_tls_stat *after, const char *name,
                        long lo, long hi);

#endif
