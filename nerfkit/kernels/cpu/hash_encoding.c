/* Multiresolution hash encoding on the CPU: values, and gradients with respect to the parameters.
 *
 * The layout and arithmetic follow tiny-cuda-nn's GridEncoding (the facts and references are in
 * nerfkit/kernels/hash_encoding.py), so parameters trained here load into tiny-cuda-nn and back. Built on first use
 * by nerfkit/kernels/cpu/build.py and called through ctypes with the data pointers of contiguous float32 tensors.
 *
 * Both passes go level by level, like tiny-cuda-nn, so the level being read stays in the shared cache. Table reads
 * are random and mostly miss the private caches, so each point's corners are found LOOKAHEAD points before they are
 * used and prefetched meanwhile (measured: twice as fast as without). The forward pass splits the work into
 * (level, chunk of points) tasks, taken dynamically, so a thread slowed by other load does not hold the others at a
 * barrier. The backward pass gives each thread whole levels: levels own disjoint parameter ranges, so it needs no
 * atomics, is deterministic, and zeroes each level's gradient just before accumulating into it, while it is cached.
 */

#include <math.h>
#include <stdint.h>
#include <string.h>

#define PRIME_Y 2654435761u
#define PRIME_Z 805459861u
#define MAX_FEATURES 8
#define LOOKAHEAD 16
#define CHUNK 2048
#define INLINE static inline __attribute__((always_inline))

/* One level, as HashGridLayout computes it (field order matches its ctypes mirror). */
typedef struct {
    float scale;         /* base_resolution * per_level_scale^level - 1, in float32 as tiny-cuda-nn computes it */
    uint32_t resolution; /* vertices per axis of the dense grid */
    uint32_t size;       /* entries in the level's table; a power of two when hashed */
    uint32_t offset;     /* the level's first entry in the flat table */
    uint32_t hashed;     /* 1: spatial hash; 0: dense index with wrap-around */
} Level;

/* The 8 corners of a point's cell: corner k takes the upper cell in dimension d when bit d of k is set. */
typedef struct {
    uint32_t entry[8]; /* entry within the level's table */
    float weight[8];
} Corners;

INLINE void find_corners(const Level *level, const float *point, Corners *c) {
    uint32_t cell[3];
    float frac[3];
    for (int d = 0; d < 3; ++d) {
        const float scaled = fmaf(level->scale, point[d], 0.5f);
        const float lower = floorf(scaled);
        cell[d] = (uint32_t)(int32_t)lower;
        frac[d] = scaled - lower;
    }
    /* The index is a sum (dense) or xor (hash) of one term per dimension: the lower and upper term of each. */
    const uint32_t step_y = level->hashed ? PRIME_Y : level->resolution;
    const uint32_t step_z = level->hashed ? PRIME_Z : level->resolution * level->resolution;
    const uint32_t tx[2] = {cell[0], cell[0] + 1u};
    const uint32_t ty[2] = {cell[1] * step_y, (cell[1] + 1u) * step_y};
    const uint32_t tz[2] = {cell[2] * step_z, (cell[2] + 1u) * step_z};
    const float wx[2] = {1.0f - frac[0], frac[0]};
    const float wy[2] = {1.0f - frac[1], frac[1]};
    const float wz[2] = {1.0f - frac[2], frac[2]};
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
        c->weight[k] = wx[bx] * wy[by] * wz[bz];
    }
}

INLINE void prefetch_corners(const float *table, const Corners *c, const int features, const int for_write) {
    for (int k = 0; k < 8; ++k) {
        if (for_write) __builtin_prefetch(table + (int64_t)c->entry[k] * features, 1, 3);
        else __builtin_prefetch(table + (int64_t)c->entry[k] * features, 0, 3);
    }
}

/* out[i * out_stride + f] for points [begin, end) of one level. */
INLINE void forward_points(const float *positions, int64_t begin, int64_t end, const Level *level,
                           const float *table, const int features, float *out, int64_t out_stride) {
    Corners ring[LOOKAHEAD];
    for (int64_t i = begin; i < end + LOOKAHEAD; ++i) {
        const int64_t j = i - LOOKAHEAD;
        if (j >= begin) {
            const Corners *c = &ring[j % LOOKAHEAD];
            float sum[MAX_FEATURES] = {0.0f};
            for (int k = 0; k < 8; ++k) {
                const float *value = table + (int64_t)c->entry[k] * features;
                for (int f = 0; f < features; ++f) sum[f] += c->weight[k] * value[f];
            }
            for (int f = 0; f < features; ++f) out[j * out_stride + f] = sum[f];
        }
        if (i < end) {
            find_corners(level, positions + 3 * i, &ring[i % LOOKAHEAD]);
            prefetch_corners(table, &ring[i % LOOKAHEAD], features, 0);
        }
    }
}

/* Adds every point's contribution to one level's gradient table. */
INLINE void backward_points(const float *positions, int64_t num_points, const Level *level, const float *grad_out,
                            int64_t grad_stride, const int features, float *grad_table) {
    Corners ring[LOOKAHEAD];
    for (int64_t i = 0; i < num_points + LOOKAHEAD; ++i) {
        const int64_t j = i - LOOKAHEAD;
        if (j >= 0) {
            const Corners *c = &ring[j % LOOKAHEAD];
            const float *grad = grad_out + j * grad_stride;
            for (int k = 0; k < 8; ++k) {
                float *dst = grad_table + (int64_t)c->entry[k] * features;
                for (int f = 0; f < features; ++f) dst[f] += c->weight[k] * grad[f];
            }
        }
        if (i < num_points) {
            find_corners(level, positions + 3 * i, &ring[i % LOOKAHEAD]);
            prefetch_corners(grad_table, &ring[i % LOOKAHEAD], features, 1);
        }
    }
}

INLINE void forward(const float *positions, int64_t num_points, const float *params, const Level *levels,
                    int num_levels, const int features, float *out, int num_threads) {
    const int64_t stride = (int64_t)num_levels * features;
    const int64_t num_chunks = (num_points + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
    for (int64_t task = 0; task < num_levels * num_chunks; ++task) {
        const Level level = levels[task / num_chunks];
        const int64_t begin = (task % num_chunks) * CHUNK;
        const int64_t end = begin + CHUNK < num_points ? begin + CHUNK : num_points;
        const float *table = params + (int64_t)level.offset * features;
        float *level_out = out + (task / num_chunks) * features;
        forward_points(positions, begin, end, &level, table, features, level_out, stride);
    }
}

INLINE void backward(const float *positions, int64_t num_points, const float *grad_out, const Level *levels,
                     int num_levels, const int features, float *grad_params, int num_threads) {
    const int64_t stride = (int64_t)num_levels * features;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
    for (int l = 0; l < num_levels; ++l) {
        const Level level = levels[l];
        float *grad_table = grad_params + (int64_t)level.offset * features;
        memset(grad_table, 0, (size_t)level.size * features * sizeof(float));
        backward_points(positions, num_points, &level, grad_out + l * features, stride, features, grad_table);
    }
}

/* Features per level is a compile-time constant in each branch, so the inner loops unroll. */
void nerfkit_hash_encode_forward(const float *positions, int64_t num_points, const float *params,
                                 const Level *levels, int32_t num_levels, int32_t features, float *out,
                                 int32_t num_threads) {
    switch (features) {
    case 1: forward(positions, num_points, params, levels, num_levels, 1, out, num_threads); break;
    case 2: forward(positions, num_points, params, levels, num_levels, 2, out, num_threads); break;
    case 4: forward(positions, num_points, params, levels, num_levels, 4, out, num_threads); break;
    default: forward(positions, num_points, params, levels, num_levels, 8, out, num_threads); break;
    }
}

/* Writes the gradient with respect to the parameters into grad_params (every entry; it need not be zeroed). */
void nerfkit_hash_encode_backward(const float *positions, int64_t num_points, const float *grad_out,
                                  const Level *levels, int32_t num_levels, int32_t features, float *grad_params,
                                  int32_t num_threads) {
    switch (features) {
    case 1: backward(positions, num_points, grad_out, levels, num_levels, 1, grad_params, num_threads); break;
    case 2: backward(positions, num_points, grad_out, levels, num_levels, 2, grad_params, num_threads); break;
    case 4: backward(positions, num_points, grad_out, levels, num_levels, 4, grad_params, num_threads); break;
    default: backward(positions, num_points, grad_out, levels, num_levels, 8, grad_params, num_threads); break;
    }
}
