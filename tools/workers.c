/* tools/workers.c — worker threads and the main thread's wait (workers.h). */
#include "workers.h"
#include "common.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  start_cond = PTHREAD_COND_INITIALIZER;
static pthread_t main_thread;

struct tf_worker *tf_worker_of(struct tf_workers *ws, unsigned i)
{
    return (struct tf_worker *)((char *)ws->slots + (size_t)i * ws->slot_size);
}

static void set_ready(struct tf_worker *w, int ready)
{
    pthread_mutex_lock(&start_lock);
    w->ready = ready;
    pthread_cond_broadcast(&start_cond);
    pthread_mutex_unlock(&start_lock);
}

static int wait_ready(struct tf_worker *w)
{
    pthread_mutex_lock(&start_lock);
    while (w->ready == 0)
        pthread_cond_wait(&start_cond, &start_lock);
    int r = w->ready;
    pthread_mutex_unlock(&start_lock);
    return r;
}

void tf_worker_running(struct tf_worker *w, tlsflow_loop *loop)
{
    pthread_mutex_lock(&w->lock);
    w->loop = loop;
    w->is_running = 1;
    pthread_mutex_unlock(&w->lock);
}

void tf_worker_ready(struct tf_worker *w)
{
    set_ready(w, 1);
}

void tf_worker_started(struct tf_worker *w, tlsflow_loop *loop)
{
    tf_worker_running(w, loop);
    tf_worker_ready(w);
}

void tf_worker_stopping(struct tf_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->is_running = 0;
    pthread_mutex_unlock(&w->lock);
}

void tf_worker_failed(struct tf_worker *w)
{
    tf_worker_stopping(w);
    set_ready(w, -1);
}

void tf_worker_done(struct tf_worker *w)
{
    atomic_store(&w->done, 1);
    pthread_kill(main_thread, TF_SIG_DONE);
}

/* Posts the stop to every worker still running its loop. */
void tf_workers_stop(struct tf_workers *ws, int level)
{
    atomic_store(ws->stop_level, level);
    for (unsigned i = 0; i < ws->count; i++) {
        struct tf_worker *w = tf_worker_of(ws, i);
        pthread_mutex_lock(&w->lock);
        if (w->is_running && tlsflow_loop_post(w->loop, ws->stop, w) < 0)
            tlsflow_loop_stop(w->loop);   /* no memory for the post: drop everything */
        pthread_mutex_unlock(&w->lock);
    }
}

int tf_workers_start(struct tf_workers *ws)
{
    /* Signals go to the main thread only: blocked before any thread starts. */
    sigemptyset(&ws->sigs);
    sigaddset(&ws->sigs, SIGINT);
    sigaddset(&ws->sigs, SIGTERM);
    sigaddset(&ws->sigs, TF_SIG_DONE);
    if (ws->on_signal)
        sigaddset(&ws->sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &ws->sigs, NULL);
    main_thread = pthread_self();

    for (unsigned i = 0; i < ws->n; i++) {
        struct tf_worker *w = tf_worker_of(ws, i);
        w->index = (int)i;
        pthread_mutex_init(&w->lock, NULL);
    }
    for (unsigned i = 0; i < ws->n; i++) {
        struct tf_worker *w = tf_worker_of(ws, i);
        if (pthread_create(&w->thread, NULL, ws->main, w) != 0) {
            fprintf(stderr, "%s: pthread_create failed\n", ws->prog);
            tf_workers_stop(ws, 2);
            return -1;
        }
        ws->count++;
        if (wait_ready(w) < 0) {
            tf_workers_stop(ws, 2);
            return -1;
        }
        if (ws->started)
            ws->started(ws, w);
    }
    return 0;
}

void tf_workers_wait(struct tf_workers *ws)
{
    double start = tf_now_s(), next_stats = start + (double)ws->stats_interval;
    int signals = 0;

    for (;;) {
        /* statistics due, a signal, or a worker's TF_SIG_DONE: nothing polls */
        int sig;
        if (ws->stats_interval && !signals) {
            double wait = next_stats - tf_now_s();
            if (wait < 0)
                wait = 0;
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            sig = sigtimedwait(&ws->sigs, NULL, &ts);
        } else {
            sig = sigwaitinfo(&ws->sigs, NULL);
        }
        if (sig == SIGINT || sig == SIGTERM) {
            signals++;
            tf_workers_stop(ws, signals > 1 ? 2 : 1);
        }
        if (sig == SIGHUP && !signals && ws->on_signal)
            ws->on_signal(ws, sig);
        if (signals) {
            unsigned done = 0;
            for (unsigned i = 0; i < ws->count; i++)
                done += (unsigned)atomic_load(&tf_worker_of(ws, i)->done);
            if (done == ws->count)
                break;
            continue;
        }
        if (ws->stats_interval && tf_now_s() >= next_stats) {
            ws->stats(ws, tf_now_s() - start);
            next_stats += (double)ws->stats_interval;
        }
    }
    if (ws->stats_interval)
        ws->stats(ws, tf_now_s() - start);
}

void tf_workers_join(struct tf_workers *ws)
{
    for (unsigned i = 0; i < ws->count; i++)
        pthread_join(tf_worker_of(ws, i)->thread, NULL);
    for (unsigned i = 0; i < ws->n; i++)
        pthread_mutex_destroy(&tf_worker_of(ws, i)->lock);
}

void tf_print_loop_counters(const char *prog, const tlsflow_loop_stats *t, unsigned long long bytes,
                            const char *what)
{
    double mib = (double)bytes / (1024.0 * 1024.0);

    fprintf(stderr, "%s: io_uring submissions %llu (%.2f per MiB %s), io_uring_enter %llu "
            "(%.2f per MiB), plaintext copied in userspace %llu bytes (%.3f per payload byte), "
            "received bytes copied from the buffer ring %llu\n",
            prog, t->submissions, mib > 0 ? (double)t->submissions / mib : 0.0, what, t->enters,
            mib > 0 ? (double)t->enters / mib : 0.0, t->plaintext_copied,
            bytes ? (double)t->plaintext_copied / (double)bytes : 0.0, t->ciphertext_copied);
}
