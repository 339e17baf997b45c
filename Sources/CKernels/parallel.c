#define _GNU_SOURCE
#include "gnk_parallel.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define GN_PAUSE() _mm_pause()
#else
#define GN_PAUSE() ((void)0)
#endif

// One job slot. `posted` and `finished` count jobs; the worker runs job n when posted == n and
// sets finished = n when done. It spins ~0.5 ms for the next job, then sleeps on `wake`. The
// caller spins briefly for the worker's half, then yields its core (the worker may share it).
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;  // held by the caller of a job
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static atomic_ulong posted, finished;
static atomic_int sleeping;
static int started;  // 0: no worker, 1: running, -1: could not start (guarded by busy)
static gnk_task job_task;
static void *job_context;
static unsigned job_csr;

static void *worker(void *start) {
    // Jobs after `start` (the count when the thread was created: a job may be posted before
    // this thread first runs).
    unsigned long seen = (unsigned long)(uintptr_t)start;
    for (;;) {
        unsigned long n;
        int spins = 0;
        while ((n = atomic_load(&posted)) == seen) {
            if (++spins < 20000) { GN_PAUSE(); continue; }
            pthread_mutex_lock(&sleep_lock);
            atomic_store(&sleeping, 1);
            while (atomic_load(&posted) == seen) pthread_cond_wait(&wake, &sleep_lock);
            atomic_store(&sleeping, 0);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = n;
#if defined(__x86_64__)
        unsigned own = _mm_getcsr();
        _mm_setcsr(job_csr);
#endif
        job_task(job_context, 1);
#if defined(__x86_64__)
        _mm_setcsr(own);
#endif
        atomic_store(&finished, n);
    }
    return NULL;
}

// In a fork()ed child no worker is started: both parts run on the calling thread. The Swift
// runtime's one-time initialisations (lazy globals, the first use of a generic type's metadata)
// take a lock that records its owner by a thread id the runtime caches per thread; the forking
// thread's cached id is its parent's, so when it holds such a lock and a new thread of the
// child waits for it, both livelock (FUTEX_LOCK_PI fails with ESRCH forever). Parts run Swift
// code, so no second thread may run parts in a forked child. Installed when the library is
// loaded, so every child of every process that has the library is covered.
static void reset_in_child(void) {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    busy = m;
    sleep_lock = m;
    wake = c;
    atomic_store(&sleeping, 0);
    started = -1;
}

__attribute__((constructor)) static void install_fork_handler(void) { pthread_atfork(NULL, NULL, reset_in_child); }

static int start_worker(void) {
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr) != 0) return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 8u << 20);
    unsigned long start = atomic_load(&posted);
    atomic_store(&finished, start);
    int ok = pthread_create(&thread, &attr, worker, (void *)(uintptr_t)start) == 0;
    pthread_attr_destroy(&attr);
    return ok ? 1 : -1;
}

void gnk_parallel2(gnk_task task, void *context) {
    if (pthread_mutex_trylock(&busy) != 0) {
        task(context, 0);
        task(context, 1);
        return;
    }
    if (started == 0) started = start_worker();
    if (started < 0) {
        pthread_mutex_unlock(&busy);
        task(context, 0);
        task(context, 1);
        return;
    }
    job_task = task;
    job_context = context;
#if defined(__x86_64__)
    job_csr = _mm_getcsr();
#endif
    unsigned long n = atomic_load(&posted) + 1;
    atomic_store(&posted, n);
    if (atomic_load(&sleeping)) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    task(context, 0);
    int spins = 0;
    while (atomic_load(&finished) != n) {
        if (++spins < 2000) GN_PAUSE();
        else sched_yield();
    }
    pthread_mutex_unlock(&busy);
}

int gnk_parallel2_available(void) {
    if (pthread_mutex_trylock(&busy) != 0) return 0;
    if (started == 0) started = start_worker();
    int ok = started > 0;
    pthread_mutex_unlock(&busy);
    return ok;
}

static pthread_mutex_t blas_setting = PTHREAD_MUTEX_INITIALIZER;
void gnk_blas_setting_lock(void) { pthread_mutex_lock(&blas_setting); }
void gnk_blas_setting_unlock(void) { pthread_mutex_unlock(&blas_setting); }
