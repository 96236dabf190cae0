/* Peer processes: started in their own process group with their output in a
 * log file, killed and reaped when the test ends. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tf_test.h"

#define MAX_PEERS 16
#define MAX_ARGS  64
#define LOG_TAIL  6000

struct tf_peer {
    pid_t pid;          /* also the process group */
    int   in_fd, out_fd;
    bool  reaped;
    int   status;
    char  name[64];
    char  log[256];
    char  cmd[1024];
};

static tf_peer *peers[MAX_PEERS];
/* Process groups for the alarm handler, which must not touch the heap. */
static volatile pid_t groups[MAX_PEERS];

void tf_peers_kill_all_async(void);

void tf_peers_kill_all_async(void)
{
    for (int i = 0; i < MAX_PEERS; i++)
        if (groups[i] > 0)
            kill(-groups[i], SIGKILL);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

tf_peer *tf_peer_startv(unsigned flags, const char *const *argv)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, logfd, slot = -1;
    const char *dir = getenv("TF_PEER_LOGS");
    const char *base = strrchr(argv[0], '/');
    tf_peer *p;

    for (int i = 0; i < MAX_PEERS; i++)
        if (!peers[i]) {
            slot = i;
            break;
        }
    if (slot < 0)
        fail_msg("too many peers");
    p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->in_fd = p->out_fd = -1;
    snprintf(p->name, sizeof(p->name), "%s", base ? base + 1 : argv[0]);
    /* Logs live in the build tree (kept there when the test fails). */
    if (!dir || !*dir)
        dir = TF_TEST_CERTS "/../peer-logs";
    mkdir(dir, 0755);
    snprintf(p->log, sizeof(p->log), "%s/%s-%s-XXXXXX", dir, tf_test_name(), p->name);
    logfd = mkostemp(p->log, O_CLOEXEC | O_APPEND);
    if (logfd < 0)
        fail_msg("mkstemp %s: %s", p->log, strerror(errno));
    if ((flags & TF_PEER_STDIN) && pipe2(in, O_CLOEXEC))
        fail_msg("pipe: %s", strerror(errno));
    if ((flags & TF_PEER_STDOUT) && pipe2(out, O_CLOEXEC))
        fail_msg("pipe: %s", strerror(errno));

    /* Kept aside: a peer may truncate its log (gnutls-cli --logfile /dev/stderr). */
    for (int i = 0, n = 0; argv[i] && n < (int)sizeof(p->cmd); i++)
        n += snprintf(p->cmd + n, sizeof(p->cmd) - (size_t)n, "%s%s", i ? " " : "", argv[i]);

    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (p->pid == 0) {
        int devnull = open("/dev/null", O_RDWR);

        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        dup2(in[0] >= 0 ? in[0] : devnull, 0);
        dup2(out[1] >= 0 ? out[1] : logfd, 1);
        dup2(logfd, 2);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(p->pid, p->pid);   /* both sides, whichever runs first */
    close(logfd);
    if (in[0] >= 0) {
        close(in[0]);
        p->in_fd = in[1];
    }
    if (out[1] >= 0) {
        close(out[1]);
        p->out_fd = out[0];
    }
    peers[slot] = p;
    groups[slot] = p->pid;
    return p;
}

tf_peer *tf_peer_start(unsigned flags, const char *arg0, ...)
{
    const char *argv[MAX_ARGS];
    int n = 0;
    va_list ap;

    va_start(ap, arg0);
    for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
        if (n == MAX_ARGS - 1)
            fail_msg("too many arguments for %s", arg0);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    return tf_peer_startv(flags, argv);
}

int tf_peer_stdin(const tf_peer *p)
{
    return p->in_fd;
}

int tf_peer_stdout(const tf_peer *p)
{
    return p->out_fd;
}

const char *tf_peer_cmd(const tf_peer *p)
{
    return p->cmd;
}

pid_t tf_peer_pid(const tf_peer *p)
{
    return p->pid;
}

void tf_peer_close_stdin(tf_peer *p)
{
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->in_fd = -1;
}

tf_pump *tf_peer_pump(tf_peer *p, size_t len, uint64_t seed, unsigned kind, unsigned flags)
{
    tf_pump *pump = tf_pump_start(p->in_fd, p->out_fd, len, seed, kind, flags);

    if (flags & TF_PUMP_CLOSE)
        tf_peer_close_stdin(p);
    return pump;
}

void tf_peer_kill(tf_peer *p, int sig)
{
    if (!p->reaped)
        kill(-p->pid, sig);
}

bool tf_peer_exited(tf_peer *p)
{
    if (!p->reaped && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
        p->reaped = true;
    return p->reaped;
}

int tf_peer_wait(tf_peer *p, int timeout_ms)
{
    long long end = tf_now_ms() + tf_ms(timeout_ms);

    while (!tf_peer_exited(p)) {
        if (tf_now_ms() >= end)
            return -1;
        sleep_ms(5);
    }
    return p->status;
}

char *tf_peer_log(const tf_peer *p)
{
    FILE *f = fopen(p->log, "r");
    char *buf = NULL;
    size_t cap = 0, len = 0, n;

    if (f) {
        do {
            if (cap - len < 4097) {
                cap = cap ? cap * 2 : 8192;
                buf = realloc(buf, cap);
                assert_non_null(buf);
            }
            n = fread(buf + len, 1, cap - len - 1, f);
            len += n;
        } while (n > 0);
        fclose(f);
    }
    if (!buf)
        buf = calloc(1, 1);
    assert_non_null(buf);
    buf[len] = 0;
    /* NULs in the log would cut the string short. */
    for (size_t i = 0; i < len; i++)
        if (!buf[i])
            buf[i] = '.';
    return buf;
}

bool tf_peer_log_contains(const tf_peer *p, const char *needle)
{
    char *log = tf_peer_log(p);
    bool has = strstr(log, needle) != NULL;

    free(log);
    return has;
}

char *tf_peer_term_log(tf_peer *p)
{
    int st;

    tf_peer_kill(p, SIGTERM);
    st = tf_peer_wait(p, 10000);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
        fail_msg("%s did not exit cleanly on SIGTERM (status %d):\n%s", tf_peer_cmd(p), st,
                 tf_peer_log(p));
    return tf_peer_log(p);
}

int tf_peer_wait_log(tf_peer *p, const char *needle, int timeout_ms)
{
    long long end = tf_now_ms() + tf_ms(timeout_ms);

    for (;;) {
        bool gone = tf_peer_exited(p);   /* before reading: a last line still counts */

        if (tf_peer_log_contains(p, needle))
            return 0;
        if (gone || tf_now_ms() >= end)
            return -1;
        sleep_ms(10);
    }
}

static void print_log(const tf_peer *p)
{
    char *log = tf_peer_log(p);
    size_t len = strlen(log);
    const char *from = len > LOG_TAIL ? log + len - LOG_TAIL : log;

    fprintf(stderr, "---- %s (pid %d) log %s%s ----\n$ %s\n%s%s---- end of %s log ----\n",
            p->name, (int)p->pid, p->log, len > LOG_TAIL ? ", last bytes" : "", p->cmd, from,
            len && log[len - 1] != '\n' ? "\n" : "", p->name);
    if (p->reaped) {
        if (WIFEXITED(p->status))
            fprintf(stderr, "     %s exited with %d\n", p->name, WEXITSTATUS(p->status));
        else if (WIFSIGNALED(p->status))
            fprintf(stderr, "     %s killed by signal %d\n", p->name, WTERMSIG(p->status));
    }
    free(log);
}

static void stop(tf_peer *p, bool print)
{
    if (!p->reaped) {
        kill(-p->pid, SIGTERM);
        if (tf_peer_wait(p, 500) < 0) {
            kill(-p->pid, SIGKILL);
            waitpid(p->pid, &p->status, 0);
            p->reaped = true;
        }
    }
    kill(-p->pid, SIGKILL);   /* children it left behind in its group */
    tf_peer_close_stdin(p);
    if (p->out_fd >= 0)
        close(p->out_fd);
    p->out_fd = -1;
    if (print)
        print_log(p);
    else
        unlink(p->log);
}

static void forget(tf_peer *p)
{
    for (int i = 0; i < MAX_PEERS; i++)
        if (peers[i] == p) {
            peers[i] = NULL;
            groups[i] = 0;
        }
    free(p);
}

void tf_peer_stop(tf_peer *p)
{
    if (!p)
        return;
    stop(p, false);
    forget(p);
}

void tf_peers_stop_all(bool print_logs)
{
    for (int i = 0; i < MAX_PEERS; i++)
        if (peers[i]) {
            stop(peers[i], print_logs);
            forget(peers[i]);
        }
}
