// Kernel tiles (Sources/GatedNet/Kernels/KernelOptions.swift): storing a finished tile into the
// caller's output, its transpose into the mirrored block of a symmetric kernel, and the few
// atomics the two-part tile loop shares between its threads.
#ifndef GN_CKERNELS_TILES_H
#define GN_CKERNELS_TILES_H
#include <stddef.h>

// out[r * ld + c] = acc[r * tj + c] for r < ti and c < tj, or only c >= r when upper_only.
void gnk_tile_store(const float *acc, size_t ti, size_t tj, int upper_only, float *out, size_t ld);

// out[c * ld + r] = acc[r * tj + c] for r < ti and c < tj: the transposed tile, in 16 x 16 blocks
// so that both the reads and the writes stay within a few cache lines at a time.
void gnk_tile_store_transposed(const float *acc, size_t ti, size_t tj, float *out, size_t ld);

// Sequentially consistent atomics on a plain long (memory owned by the caller).
long gnk_atomic_fetch_add(long *value, long delta);  // returns the value before the add
long gnk_atomic_load(const long *value);
void gnk_atomic_store(long *value, long new_value);
#endif
