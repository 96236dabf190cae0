/* Shared helpers for tlsflow's tests: certificate paths, peer processes,
 * checksummed data, tlsflow-side drivers.  See the .c files beside this one. */
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
/* Skips the running test (cmocka skip) with a reason on stderr. */
#define TF_SKIP_TEST(...) do { tf_skip_note(__VA_ARGS__); tf_test_end(); skip(); } while (0)
void tf_skip_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when bin is an executable in $PATH (or a path to one). */
bool tf_have_bin(const char *bin);
/* Exits TF_SKIP with a reason unless every named binary exists; NULL ends the list. */
void tf_require_bins(const char *bin, ...) __attribute__((sentinel));

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

/* ---- Relay (relay.c) ----
 * A thread relaying one connection from an ephemeral port to 127.0.0.1:target.
 * After tf_relay_cut it forwards at most pass_bytes more from the server, then
 * closes the client's side (with an RST when reset). */
typedef struct tf_relay tf_relay;
tf_relay *tf_relay_start(int target_port, int *port);
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

/* ---- tlsflow helpers (flows.c) ---- */
long long tf_now_ms(void);
/* Runs the loop until *flag (read atomically: other threads may set it) or
 * cond(arg); fails the test after timeout_ms with `what`. */
typedef bool tf_cond(void *arg);
void tf_run_until(tlsflow_loop *loop, tf_cond *cond, void *arg, int timeout_ms, const char *what);
void tf_run_until_flag(tlsflow_loop *loop, const int *flag, int timeout_ms, const char *what);
/* Runs the loop for about ms. */
void tf_run_for(tlsflow_loop *loop, int ms);

/* A completion, recorded. */
typedef struct {
    int            n;
    tlsflow       *flow;
    tlsflow_status status;
    size_t         len;
    tlsflow_error  error;
    char           message[256];   /* tlsflow_error_message(error) at completion */
} tf_done;
tlsflow_cb tf_on_done;            /* arg: tf_done * */

/* Opens a client flow and runs the loop until the callback: 0 on success. */
int tf_connect_sync(tlsflow_loop *loop, const tlsflow_config *cfg, const char *host,
                    int port, tf_done *out, int timeout_ms);

/* Sends len bytes of stream `seed` on a flow (several writes pending) while
 * reading and checking `expect` bytes of the same stream back. */
typedef struct {
    tlsflow      *flow;
    size_t        len, expect, chunk;
    size_t        submitted, written, received;
    int           pending;
    uint8_t      *buf;
    tf_checker    chk;
    bool          reading, eof, failed, done;
    tlsflow_error error;
    char          message[256];
    int           errors;
} tf_xfer;
void tf_xfer_start(tf_xfer *x, tlsflow *flow, size_t len, size_t expect, uint64_t seed, unsigned kind);
bool tf_xfer_cond(void *x);       /* done: all expected bytes came, or EOF/error */
void tf_xfer_release(tf_xfer *x); /* frees its buffer (not the flow) */

/* An echoing tlsflow server: each accepted flow echoes what it reads; at the
 * peer's EOF (or after close_after bytes, when non-zero) it closes. */
#define TF_ECHO_MAX 8
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
void tf_echo_close(tf_echo *e);
/* A failed handshake, or every accepted flow closed or failed (and freed). */
bool tf_cond_echo_settled(void *arg);

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

/* Configs; a refused setting fails the test.  priority, ca, cert may be NULL. */
tlsflow_config *tf_client_config(const char *priority, const char *ca);
tlsflow_config *tf_server_config(const char *cert, const char *key, const char *priority);
tlsflow_loop   *tf_loop_new(void);

#endif
