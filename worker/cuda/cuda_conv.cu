/*
 * cuda_conv.cu - Conv2d forward and backward through cuDNN.
 *
 * Each distinct convolution shape gets a plan: cuDNN descriptors and the
 * algorithms for forward, backward-data and backward-filter, chosen once
 * by timing every algorithm (cudnnFind*, which allocates its own trial
 * buffers) and keeping the fastest whose workspace fits under a bound
 * (conv_ws_limit, 64 MiB unless NADER_CUDA_CONV_WS_MB says otherwise).
 * Plans are made when the network asks for workspace sizes, before any
 * step is captured; a plan first needed during a capture is chosen by
 * cuDNN's heuristics instead, which runs nothing on the GPU.
 *
 * Layouts.  The engine's tensors are float32 NCHW.  In BACKEND_FP32 and
 * BACKEND_STRICT_FP32 the convolution reads and writes them in place
 * (cuDNN picks TF32 tensor-core kernels unless strict).  In BACKEND_BF16
 * (and in float32 when NADER_CUDA_CONV=nhwc) the operands are first
 * converted, in one tiled-transpose kernel each, to channels-last in the
 * compute type, which is what the tensor-core kernels of cuDNN want; the
 * output comes back to NCHW float32 in one kernel that also adds the bias
 * and drops the cropped row and column.  The converted input is kept in
 * the node's saved state for the weight gradient, so backward converts
 * only the output gradient.  Weights stay float32 masters; their bf16
 * copies live only in the workspace.
 *
 * "Same" padding: cuDNN pads node->pad on both sides; when node->crop is
 * set the full output is one row and column larger than the node's, so it
 * goes to the workspace and the copy into y leaves the last row and column
 * behind.  Backward pads the gradient back with zeros the same way.
 */
#include <stdlib.h>

#include "cuda_reduce.cuh"

enum { CONV_NCHW_F32, CONV_NHWC_F32, CONV_NHWC_BF16 };

typedef struct s_conv_key {
    int n, c, h, w, k, r, stride, pad, dil, groups, mode, strict;
} s_conv_key_t;

struct cuda_conv_plan {
    s_conv_key_t key;
    int oh, ow;               /* full output, before the crop */
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t fwd_math, data_math, filter_math;
    size_t fwd_ws, data_ws, filter_ws;
};

/* ---------------------------------------------------------------- layout */

template <typename T> __device__ __forceinline__ T s_cvt(float v);
template <> __device__ __forceinline__ float s_cvt<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 s_cvt<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}
__device__ __forceinline__ float s_f32(float v) { return v; }
__device__ __forceinline__ float s_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

/*
 * NCHW float (spatial hs x ws) -> NHWC T (spatial hd x wd >= source), the
 * extra rows and columns zero.  Grid (positions/32, channels/32, n).
 */
template <typename T>
__global__ void s_to_nhwc_kernel(const float *src, T *dst, int C, int hs, int ws, int hd, int wd)
{
    __shared__ float tile[32][33];
    int n = blockIdx.z, p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    int pd = hd * wd;

    bool same = hs == hd && ws == wd;   /* no padding: no division */
    for (int cl = threadIdx.y; cl < 32; cl += 8) {
        int c = c0 + cl, p = p0 + threadIdx.x;
        float v = 0.0f;
        if (c < C && p < pd) {
            size_t plane = ((size_t)n * C + c) * hs * ws;
            if (same) {
                v = src[plane + p];
            } else {
                int i = p / wd, j = p - i * wd;
                if (i < hs && j < ws)
                    v = src[plane + i * ws + j];
            }
        }
        tile[cl][threadIdx.x] = v;
    }
    __syncthreads();
    for (int pl = threadIdx.y; pl < 32; pl += 8) {
        int p = p0 + pl, c = c0 + threadIdx.x;
        if (c < C && p < pd)
            dst[((size_t)n * pd + p) * C + c] = s_cvt<T>(tile[threadIdx.x][pl]);
    }
}

/*
 * NHWC T (spatial hf x wf) -> NCHW float (spatial hc x wc <= source),
 * plus bias[c] when bias is not NULL, added to dst when acc.
 */
template <typename T>
__global__ void s_from_nhwc_kernel(const T *src, float *dst, int C, int hf, int wf, int hc,
                                   int wc, const float *bias, bool acc)
{
    __shared__ float tile[32][33];
    int n = blockIdx.z, p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    int pf = hf * wf;

    for (int pl = threadIdx.y; pl < 32; pl += 8) {
        int p = p0 + pl, c = c0 + threadIdx.x;
        tile[pl][threadIdx.x] = (c < C && p < pf) ? s_f32(src[((size_t)n * pf + p) * C + c])
                                                  : 0.0f;
    }
    __syncthreads();
    bool same = hf == hc && wf == wc;   /* no crop: no division */
    for (int cl = threadIdx.y; cl < 32; cl += 8) {
        int c = c0 + cl, p = p0 + threadIdx.x;
        if (c >= C || p >= pf)
            continue;
        size_t o = ((size_t)n * C + c) * hc * wc;
        if (same) {
            o += p;
        } else {
            int i = p / wf, j = p - i * wf;
            if (i >= hc || j >= wc)
                continue;
            o += (size_t)i * wc + j;
        }
        float v = tile[threadIdx.x][cl] + (bias ? bias[c] : 0.0f);
        dst[o] = acc ? dst[o] + v : v;
    }
}

/* Weights (K, Cg, R, S) float <-> (K, R, S, Cg) T. */
template <typename T>
__global__ void s_w_to_krsc_kernel(const float *w, T *wt, int K, int cg, int rs)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= K * cg * rs)
        return;
    int q = i % rs, c = (i / rs) % cg, k = i / (rs * cg);
    wt[((size_t)k * rs + q) * cg + c] = s_cvt<T>(w[i]);
}

template <typename T>
__global__ void s_w_from_krsc_kernel(const T *wt, float *w, int K, int cg, int rs)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= K * cg * rs)
        return;
    int q = i % rs, c = (i / rs) % cg, k = i / (rs * cg);
    w[i] = s_f32(wt[((size_t)k * rs + q) * cg + c]);
}

/* NCHW, no crop: y += bias in place, one block row per plane. */
__global__ void s_nchw_bias_kernel(float *y, int C, int R, const float *bias)
{
    int plane = blockIdx.x;
    int r = blockIdx.y * blockDim.x + threadIdx.x;
    if (r < R)
        y[(size_t)plane * R + r] += bias[plane % C];
}

/* NCHW: dst (hc x wc) = src (hf x wf, its top-left part) + bias. */
__global__ void s_nchw_out_kernel(const float *src, float *dst, int planes, int C, int hf,
                                  int wf, int hc, int wc, const float *bias)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= planes * hc * wc)
        return;
    int j = o % wc, i = (o / wc) % hc, pl = o / (wc * hc);
    float v = src[((size_t)pl * hf + i) * wf + j];
    dst[o] = v + (bias ? bias[pl % C] : 0.0f);
}

/* NCHW: dst (hf x wf) = src (hc x wc) padded with zeros. */
__global__ void s_nchw_pad_kernel(const float *src, float *dst, int planes, int hf, int wf,
                                  int hc, int wc)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= planes * hf * wf)
        return;
    int j = o % wf, i = (o / wf) % hf, pl = o / (wf * hf);
    dst[o] = (i < hc && j < wc) ? src[((size_t)pl * hc + i) * wc + j] : 0.0f;
}

/* ------------------------------------------------------------------ plans */

static int s_mode(backend_t *be)
{
    cuda_impl_t *im = cuda_impl(be);
    if (im->precision == BACKEND_BF16)
        return CONV_NHWC_BF16;
    return im->conv_nhwc ? CONV_NHWC_F32 : CONV_NCHW_F32;
}

static size_t s_elem(int mode)
{
    return mode == CONV_NHWC_BF16 ? sizeof(__nv_bfloat16) : sizeof(float);
}

static void s_key_of(backend_t *be, const net_t *net, const net_node_t *node, s_conv_key_t *k)
{
    const graph_shape_t *xs = cuda_in_shape_n(net, node, 0);
    memset(k, 0, sizeof(*k));
    k->n = (int)xs->d[0];
    k->c = (int)xs->d[1];
    k->h = (int)xs->d[2];
    k->w = (int)xs->d[3];
    k->k = (int)node->shape.d[1];
    k->r = (int)node->kernel;
    k->stride = (int)node->stride;
    k->pad = (int)node->pad;
    k->dil = (int)node->dilation;
    k->groups = (int)node->groups;
    k->mode = s_mode(be);
    k->strict = cuda_impl(be)->precision == BACKEND_STRICT_FP32;
}

static void s_plan_free(cuda_conv_plan_t *p)
{
    if (!p)
        return;
    if (p->xd)
        cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd)
        cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd)
        cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd)
        cudnnDestroyConvolutionDescriptor(p->cd);
    free(p);
}

void cuda_conv_plans_free(cuda_impl_t *im)
{
    for (int i = 0; i < im->n_plans; i++)
        s_plan_free(im->plans[i]);
    free(im->plans);
    im->plans = NULL;
    im->n_plans = im->cap_plans = 0;
}

/*
 * Pick the first (fastest) successful result that fits the bound and
 * keeps the precision asked for: never a conversion of float32 operands
 * to half precision, nor a tensor-core kernel in strict mode.  cudnnFind*
 * also tries CUDNN_DEFAULT_MATH, which allows TF32 on Ampere and later,
 * and reports algorithms without tensor-core kernels under that math
 * type; so strict mode prefers results found under CUDNN_FMA_MATH, else
 * takes a default-math one, and always runs with CUDNN_FMA_MATH set
 * (s_math).
 */
template <typename P>
static int s_pick(const P *perf, int n, size_t limit, bool strict)
{
    for (int pass = strict ? 0 : 1; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            cudnnMathType_t m = perf[i].mathType;
            if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit ||
                m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION ||
                (strict && m == CUDNN_TENSOR_OP_MATH) || (pass == 0 && m != CUDNN_FMA_MATH))
                continue;
            return i;
        }
    return -1;
}

/* The math type to run a picked result with. */
static cudnnMathType_t s_math(cudnnMathType_t found, bool strict)
{
    return strict ? CUDNN_FMA_MATH : found;
}

static int s_choose_algos(backend_t *be, const net_node_t *node, cuda_conv_plan_t *p)
{
    cuda_impl_t *im = cuda_impl(be);
    cudnnHandle_t h = im->cudnn;
    size_t lim = im->conv_ws_limit;
    cudnnConvolutionFwdAlgoPerf_t fp[16];
    cudnnConvolutionBwdDataAlgoPerf_t dp[16];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[16];
    int nf = 0, nd = 0, nw = 0, i;
    bool timed = !im->capturing, strict = p->key.strict;

    if (timed && (cudnnFindConvolutionForwardAlgorithm(h, p->xd, p->wd, p->cd, p->yd, 16, &nf,
                                                       fp) != CUDNN_STATUS_SUCCESS ||
                  s_pick(fp, nf, lim, strict) < 0))
        nf = 0;
    if (nf == 0)
        DNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd, p->yd, 16, &nf,
                                                       fp));
    if ((i = s_pick(fp, nf, lim, strict)) < 0)
        return cuda_failf(be, node, -ENOTSUP, "cuDNN has no forward algorithm for this shape");
    p->fwd = fp[i].algo;
    p->fwd_math = s_math(fp[i].mathType, strict);
    p->fwd_ws = fp[i].memory;

    if (timed && (cudnnFindConvolutionBackwardDataAlgorithm(h, p->wd, p->yd, p->cd, p->xd, 16,
                                                            &nd, dp) != CUDNN_STATUS_SUCCESS ||
                  s_pick(dp, nd, lim, strict) < 0))
        nd = 0;
    if (nd == 0)
        DNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd, p->xd, 16,
                                                            &nd, dp));
    if ((i = s_pick(dp, nd, lim, strict)) < 0)
        return cuda_failf(be, node, -ENOTSUP,
                          "cuDNN has no backward-data algorithm for this shape");
    p->bwd_data = dp[i].algo;
    p->data_math = s_math(dp[i].mathType, strict);
    p->data_ws = dp[i].memory;

    if (timed && (cudnnFindConvolutionBackwardFilterAlgorithm(h, p->xd, p->yd, p->cd, p->wd, 16,
                                                              &nw, wp) !=
                      CUDNN_STATUS_SUCCESS ||
                  s_pick(wp, nw, lim, strict) < 0))
        nw = 0;
    if (nw == 0)
        DNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->xd, p->yd, p->cd, p->wd, 16,
                                                              &nw, wp));
    if ((i = s_pick(wp, nw, lim, strict)) < 0)
        return cuda_failf(be, node, -ENOTSUP,
                          "cuDNN has no backward-filter algorithm for this shape");
    p->bwd_filter = wp[i].algo;
    p->filter_math = s_math(wp[i].mathType, strict);
    p->filter_ws = wp[i].memory;
    return 0;
}

static int s_plan_init(backend_t *be, const net_node_t *node, cuda_conv_plan_t *p)
{
    const s_conv_key_t *k = &p->key;
    bool nhwc = k->mode != CONV_NCHW_F32;
    cudnnTensorFormat_t fmt = nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    cudnnDataType_t dt = k->mode == CONV_NHWC_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    cudnnMathType_t math = k->mode == CONV_NHWC_BF16 ? CUDNN_TENSOR_OP_MATH
                           : k->strict             ? CUDNN_FMA_MATH
                                                   : CUDNN_DEFAULT_MATH;
    int e = k->dil * (k->r - 1) + 1, n, c, oh, ow;

    p->oh = (k->h + 2 * k->pad - e) / k->stride + 1;
    p->ow = (k->w + 2 * k->pad - e) / k->stride + 1;
    DNN_TRY(cudnnCreateTensorDescriptor(&p->xd));
    DNN_TRY(cudnnCreateTensorDescriptor(&p->yd));
    DNN_TRY(cudnnCreateFilterDescriptor(&p->wd));
    DNN_TRY(cudnnCreateConvolutionDescriptor(&p->cd));
    DNN_TRY(cudnnSetTensor4dDescriptor(p->xd, fmt, dt, k->n, k->c, k->h, k->w));
    DNN_TRY(cudnnSetFilter4dDescriptor(p->wd, dt, fmt, k->k, k->c / k->groups, k->r, k->r));
    DNN_TRY(cudnnSetConvolution2dDescriptor(p->cd, k->pad, k->pad, k->stride, k->stride, k->dil,
                                            k->dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DNN_TRY(cudnnSetConvolutionGroupCount(p->cd, k->groups));
    DNN_TRY(cudnnSetConvolutionMathType(p->cd, math));
    DNN_TRY(cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &n, &c, &oh, &ow));
    if (n != k->n || c != k->k || oh != p->oh || ow != p->ow)
        return cuda_failf(be, node, -EINVAL,
                          "cuDNN output (%d,%d,%d,%d) differs from the expected (%d,%d,%d,%d)",
                          n, c, oh, ow, k->n, k->k, p->oh, p->ow);
    DNN_TRY(cudnnSetTensor4dDescriptor(p->yd, fmt, dt, k->n, k->k, p->oh, p->ow));
    return s_choose_algos(be, node, p);
}

/* The plan for node's shape, made on first use. */
static int s_plan_get(backend_t *be, const net_t *net, const net_node_t *node,
                      cuda_conv_plan_t **out)
{
    cuda_impl_t *im = cuda_impl(be);
    s_conv_key_t key;
    cuda_conv_plan_t *p;
    int rc;

    s_key_of(be, net, node, &key);
    for (int i = 0; i < im->n_plans; i++)
        if (memcmp(&im->plans[i]->key, &key, sizeof(key)) == 0) {
            *out = im->plans[i];
            return 0;
        }
    if (im->n_plans == im->cap_plans) {
        int cap = im->cap_plans ? 2 * im->cap_plans : 16;
        cuda_conv_plan_t **v =
            (cuda_conv_plan_t **)realloc(im->plans, (size_t)cap * sizeof(*v));
        if (!v)
            return cuda_failf(be, node, -ENOMEM, "out of host memory for a convolution plan");
        im->plans = v;
        im->cap_plans = cap;
    }
    p = (cuda_conv_plan_t *)calloc(1, sizeof(*p));
    if (!p)
        return cuda_failf(be, node, -ENOMEM, "out of host memory for a convolution plan");
    p->key = key;
    rc = s_plan_init(be, node, p);
    if (rc) {
        s_plan_free(p);
        return rc;
    }
    im->plans[im->n_plans++] = p;
    *out = p;
    return 0;
}

/* ------------------------------------------------------------- workspace */

typedef struct s_conv_sizes {
    size_t x, w, y;           /* converted operands (channels-last modes) */
    size_t yfull;             /* NCHW with crop: the uncropped output */
    size_t bias_part;
} s_conv_sizes_t;

static void s_sizes(backend_t *be, const net_node_t *node, const cuda_conv_plan_t *p,
                    cuda_red_plan_t *bias_plan, s_conv_sizes_t *s)
{
    const s_conv_key_t *k = &p->key;
    size_t el = s_elem(k->mode);
    memset(s, 0, sizeof(*s));
    if (k->mode != CONV_NCHW_F32) {
        s->x = cuda_align((size_t)k->n * k->c * k->h * k->w * el);
        s->w = cuda_align((size_t)k->k * (k->c / k->groups) * k->r * k->r * el);
        s->y = cuda_align((size_t)k->n * k->k * p->oh * p->ow * el);
    } else if (node->crop) {
        s->yfull = cuda_align((size_t)k->n * k->k * p->oh * p->ow * sizeof(float));
    }
    uint32_t mask = 0xd;          /* dims 0, 2, 3 */
    cuda_red_plan_make(bias_plan, 4, node->shape.d, mask, cuda_impl(be)->sm_count);
    s->bias_part = cuda_align(cuda_red_partials(bias_plan, 1) * sizeof(float));
}

/* Channels-last modes keep forward's converted input for backward. */
size_t cuda_conv_saved(backend_t *be, const net_t *net, const net_node_t *node)
{
    const graph_shape_t *xs = cuda_in_shape_n(net, node, 0);
    int mode = s_mode(be);
    if (mode == CONV_NCHW_F32 || xs->ndim != 4)
        return 0;
    return (size_t)cuda_numel(xs) * s_elem(mode);
}

size_t cuda_conv_workspace(backend_t *be, const net_t *net, const net_node_t *node)
{
    cuda_conv_plan_t *p;
    cuda_red_plan_t bp;
    s_conv_sizes_t s;

    /* No plan: forward tries again and reports why, with the node. */
    if (s_plan_get(be, net, node, &p))
        return 0;
    s_sizes(be, node, p, &bp, &s);
    size_t fwd = s.x + s.w + s.y + s.yfull + cuda_align(p->fwd_ws);
    size_t algo = p->data_ws > p->filter_ws ? p->data_ws : p->filter_ws;
    /* backward: x, w, dy and dx (the y-sized slot holds dy; dx is x-sized),
     * dw (w-sized), the padded dy (NCHW), bias partials and algorithms. */
    size_t bwd = 2 * s.x + 2 * s.w + s.y + s.yfull + s.bias_part + cuda_align(algo);
    return fwd > bwd ? fwd : bwd;
}

/* --------------------------------------------------------------- forward */

template <typename T>
static int s_forward_nhwc(backend_t *be, const backend_op_t *op, cuda_conv_plan_t *p,
                          cuda_ws_t *ws, const s_conv_sizes_t *s)
{
    const net_node_t *node = op->node;
    const s_conv_key_t *k = &p->key;
    cudaStream_t st = cuda_impl(be)->stream;
    const float one = 1.0f, zero = 0.0f;
    int cg = k->c / k->groups, rs = k->r * k->r;
    T *xt = (T *)op->saved, *wt, *yt;
    void *algo_ws = NULL;

    if (!xt)
        WS_TAKE(xt, *ws, s->x);
    WS_TAKE(wt, *ws, s->w);
    WS_TAKE(yt, *ws, s->y);
    if (p->fwd_ws)
        WS_TAKE(algo_ws, *ws, p->fwd_ws);

    dim3 b(32, 8);
    dim3 gx((k->h * k->w + 31) / 32, (k->c + 31) / 32, k->n);
    s_to_nhwc_kernel<T><<<gx, b, 0, st>>>(op->x[0], xt, k->c, k->h, k->w, k->h, k->w);
    LAUNCH_TRY("Conv2d layout");
    s_w_to_krsc_kernel<T><<<cuda_blocks((int64_t)k->k * cg * rs), CUDA_THREADS, 0, st>>>(
        op->w[0], wt, k->k, cg, rs);
    LAUNCH_TRY("Conv2d layout");

    DNN_TRY(cudnnSetConvolutionMathType(p->cd, p->fwd_math));
    DNN_TRY(cudnnConvolutionForward(cuda_impl(be)->cudnn, &one, p->xd, xt, p->wd, wt, p->cd,
                                    p->fwd, algo_ws, p->fwd_ws, &zero, p->yd, yt));

    dim3 gy((p->oh * p->ow + 31) / 32, (k->k + 31) / 32, k->n);
    s_from_nhwc_kernel<T><<<gy, b, 0, st>>>(yt, op->y, k->k, p->oh, p->ow,
                                            (int)node->shape.d[2], (int)node->shape.d[3],
                                            node->bias ? op->w[1] : NULL, false);
    LAUNCH_TRY("Conv2d layout");
    return 0;
}

static int s_forward_nchw(backend_t *be, const backend_op_t *op, cuda_conv_plan_t *p,
                          cuda_ws_t *ws, const s_conv_sizes_t *s)
{
    const net_node_t *node = op->node;
    const s_conv_key_t *k = &p->key;
    const float one = 1.0f, zero = 0.0f;
    float *y = op->y;
    void *algo_ws = NULL;

    if (node->crop)
        WS_TAKE(y, *ws, s->yfull);
    if (p->fwd_ws)
        WS_TAKE(algo_ws, *ws, p->fwd_ws);
    DNN_TRY(cudnnSetConvolutionMathType(p->cd, p->fwd_math));
    DNN_TRY(cudnnConvolutionForward(cuda_impl(be)->cudnn, &one, p->xd, op->x[0], p->wd,
                                    op->w[0], p->cd, p->fwd, algo_ws, p->fwd_ws, &zero, p->yd,
                                    y));
    int hc = (int)node->shape.d[2], wc = (int)node->shape.d[3];
    int planes = k->n * k->k;
    if (node->crop) {
        s_nchw_out_kernel<<<cuda_blocks((int64_t)planes * hc * wc), CUDA_THREADS, 0,
                            cuda_impl(be)->stream>>>(y, op->y, planes, k->k, p->oh, p->ow, hc,
                                                     wc, node->bias ? op->w[1] : NULL);
        LAUNCH_TRY("Conv2d bias");
    } else if (node->bias) {
        int R = hc * wc, t = R >= CUDA_THREADS ? CUDA_THREADS : ((R + 31) / 32) * 32;
        dim3 grid((unsigned)planes, (unsigned)((R + t - 1) / t));
        s_nchw_bias_kernel<<<grid, t, 0, cuda_impl(be)->stream>>>(op->y, k->k, R, op->w[1]);
        LAUNCH_TRY("Conv2d bias");
    }
    return 0;
}

int cuda_conv_forward(backend_t *be, const backend_op_t *op)
{
    cuda_conv_plan_t *p;
    cuda_red_plan_t bp;
    s_conv_sizes_t s;
    cuda_ws_t ws = cuda_ws_of(op);

    RC_TRY(s_plan_get(be, op->net, op->node, &p));
    s_sizes(be, op->node, p, &bp, &s);
    switch (p->key.mode) {
    case CONV_NHWC_BF16:
        return s_forward_nhwc<__nv_bfloat16>(be, op, p, &ws, &s);
    case CONV_NHWC_F32:
        return s_forward_nhwc<float>(be, op, p, &ws, &s);
    default:
        return s_forward_nchw(be, op, p, &ws, &s);
    }
}

/* -------------------------------------------------------------- backward */

template <typename T>
static int s_backward_nhwc(backend_t *be, const backend_op_t *op, cuda_conv_plan_t *p,
                           cuda_ws_t *ws, const s_conv_sizes_t *s)
{
    const net_node_t *node = op->node;
    const s_conv_key_t *k = &p->key;
    cudaStream_t st = cuda_impl(be)->stream;
    cudnnHandle_t h = cuda_impl(be)->cudnn;
    const float one = 1.0f, zero = 0.0f;
    int cg = k->c / k->groups, rs = k->r * k->r;
    bool want_dx = op->dx && op->dx[0], want_dw = op->dw && op->dw[0];
    size_t algo = p->data_ws > p->filter_ws ? p->data_ws : p->filter_ws;
    T *dyt, *xt = NULL, *wt = NULL, *dxt = NULL, *dwt = NULL;
    void *algo_ws = NULL;
    dim3 b(32, 8);

    WS_TAKE(dyt, *ws, s->y);
    if (algo)
        WS_TAKE(algo_ws, *ws, algo);
    dim3 gy((p->oh * p->ow + 31) / 32, (k->k + 31) / 32, k->n);
    s_to_nhwc_kernel<T><<<gy, b, 0, st>>>(op->dy, dyt, k->k, (int)node->shape.d[2],
                                          (int)node->shape.d[3], p->oh, p->ow);
    LAUNCH_TRY("Conv2d layout");

    dim3 gx((k->h * k->w + 31) / 32, (k->c + 31) / 32, k->n);
    if (want_dx) {
        WS_TAKE(wt, *ws, s->w);
        WS_TAKE(dxt, *ws, s->x);
        s_w_to_krsc_kernel<T><<<cuda_blocks((int64_t)k->k * cg * rs), CUDA_THREADS, 0, st>>>(
            op->w[0], wt, k->k, cg, rs);
        LAUNCH_TRY("Conv2d layout");
        DNN_TRY(cudnnSetConvolutionMathType(p->cd, p->data_math));
        DNN_TRY(cudnnConvolutionBackwardData(h, &one, p->wd, wt, p->yd, dyt, p->cd, p->bwd_data,
                                             algo_ws, p->data_ws, &zero, p->xd, dxt));
        s_from_nhwc_kernel<T><<<gx, b, 0, st>>>(dxt, op->dx[0], k->c, k->h, k->w, k->h, k->w,
                                                NULL, op->dx_accumulate && op->dx_accumulate[0]);
        LAUNCH_TRY("Conv2d layout");
    }
    if (want_dw) {
        WS_TAKE(dwt, *ws, s->w);
        xt = (T *)op->saved;          /* forward's copy, when kept */
        if (!xt) {
            WS_TAKE(xt, *ws, s->x);
            s_to_nhwc_kernel<T><<<gx, b, 0, st>>>(op->x[0], xt, k->c, k->h, k->w, k->h, k->w);
            LAUNCH_TRY("Conv2d layout");
        }
        DNN_TRY(cudnnSetConvolutionMathType(p->cd, p->filter_math));
        DNN_TRY(cudnnConvolutionBackwardFilter(h, &one, p->xd, xt, p->yd, dyt, p->cd,
                                               p->bwd_filter, algo_ws, p->filter_ws, &zero,
                                               p->wd, dwt));
        s_w_from_krsc_kernel<T><<<cuda_blocks((int64_t)k->k * cg * rs), CUDA_THREADS, 0, st>>>(
            dwt, op->dw[0], k->k, cg, rs);
        LAUNCH_TRY("Conv2d layout");
    }
    return 0;
}

static int s_backward_nchw(backend_t *be, const backend_op_t *op, cuda_conv_plan_t *p,
                           cuda_ws_t *ws, const s_conv_sizes_t *s)
{
    const net_node_t *node = op->node;
    const s_conv_key_t *k = &p->key;
    cudnnHandle_t h = cuda_impl(be)->cudnn;
    const float one = 1.0f, zero = 0.0f;
    size_t algo = p->data_ws > p->filter_ws ? p->data_ws : p->filter_ws;
    const float *dy = op->dy;
    void *algo_ws = NULL;

    if (algo)
        WS_TAKE(algo_ws, *ws, algo);
    if (node->crop) {
        float *dyf;
        int planes = k->n * k->k;
        WS_TAKE(dyf, *ws, s->yfull);
        s_nchw_pad_kernel<<<cuda_blocks((int64_t)planes * p->oh * p->ow), CUDA_THREADS, 0,
                            cuda_impl(be)->stream>>>(op->dy, dyf, planes, p->oh, p->ow,
                                                     (int)node->shape.d[2],
                                                     (int)node->shape.d[3]);
        LAUNCH_TRY("Conv2d crop");
        dy = dyf;
    }
    if (op->dx && op->dx[0]) {
        const float beta = op->dx_accumulate && op->dx_accumulate[0] ? 1.0f : 0.0f;
        DNN_TRY(cudnnSetConvolutionMathType(p->cd, p->data_math));
        DNN_TRY(cudnnConvolutionBackwardData(h, &one, p->wd, op->w[0], p->yd, dy, p->cd,
                                             p->bwd_data, algo_ws, p->data_ws, &beta, p->xd,
                                             op->dx[0]));
    }
    if (op->dw && op->dw[0]) {
        DNN_TRY(cudnnSetConvolutionMathType(p->cd, p->filter_math));
        DNN_TRY(cudnnConvolutionBackwardFilter(h, &one, p->xd, op->x[0], p->yd, dy, p->cd,
                                               p->bwd_filter, algo_ws, p->filter_ws, &zero,
                                               p->wd, op->dw[0]));
    }
    return 0;
}

int cuda_conv_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    cuda_conv_plan_t *p;
    cuda_red_plan_t bp;
    s_conv_sizes_t s;
    cuda_ws_t ws = cuda_ws_of(op);

    RC_TRY(s_plan_get(be, op->net, node, &p));
    s_sizes(be, node, p, &bp, &s);

    /* The bias gradient first, from its own slice of the workspace. */
    if (node->bias && op->dw && op->dw[1]) {
        float *part = NULL;
        if (s.bias_part)
            WS_TAKE(part, ws, s.bias_part);
        RC_TRY(cuda_sum_into(be, node, &bp, op->dy, op->dw[1], 1.0f, false, part));
    }
    switch (p->key.mode) {
    case CONV_NHWC_BF16:
        return s_backward_nhwc<__nv_bfloat16>(be, op, p, &ws, &s);
    case CONV_NHWC_F32:
        return s_backward_nhwc<float>(be, op, p, &ws, &s);
    default:
        return s_backward_nchw(be, op, p, &ws, &s);
    }
}
