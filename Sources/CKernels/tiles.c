#include "gnk_tiles.h"
#include <string.h>

void gnk_tile_store(const float *acc, size_t ti, size_t tj, int upper_only, float *out, size_t ld) {
    for (size_t r = 0; r < ti; r++) {
        const size_t first = upper_only ? (r < tj ? r : tj) : 0;
        memcpy(out + r * ld + first, acc + r * tj + first, (tj - first) * sizeof(float));
    }
}

#define GN_TILE_BLOCK 16

void gnk_tile_store_transposed(const float *restrict acc, size_t ti, size_t tj, float *restrict out, size_t ld) {
    for (size_t r0 = 0; r0 < ti; r0 += GN_TILE_BLOCK) {
        const size_t r1 = r0 + GN_TILE_BLOCK < ti ? r0 + GN_TILE_BLOCK : ti;
        for (size_t c0 = 0; c0 < tj; c0 += GN_TILE_BLOCK) {
            const size_t c1 = c0 + GN_TILE_BLOCK < tj ? c0 + GN_TILE_BLOCK : tj;
            if (r1 - r0 == GN_TILE_BLOCK && c1 - c0 == GN_TILE_BLOCK) {
                // Full block: fixed trip counts, which the compiler unrolls into shuffles.
                float block[GN_TILE_BLOCK][GN_TILE_BLOCK];
                for (size_t r = 0; r < GN_TILE_BLOCK; r++)
                    for (size_t c = 0; c < GN_TILE_BLOCK; c++) block[c][r] = acc[(r0 + r) * tj + c0 + c];
                for (size_t c = 0; c < GN_TILE_BLOCK; c++)
                    memcpy(out + (c0 + c) * ld + r0, block[c], sizeof block[c]);
            } else {
                for (size_t c = c0; c < c1; c++)
                    for (size_t r = r0; r < r1; r++) out[c * ld + r] = acc[r * tj + c];
            }
        }
    }
}

long gnk_atomic_fetch_add(long *value, long delta) { return __atomic_fetch_add(value, delta, __ATOMIC_SEQ_CST); }
long gnk_atomic_load(const long *value) { return __atomic_load_n(value, __ATOMIC_SEQ_CST); }
void gnk_atomic_store(long *value, long new_value) { __atomic_store_n(value, new_value, __ATOMIC_SEQ_CST); }
