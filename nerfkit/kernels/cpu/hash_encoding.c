/* Multiresolution hash encoding on the CPU: values, and gradients with respect to the parameters and the positions,
 * to second order.
 *
 * The layout and arithmetic follow tiny-cuda-nn's GridEncoding (the facts and references are in
 * nerfkit/kernels/hash_encoding.py), so parameters trained here load into tiny-cuda-nn and back. Built on first use
 * by nerfkit/kernels/cpu/build.py and called through ctypes with the data pointers of contiguous tensors: float32 by
 * default (tiny-cuda-nn's arithmetic), float64 when compiled with -DNERFKIT_DOUBLE (the same maths, precise enough
 * for finite-difference gradient checks).
 *
 * Within a level the encoding is linear in the parameters and trilinear in the position, so every derivative is an
 * interpolation of the same 8 corners with other weights. With a per-point tangent t, the passes interpolate with
 * each corner weight's derivative along t instead of the weight: that is what the second derivatives need (the
 * directional derivative of the position gradient). The weight is linear in each coordinate, so only the mixed second
 * derivatives of the weights are non-zero. A point on a cell boundary takes the cell floor gives it (the upper one)
 * and that cell's derivatives, as tiny-cuda-nn does; floor itself contributes nothing.
 *
 * All passes go level by level, like tiny-cuda-nn, so the level being read stays in the shared cache. Table reads
 * are random and mostly miss the private caches, so each point's corners are found LOOKAHEAD points before they are
 * used and prefetched meanwhile (measured: twice as fast as without). The forward and position passes split the work
 * into (level, chunk of points) tasks, taken dynamically, so a thread slowed by other load does not hold the others at
 * a barrier. In the position pass a chunk's tasks run one after another, so a point's gradient needs no atomics and
 * is summed in level order (measured: 15% to 20% faster than each task taking a chunk's every level, and steadier
 * under load than a barrier after each level). The parameter pass gives each thread whole levels: levels own disjoint
 * parameter ranges, so it needs no atomics, is deterministic, and zeroes each level's gradient just before
 * accumulating into it, while it is cached.
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef NERFKIT_DOUBLE
typedef double real;
#define FMA fma
#define FLOOR floor
#else
typedef float real;
#define FMA fmaf
#define FLOOR floorf
#endif

#define PRIME_Y 2654435761u
#define PRIME_Z 805459861u
#define MAX_FEATURES 8
#define LOOKAHEAD 16
#define CHUNK 2048
#define INLINE static inline __attribute__((always_inline))

/* Runs `call` with F (features per level) a compile-time constant and `T` the tangents or a constant NULL, so each
 * combination gets its own copy of the inner loops, unrolled and without the tangent terms it does not need. Used
 * inside the parallel loops: OpenMP outlines their bodies, so a constant passed from outside would not reach them. */
#define SPECIALISE(features, tangents, call)                                                                         \
    do {                                                                                                             \
        if (tangents) {                                                                                              \
            const real *const T = (tangents);                                                                        \
            WITH_FEATURES(features, call);                                                                           \
        } else {                                                                                                     \
            const real *const T = NULL;                                                                              \
            WITH_FEATURES(features, call);                                                                           \
        }                                                                                                            \
    } while (0)
#define WITH_FEATURES(features, call)                                                                                \
    switch (features) {                                                                                              \
    case 1: { enum { F = 1 }; call; } break;                                                                         \
    case 2: { enum { F = 2 }; call; } break;                                                                         \
    case 4: { enum { F = 4 }; call; } break;                                                                         \
    default: { enum { F = 8 }; call; } break;                                                                        \
    }

/* One level, as HashGridLayout computes it (field order matches its ctypes mirror). */
typedef struct {
    float scale;         /* base_resolution * per_level_scale^level - 1, in float32 as tiny-cuda-nn computes it */
    uint32_t resolution; /* vertices per axis of the dense grid */
    uint32_t size;       /* entries in the level's table; a power of two when hashed */
    uint32_t offset;     /* the level's first entry in the flat table */
    uint32_t hashed;     /* 1: spatial hash; 0: dense index with wrap-around */
} Level;

/* A point's cell in one level: corner k takes the upper cell in dimension d when bit d of k is set. */
typedef struct {
    uint32_t entry[8]; /* entry within the level's table */
    real frac[3];      /* the position within the cell, per dimension */
} Cell;

INLINE void find_cell(const Level *level, const real *point, Cell *c) {
    uint32_t cell[3];
    for (int d = 0; d < 3; ++d) {
        const real scaled = FMA((real)level->scale, point[d], (real)0.5);
        const real lower = FLOOR(scaled);
        cell[d] = (uint32_t)(int32_t)lower;
        c->frac[d] = scaled - lower;
    }
    /* The index is a sum (dense) or xor (hash) of one term per dimension: the lower and upper term of each. */
    const uint32_t step_y = level->hashed ? PRIME_Y : level->resolution;
    const uint32_t step_z = level->hashed ? PRIME_Z : level->resolution * level->resolution;
    const uint32_t tx[2] = {cell[0], cell[0] + 1u};
    const uint32_t ty[2] = {cell[1] * step_y, (cell[1] + 1u) * step_y};
    const uint32_t tz[2] = {cell[2] * step_z, (cell[2] + 1u) * step_z};
    const uint32_t size = level->size;
    for (int k = 0; k < 8; ++k) {
        const int bx = k & 1, by = (k >> 1) & 1, bz = (k >> 2) & 1;
        uint32_t index;
        if (level->hashed) {
            index = (tx[bx] ^ ty[by] ^ tz[bz]) & (size - 1u);
        } else {
            index = tx[bx] + ty[by] + tz[bz];
            index = index < size ? index : index % size;
        }
        c->entry[k] = index;
    }
}

/* Corner k's interpolation factor in each dimension (1 - frac or frac) and its derivative by that coordinate. */
INLINE void corner_factors(const Cell *c, const real scale, const int k, real a[3], real s[3]) {
    for (int d = 0; d < 3; ++d) {
        const int upper = (k >> d) & 1;
        a[d] = upper ? c->frac[d] : 1 - c->frac[d];
        s[d] = upper ? scale : -scale;
    }
}

/* Each corner's weight, the product of its factors; given a tangent t, the weight's derivative along t. */
INLINE void corner_weights(const Cell *c, const real scale, const real *t, real w[8]) {
    for (int k = 0; k < 8; ++k) {
        real a[3], s[3];
        corner_factors(c, scale, k, a, s);
        if (t) w[k] = t[0] * s[0] * a[1] * a[2] + a[0] * t[1] * s[1] * a[2] + a[0] * a[1] * t[2] * s[2];
        else w[k] = a[0] * a[1] * a[2];
    }
}

/* The gradient of each corner's weight (or of its derivative along t) with respect to the position. */
INLINE void corner_weight_gradients(const Cell *c, const real scale, const real *t, real g[8][3]) {
    for (int k = 0; k < 8; ++k) {
        real a[3], s[3];
        corner_factors(c, scale, k, a, s);
        if (t) {
            g[k][0] = s[0] * (t[1] * s[1] * a[2] + t[2] * s[2] * a[1]);
            g[k][1] = s[1] * (t[0] * s[0] * a[2] + t[2] * s[2] * a[0]);
            g[k][2] = s[2] * (t[0] * s[0] * a[1] + t[1] * s[1] * a[0]);
        } else {
            g[k][0] = s[0] * a[1] * a[2];
            g[k][1] = a[0] * s[1] * a[2];
            g[k][2] = a[0] * a[1] * s[2];
        }
    }
}

INLINE void prefetch_corners(const real *table, const Cell *c, const int features, const int for_write) {
    for (int k = 0; k < 8; ++k) {
        if (for_write) __builtin_prefetch(table + (int64_t)c->entry[k] * features, 1, 3);
        else __builtin_prefetch(table + (int64_t)c->entry[k] * features, 0, 3);
    }
}

/* out[i * out_stride + f] for points [begin, end) of one level. */
INLINE void forward_points(const real *positions, int64_t begin, int64_t end, const Level *level, const real *table,
                           const int features, const real *tangents, real *out, int64_t out_stride) {
    Cell ring[LOOKAHEAD];
    for (int64_t i = begin; i < end + LOOKAHEAD; ++i) {
        const int64_t j = i - LOOKAHEAD;
        if (j >= begin) {
            const Cell *c = &ring[j % LOOKAHEAD];
            real weight[8], sum[MAX_FEATURES] = {0};
            corner_weights(c, level->scale, tangents ? tangents + 3 * j : NULL, weight);
            for (int k = 0; k < 8; ++k) {
                const real *value = table + (int64_t)c->entry[k] * features;
                for (int f = 0; f < features; ++f) sum[f] += weight[k] * value[f];
            }
            for (int f = 0; f < features; ++f) out[j * out_stride + f] = sum[f];
        }
        if (i < end) {
            find_cell(level, positions + 3 * i, &ring[i % LOOKAHEAD]);
            prefetch_corners(table, &ring[i % LOOKAHEAD], features, 0);
        }
    }
}

/* Adds every point's contribution to one level's parameter gradient. */
INLINE void params_points(const real *positions, int64_t num_points, const Level *level, const real *grad_out,
                          int64_t grad_stride, const int features, const real *tangents, real *grad_table) {
    Cell ring[LOOKAHEAD];
    for (int64_t i = 0; i < num_points + LOOKAHEAD; ++i) {
        const int64_t j = i - LOOKAHEAD;
        if (j >= 0) {
            const Cell *c = &ring[j % LOOKAHEAD];
            const real *grad = grad_out + j * grad_stride;
            real weight[8];
            corner_weights(c, level->scale, tangents ? tangents + 3 * j : NULL, weight);
            for (int k = 0; k < 8; ++k) {
                real *dst = grad_table + (int64_t)c->entry[k] * features;
                for (int f = 0; f < features; ++f) dst[f] += weight[k] * grad[f];
            }
        }
        if (i < num_points) {
            find_cell(level, positions + 3 * i, &ring[i % LOOKAHEAD]);
            prefetch_corners(grad_table, &ring[i % LOOKAHEAD], features, 1);
        }
    }
}

/* Adds one level's contribution to the position gradients of points [begin, end). */
INLINE void positions_points(const real *positions, int64_t begin, int64_t end, const Level *level,
                             const real *table, const real *grad_out, int64_t grad_stride, const int features,
                             const real *tangents, real *grad_positions) {
    Cell ring[LOOKAHEAD];
    for (int64_t i = begin; i < end + LOOKAHEAD; ++i) {
        const int64_t j = i - LOOKAHEAD;
        if (j >= begin) {
            const Cell *c = &ring[j % LOOKAHEAD];
            const real *grad = grad_out + j * grad_stride;
            real weight_grad[8][3], sum[3] = {0};
            corner_weight_gradients(c, level->scale, tangents ? tangents + 3 * j : NULL, weight_grad);
            for (int k = 0; k < 8; ++k) {
                const real *value = table + (int64_t)c->entry[k] * features;
                real dot = 0;
                for (int f = 0; f < features; ++f) dot += value[f] * grad[f];
                for (int d = 0; d < 3; ++d) sum[d] += dot * weight_grad[k][d];
            }
            for (int d = 0; d < 3; ++d) grad_positions[3 * j + d] += sum[d];
        }
        if (i < end) {
            find_cell(level, positions + 3 * i, &ring[i % LOOKAHEAD]);
            prefetch_corners(table, &ring[i % LOOKAHEAD], features, 0);
        }
    }
}

/* out (num_points x num_levels*features): the encoding, or with tangents (num_points x 3, else NULL) its derivative
 * along each point's tangent. */
void nerfkit_hash_encode_forward(const real *positions, int64_t num_points, const real *params, const Level *levels,
                                 int32_t num_levels, int32_t features, const real *tangents, real *out,
                                 int32_t num_threads) {
    const int64_t stride = (int64_t)num_levels * features;
    const int64_t num_chunks = (num_points + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
    for (int64_t task = 0; task < num_levels * num_chunks; ++task) {
        const Level level = levels[task / num_chunks];
        const int64_t begin = (task % num_chunks) * CHUNK;
        const int64_t end = begin + CHUNK < num_points ? begin + CHUNK : num_points;
        const real *table = params + (int64_t)level.offset * features;
        real *level_out = out + (task / num_chunks) * features;
        SPECIALISE(features, tangents, forward_points(positions, begin, end, &level, table, F, T, level_out, stride));
    }
}

/* grad_params: the gradient with respect to the parameters given grad_out, the gradient with respect to the output;
 * with tangents, the derivative of that along each point's tangent. Writes every entry; it need not be zeroed. */
void nerfkit_hash_encode_backward_params(const real *positions, int64_t num_points, const real *grad_out,
                                         const Level *levels, int32_t num_levels, int32_t features,
                                         const real *tangents, real *grad_params, int32_t num_threads) {
    const int64_t stride = (int64_t)num_levels * features;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
    for (int l = 0; l < num_levels; ++l) {
        const Level level = levels[l];
        real *grad_table = grad_params + (int64_t)level.offset * features;
        memset(grad_table, 0, (size_t)level.size * features * sizeof(real));
        const real *level_grad = grad_out + l * features;
        SPECIALISE(features, tangents,
                   params_points(positions, num_points, &level, level_grad, stride, F, T, grad_table));
    }
}

/* grad_positions (num_points x 3): the gradient with respect to the positions given grad_out (the gradient with
 * respect to the output) and params; with tangents, the gradient of the encoding's derivative along each point's
 * tangent, dotted with grad_out. Writes every entry; it need not be zeroed.
 *
 * One task per (level, chunk of points), created level by level; a chunk's tasks depend on one another, so each
 * point sums its levels in order while other chunks run on (no barrier between levels). */
void nerfkit_hash_encode_backward_positions(const real *positions, int64_t num_points, const real *params,
                                            const real *grad_out, const Level *levels, int32_t num_levels,
                                            int32_t features, const real *tangents, real *grad_positions,
                                            int32_t num_threads) {
    const int64_t stride = (int64_t)num_levels * features;
    const int64_t num_chunks = (num_points + CHUNK - 1) / CHUNK;
    memset(grad_positions, 0, (size_t)num_points * 3 * sizeof(real));
#pragma omp parallel num_threads(num_threads)
#pragma omp single
    for (int l = 0; l < num_levels; ++l) {
        for (int64_t chunk = 0; chunk < num_chunks; ++chunk) {
#pragma omp task firstprivate(l, chunk) depend(inout : grad_positions[3 * chunk * CHUNK])
            {
                const Level level = levels[l];
                const int64_t begin = chunk * CHUNK;
                const int64_t end = begin + CHUNK < num_points ? begin + CHUNK : num_points;
                const real *table = params + (int64_t)level.offset * features;
                const real *level_grad = grad_out + l * features;
                SPECIALISE(features, tangents,
                           positions_points(positions, begin, end, &level, table, level_grad, stride, F, T,
                                            grad_positions));
            }
        }
    }
}
