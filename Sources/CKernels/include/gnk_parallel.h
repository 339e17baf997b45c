// Two-way fork/join on a persistent worker thread (Sources/GatedNet/Support/Parallel.swift).
// gatednet's hot paths run on 2 cores by splitting their work in two halves whose results do
// not depend on which thread runs which half, so every number is the same on 1 or 2 cores.
#ifndef GN_CKERNELS_PARALLEL_H
#define GN_CKERNELS_PARALLEL_H

typedef void (*gnk_task)(void *context, int part);

// Runs task(context, 0) on the calling thread and task(context, 1) on the worker thread, and
// returns when both have returned. The worker runs with the caller's MXCSR (denormal flushing,
// rounding). When the worker is busy (another thread's call, or a nested call) or cannot be
// started, both parts run on the calling thread, one after the other. Safe across fork(): a
// forked child never starts a worker and runs both parts on the calling thread (parallel.c says
// why).
void gnk_parallel2(gnk_task task, void *context);

// 1 if gnk_parallel2 would currently run the two parts concurrently (worker started and idle).
int gnk_parallel2_available(void);

// A process-wide mutex for the OpenBLAS thread-count bookkeeping (Parallel.swift).
void gnk_blas_setting_lock(void);
void gnk_blas_setting_unlock(void);
#endif
