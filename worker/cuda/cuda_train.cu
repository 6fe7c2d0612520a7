/*
 * cuda_train.cu - the training-loop calls of the vtable on the GPU: the
 * softmax cross-entropy with its running sums, the fused SGD update, and
 * batch building from a data set kept on the GPU as bytes.
 *
 * The loss is summed in one block in a fixed order and added to the device
 * scalars acc[0] (summed loss) and acc[1] (correct top-1 predictions), so
 * a step needs no host round trip and gives the same sums every run.  A
 * label outside [0, classes) makes that sample's loss NaN, which the
 * trainer reports as divergence rather than training on garbage.
 *
 * A batch is built by one kernel per step: gather each sample's image by
 * index, crop with zero padding at the spec's offsets, mirror, scale to
 * [0, 1] and normalise, one thread per output value.  The offsets, flips
 * and indices come from the trainer's host RNG, so every backend builds
 * the same batch.
 */
#include "cuda_common.cuh"

/* ------------------------------------------------------------------- xent */

#define XENT_THREADS 512

__global__ void s_xent_kernel(const float *logits, const int32_t *labels, int n, int classes,
                              float *dlogits, float *acc)
{
    __shared__ float sh_loss[XENT_THREADS / 32], sh_ok[XENT_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float loss = 0.0f, ok = 0.0f;
    float inv_n = 1.0f / (float)n;

    for (int s = warp; s < n; s += nw) {
        const float *z = logits + (size_t)s * classes;
        int label = labels[s];
        float m = -INFINITY;
        int arg = 0;
        for (int i = lane; i < classes; i += 32) {
            if (z[i] > m) {
                m = z[i];
                arg = i;
            }
        }
        /* the first index of the maximum across the warp */
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, o);
            int a2 = __shfl_xor_sync(0xffffffffu, arg, o);
            if (m2 > m || (m2 == m && a2 < arg)) {
                m = m2;
                arg = a2;
            }
        }
        float se = 0.0f;
        for (int i = lane; i < classes; i += 32)
            se += expf(z[i] - m);
        for (int o = 16; o > 0; o >>= 1)
            se += __shfl_xor_sync(0xffffffffu, se, o);
        bool valid = label >= 0 && label < classes;
        if (lane == 0) {
            loss += valid ? logf(se) + m - z[label] : NAN;
            ok += (valid && arg == label) ? 1.0f : 0.0f;
        }
        if (dlogits) {
            float inv = 1.0f / se;
            for (int i = lane; i < classes; i += 32) {
                float p = expf(z[i] - m) * inv;
                dlogits[(size_t)s * classes + i] = (p - (i == label ? 1.0f : 0.0f)) * inv_n;
            }
        }
    }
    if (lane == 0) {
        sh_loss[warp] = loss;
        sh_ok[warp] = ok;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float l = 0.0f, c = 0.0f;
        for (int w = 0; w < nw; w++) {
            l += sh_loss[w];
            c += sh_ok[w];
        }
        acc[0] += l;
        acc[1] += c;
    }
}

int cuda_xent(backend_t *be, const float *logits, const int32_t *labels, int n, int classes,
              float *dlogits, float *acc)
{
    const net_node_t *node = NULL;
    if (n <= 0 || classes <= 0)
        return cuda_failf(be, NULL, -EINVAL, "xent: %d samples of %d classes", n, classes);
    s_xent_kernel<<<1, XENT_THREADS, 0, cuda_impl(be)->stream>>>(logits, labels, n, classes,
                                                                 dlogits, acc);
    LAUNCH_TRY("xent");
    return 0;
}

/* -------------------------------------------------------------------- SGD */

/* Without momentum (m NULL) the buffer is neither read nor written. */
__global__ void s_sgd_kernel(float *w, const float *g, float *m, int64_t n, float lr, float mom,
                             float wd, bool nesterov)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (; i < n; i += step) {
        float wi = w[i];
        float gi = g[i] + wd * wi;
        if (!m) {
            w[i] = wi - lr * gi;
            continue;
        }
        float mi = mom * m[i] + gi;
        m[i] = mi;
        w[i] = wi - lr * (nesterov ? gi + mom * mi : mi);
    }
}

int cuda_sgd(backend_t *be, float *w, const float *g, float *m, size_t n,
             const backend_sgd_t *p)
{
    const net_node_t *node = NULL;
    int64_t blocks = ((int64_t)n + CUDA_THREADS - 1) / CUDA_THREADS;
    int64_t cap = (int64_t)cuda_impl(be)->sm_count * 8;

    if (n == 0)
        return 0;
    if (!m && p->momentum != 0.0f)
        return cuda_failf(be, NULL, -EINVAL, "sgd: momentum %g without a buffer",
                          (double)p->momentum);
    if (p->momentum == 0.0f)
        m = NULL;
    if (blocks > cap)
        blocks = cap;
    s_sgd_kernel<<<(unsigned)blocks, CUDA_THREADS, 0, cuda_impl(be)->stream>>>(
        w, g, m, (int64_t)n, p->lr, p->momentum, p->weight_decay, p->nesterov);
    LAUNCH_TRY("sgd");
    return 0;
}

/* ------------------------------------------------------------------ batch */

typedef struct s_norm {
    float scale[3], shift[3];  /* out = pixel * scale + shift */
} s_norm_t;

__global__ void s_batch_kernel(const uint8_t *images, const int32_t *labels, int h, int w,
                               const int32_t *index, const int8_t *sx, const int8_t *sy,
                               const uint8_t *flip, int n, s_norm_t nm, float *out,
                               int32_t *labels_out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int plane = h * w;
    if (i < n && labels_out)
        labels_out[i] = labels[index[i]];
    if (i >= n * 3 * plane)
        return;
    int x = i % w, y = (i / w) % h, c = (i / plane) % 3, s = i / (3 * plane);
    int src_x = (flip && flip[s] ? w - 1 - x : x) + (sx ? sx[s] : 0);
    int src_y = y + (sy ? sy[s] : 0);
    float v = 0.0f;
    if (src_x >= 0 && src_x < w && src_y >= 0 && src_y < h)
        v = (float)images[((size_t)index[s] * 3 + c) * plane + src_y * w + src_x];
    out[i] = v * nm.scale[c] + nm.shift[c];
}

int cuda_batch(backend_t *be, const uint8_t *images, const int32_t *labels, int h, int w,
               const backend_batch_spec_t *spec, float *out, int32_t *labels_out)
{
    const net_node_t *node = NULL;
    s_norm_t nm;
    int64_t total = (int64_t)spec->n * 3 * h * w;

    if (spec->n < 0 || h <= 0 || w <= 0 || spec->pad < 0)
        return cuda_failf(be, NULL, -EINVAL, "batch: %d images of %dx%d, pad %d", spec->n, h,
                          w, spec->pad);
    if (spec->n == 0)
        return 0;
    for (int c = 0; c < 3; c++) {
        if (!(spec->std[c] > 0.0f))
            return cuda_failf(be, NULL, -EINVAL, "batch: std[%d] = %g", c, spec->std[c]);
        /* (p / 255 - mean) / std */
        nm.scale[c] = 1.0f / (255.0f * spec->std[c]);
        nm.shift[c] = -spec->mean[c] / spec->std[c];
    }
    if (total < spec->n)
        total = spec->n;
    s_batch_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_impl(be)->stream>>>(
        images, labels, h, w, spec->index, spec->pad ? spec->shift_x : NULL,
        spec->pad ? spec->shift_y : NULL, spec->flip, spec->n, nm, out, labels_out);
    LAUNCH_TRY("batch");
    return 0;
}
