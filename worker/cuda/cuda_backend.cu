/*
 * cuda_backend.cu - the CUDA backend's vtable (backend.h): opening a
 * device, memory, transfers, dispatch of operations to their files, and
 * capture and replay of one training step with CUDA Graphs.
 *
 * Everything runs on one non-blocking stream per backend, with cuDNN and
 * cuBLAS bound to it, so the host only waits in download() and sync().
 *
 * Memory goes through a caching pool: cudaMalloc and cudaFree synchronise
 * the whole device, so freed blocks are kept and handed out again for
 * requests of about their size (never more than a quarter too large);
 * only when cudaMalloc fails are the cached blocks returned and the
 * allocation retried.  bytes_in_use and peak_bytes count the blocks handed
 * out, rounded as allocated.
 *
 * Capture.  capture_begin() starts a stream capture; the calls of one step
 * are recorded, not run; capture_end() instantiates the graph, still
 * running nothing; each replay() runs the step, the first one included.
 * A host-to-device upload made during capture is recorded as a copy from
 * a pinned staging buffer, and replay() refreshes every staging buffer
 * from the same host pointer before launching (the contract: same
 * pointers every time), after waiting for the previous replay to have
 * finished reading them.  Values
 * passed by value (the SGD learning rate, say) are frozen in the graph:
 * capture again when they change.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "cuda_common.cuh"
#include "cuda_plan.h"

#define POOL_SMALL (1u << 20)
#define CUBLAS_WS_BYTES (32u << 20)
#define CONV_WS_DEFAULT_MB 64

/* ------------------------------------------------------------------ errors */

int cuda_failf(backend_t *be, const net_node_t *node, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (node)
        snprintf(be->err, sizeof(be->err), "%.31s node %.47s (%.20s): %.200s", be->device,
                 node->name, graph_op_name(node->op), msg);
    else
        snprintf(be->err, sizeof(be->err), "%.31s: %.250s", be->device, msg);
    return code;
}

int cuda_fail(backend_t *be, const net_node_t *node, const char *where, const char *call,
              const char *msg)
{
    int len = 0;
    while (call[len] && call[len] != '(' && len < 64)
        len++;
    if (where)
        return cuda_failf(be, node, -EIO, "%s: %.*s: %s", where, len, call, msg);
    return cuda_failf(be, node, -EIO, "%.*s: %s", len, call, msg);
}

/* Each public entry makes the backend's device current (cheap when it is). */
static int s_enter(backend_t *be)
{
    const net_node_t *node = NULL;
    int cur = -1;
    cudaError_t e = cudaGetDevice(&cur);
    if (e == cudaSuccess && cur == cuda_impl(be)->ordinal)
        return 0;
    CU_TRY(cudaSetDevice(cuda_impl(be)->ordinal));
    return 0;
}

/* ------------------------------------------------------------------ memory */

static size_t s_round(size_t n)
{
    if (n == 0)
        n = 1;
    if (n < POOL_SMALL)
        return (n + 511) & ~(size_t)511;
    return (n + POOL_SMALL - 1) & ~(size_t)(POOL_SMALL - 1);
}

/* Return every cached free block to the device. */
static void s_pool_trim(cuda_impl_t *im)
{
    int j = 0;
    for (int i = 0; i < im->n_blocks; i++) {
        if (!im->blocks[i].in_use) {
            cudaFree(im->blocks[i].ptr);
            im->bytes_cached -= (int64_t)im->blocks[i].size;
        } else {
            im->blocks[j++] = im->blocks[i];
        }
    }
    im->n_blocks = j;
}

static void *s_alloc(backend_t *be, size_t bytes)
{
    cuda_impl_t *im = cuda_impl(be);
    size_t need = s_round(bytes);
    int best = -1;
    void *p = NULL;

    if (im->capturing) {
        cuda_failf(be, NULL, -EINVAL, "alloc of %zu bytes during a capture", bytes);
        return NULL;
    }
    if (s_enter(be))
        return NULL;
    for (int i = 0; i < im->n_blocks; i++) {
        cuda_block_t *b = &im->blocks[i];
        if (b->in_use || b->size < need || b->size > need + need / 4)
            continue;
        if (best < 0 || b->size < im->blocks[best].size)
            best = i;
    }
    if (best >= 0) {
        im->blocks[best].in_use = true;
        p = im->blocks[best].ptr;
        need = im->blocks[best].size;
    } else {
        if (im->n_blocks == im->cap_blocks) {
            int cap = im->cap_blocks ? 2 * im->cap_blocks : 64;
            cuda_block_t *v = (cuda_block_t *)realloc(im->blocks, (size_t)cap * sizeof(*v));
            if (!v) {
                cuda_failf(be, NULL, -ENOMEM, "alloc: out of host memory for the pool");
                return NULL;
            }
            im->blocks = v;
            im->cap_blocks = cap;
        }
        cudaError_t e = cudaMalloc(&p, need);
        if (e != cudaSuccess) {
            cudaGetLastError();
            s_pool_trim(im);
            e = cudaMalloc(&p, need);
        }
        if (e != cudaSuccess) {
            cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            cuda_failf(be, NULL, -ENOMEM,
                       "alloc of %zu bytes failed: %s (%zu MiB free of %zu MiB, %lld MiB in "
                       "use by this backend)",
                       need, cudaGetErrorString(e), free_b >> 20, total_b >> 20,
                       (long long)(be->bytes_in_use >> 20));
            return NULL;
        }
        im->blocks[im->n_blocks].ptr = p;
        im->blocks[im->n_blocks].size = need;
        im->blocks[im->n_blocks].in_use = true;
        im->n_blocks++;
        im->bytes_cached += (int64_t)need;
    }
    be->bytes_in_use += (int64_t)need;
    if (be->bytes_in_use > be->peak_bytes)
        be->peak_bytes = be->bytes_in_use;
    return p;
}

static void s_free(backend_t *be, void *p)
{
    cuda_impl_t *im = cuda_impl(be);
    if (!p)
        return;
    for (int i = 0; i < im->n_blocks; i++)
        if (im->blocks[i].ptr == p && im->blocks[i].in_use) {
            im->blocks[i].in_use = false;
            be->bytes_in_use -= (int64_t)im->blocks[i].size;
            return;
        }
}

/* --------------------------------------------------------------- transfers */

static int s_stage(backend_t *be, void *dst, const void *src, size_t n)
{
    cuda_impl_t *im = cuda_impl(be);
    const net_node_t *node = NULL;
    cuda_staged_upload_t *u;

    if (im->n_staged == im->cap_staged) {
        int cap = im->cap_staged ? 2 * im->cap_staged : 16;
        cuda_staged_upload_t *v =
            (cuda_staged_upload_t *)realloc(im->staged, (size_t)cap * sizeof(*v));
        if (!v)
            return cuda_failf(be, NULL, -ENOMEM, "upload: out of host memory while capturing");
        im->staged = v;
        im->cap_staged = cap;
    }
    u = &im->staged[im->n_staged];
    u->dst = dst;
    u->src = src;
    u->n = n;
    u->pinned = NULL;
    CU_TRY(cudaHostAlloc(&u->pinned, n, cudaHostAllocDefault));
    im->n_staged++;
    memcpy(u->pinned, src, n);
    CU_TRY(cudaMemcpyAsync(dst, u->pinned, n, cudaMemcpyHostToDevice, im->stream));
    return 0;
}

static int s_upload(backend_t *be, void *dst, const void *src, size_t n)
{
    const net_node_t *node = NULL;
    if (n == 0)
        return 0;
    RC_TRY(s_enter(be));
    if (cuda_impl(be)->capturing)
        return s_stage(be, dst, src, n);
    CU_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cuda_impl(be)->stream));
    return 0;
}

static int s_download(backend_t *be, void *dst, const void *src, size_t n)
{
    const net_node_t *node = NULL;
    if (n == 0)
        return 0;
    if (cuda_impl(be)->capturing)
        return cuda_failf(be, NULL, -EINVAL, "download during a capture");
    RC_TRY(s_enter(be));
    CU_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cuda_impl(be)->stream));
    CU_TRY(cudaStreamSynchronize(cuda_impl(be)->stream));
    return 0;
}

static int s_copy(backend_t *be, void *dst, const void *src, size_t n)
{
    const net_node_t *node = NULL;
    if (n == 0 || dst == src)
        return 0;
    RC_TRY(s_enter(be));
    CU_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, cuda_impl(be)->stream));
    return 0;
}

static int s_zero(backend_t *be, void *dst, size_t n)
{
    const net_node_t *node = NULL;
    if (n == 0)
        return 0;
    RC_TRY(s_enter(be));
    CU_TRY(cudaMemsetAsync(dst, 0, n, cuda_impl(be)->stream));
    return 0;
}

static int s_sync(backend_t *be)
{
    const net_node_t *node = NULL;
    if (cuda_impl(be)->capturing)
        return cuda_failf(be, NULL, -EINVAL, "sync during a capture");
    RC_TRY(s_enter(be));
    CU_TRY(cudaStreamSynchronize(cuda_impl(be)->stream));
    return 0;
}

/* ------------------------------------------------------------ dispatch */

typedef struct s_op_entry {
    cuda_op_fn fwd, bwd;
    cuda_size_fn workspace, saved;
} s_op_entry_t;

/* The functions behind each operation; fwd is NULL for what never runs. */
static s_op_entry_t s_entry(graph_op_t op)
{
    s_op_entry_t e = {NULL, NULL, NULL, NULL};
    switch (op) {
    case GRAPH_OP_CONV2D:
        e = {cuda_conv_forward, cuda_conv_backward, cuda_conv_workspace, cuda_conv_saved};
        break;
    case GRAPH_OP_LINEAR:
        e = {cuda_linear_forward, cuda_linear_backward, cuda_linear_workspace, NULL};
        break;
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
        e = {cuda_pool_forward, cuda_pool_backward, NULL, NULL};
        break;
    case GRAPH_OP_MAXPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
        e = {cuda_pool_forward, cuda_pool_backward, NULL, cuda_pool_saved};
        break;
    case GRAPH_OP_ADD:
    case GRAPH_OP_MUL:
        e = {cuda_eltwise_forward, cuda_eltwise_backward, cuda_eltwise_workspace, NULL};
        break;
    case GRAPH_OP_MULTIPLY:
        e = {cuda_matmul_forward, cuda_matmul_backward, cuda_matmul_workspace, NULL};
        break;
    case GRAPH_OP_CONCAT:
        e = {cuda_concat_forward, cuda_concat_backward, NULL, NULL};
        break;
    case GRAPH_OP_MEAN:
    case GRAPH_OP_MAX:
    case GRAPH_OP_SUM:
        e = {cuda_reduce_forward, cuda_reduce_backward, cuda_reduce_workspace, NULL};
        break;
    case GRAPH_OP_SOFTMAX:
        e = {cuda_softmax_forward, cuda_softmax_backward, NULL, NULL};
        break;
    case GRAPH_OP_RELU:
    case GRAPH_OP_GELU:
    case GRAPH_OP_SIGMOID:
        e = {cuda_act_forward, cuda_act_backward, NULL, NULL};
        break;
    case GRAPH_OP_BN:
        e = {cuda_bn_forward, cuda_bn_backward, cuda_bn_workspace, cuda_bn_saved};
        break;
    case GRAPH_OP_LN:
        e = {cuda_ln_forward, cuda_ln_backward, cuda_ln_workspace, cuda_ln_saved};
        break;
    case GRAPH_OP_PERMUTE:
        e = {cuda_permute_forward, cuda_permute_backward, NULL, NULL};
        break;
    case GRAPH_OP_REPEAT:
        e = {cuda_repeat_forward, cuda_repeat_backward, NULL, NULL};
        break;
    case GRAPH_OP_RESHAPE:
    case GRAPH_OP_OUTPUT:     /* a block's output, if ever run: identity */
        e = {cuda_reshape_forward, cuda_reshape_backward, NULL, NULL};
        break;
    case GRAPH_OP_DROPPATH:
        e = {cuda_droppath_forward, cuda_droppath_backward, NULL, NULL};
        break;
    default:
        break;
    }
    return e;
}

/*
 * Whether n elements fit the kernels' 32-bit index arithmetic.  The bound
 * keeps a margin below 2^31: a grid's last block computes indices up to a
 * block past the end (and the reduction plan rounds slices up by 2047)
 * before comparing them with n.
 */
static bool s_fits(int64_t n)
{
    return n <= (int64_t)INT32_MAX - 65536;
}

static bool s_small(const graph_shape_t *s)
{
    return s_fits(cuda_numel(s));
}

/* Why node cannot run here, or NULL when it can. */
static const char *s_unsupported(const net_t *net, const net_node_t *node)
{
    if ((unsigned)node->op >= GRAPH_OP_COUNT || !s_entry(node->op).fwd)
        return "not an operation the engine executes";
    if (!s_small(&node->shape))
        return "output of 2^31 elements or more";
    for (int i = 0; i < node->n_inputs; i++)
        if (!s_small(cuda_in_shape_n(net, node, i)))
            return "input of 2^31 elements or more";
    switch (node->op) {
    case GRAPH_OP_CONV2D:
        if (node->shape.ndim != 4 || cuda_in_shape_n(net, node, 0)->ndim != 4)
            return "Conv2d needs 4-D input and output";
        /* with crop, the full output (a row and a column more) is indexed */
        if (node->crop && !s_fits(node->shape.d[0] * node->shape.d[1] *
                                  (node->shape.d[2] + 1) * (node->shape.d[3] + 1)))
            return "uncropped output of 2^31 elements or more";
        break;
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_MAXPOOL2D:
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
    case GRAPH_OP_BN:
        if (node->shape.ndim < 2)
            return "needs at least 2 dimensions";
        break;
    case GRAPH_OP_ADD:
    case GRAPH_OP_MUL:
        if (node->n_inputs > 15)
            return "more than 15 inputs";
        break;
    case GRAPH_OP_MULTIPLY: {
        const graph_shape_t *sa = cuda_in_shape_n(net, node, 0);
        const graph_shape_t *sb = cuda_in_shape_n(net, node, 1);
        cuda_mm_plan_t g;
        if (sa->ndim > 6 || sb->ndim > 6 ||
            !cuda_mm_plan_make(&g, sa->ndim, sa->d, sb->ndim, sb->d))
            return "more than 4 batch dimensions";
        /* a broadcast operand's gradient is formed for every output batch,
         * then summed: that buffer is indexed too */
        if ((g.a_bcast && !s_fits((int64_t)g.nb * g.n * g.k)) ||
            (g.b_bcast && !s_fits((int64_t)g.nb * g.k * g.m)))
            return "broadcast operand's gradient buffer of 2^31 elements or more";
        break;
    }
    default:
        break;
    }
    return NULL;
}

static bool s_supports(backend_t *be, const net_node_t *node)
{
    (void)be;
    if ((unsigned)node->op >= GRAPH_OP_COUNT || !s_entry(node->op).fwd)
        return false;
    if (!s_small(&node->shape))
        return false;
    if ((node->op == GRAPH_OP_CONV2D && node->shape.ndim != 4) ||
        ((node->op == GRAPH_OP_ADD || node->op == GRAPH_OP_MUL) && node->n_inputs > 15))
        return false;
    return true;
}

static size_t s_saved_bytes(backend_t *be, const net_t *net, const net_node_t *node)
{
    cuda_size_fn f = s_entry(node->op).saved;
    return f ? f(be, net, node) : 0;
}

static size_t s_workspace_bytes(backend_t *be, const net_t *net, const net_node_t *node)
{
    cuda_size_fn f = s_entry(node->op).workspace;
    if (!f || s_enter(be) || s_unsupported(net, node))
        return 0;
    return f(be, net, node);
}

static int s_run(backend_t *be, const backend_op_t *op, bool backward)
{
    const net_node_t *node = op->node;
    const char *why = s_unsupported(op->net, node);

    if (why)
        return cuda_failf(be, node, -ENOTSUP, "%s", why);
    RC_TRY(s_enter(be));
    s_op_entry_t e = s_entry(node->op);
    return backward ? e.bwd(be, op) : e.fwd(be, op);
}

static int s_forward(backend_t *be, const backend_op_t *op)
{
    return s_run(be, op, false);
}

static int s_backward(backend_t *be, const backend_op_t *op)
{
    return s_run(be, op, true);
}

static int s_xent(backend_t *be, const float *logits, const int32_t *labels, int n,
                  int classes, float *dlogits, float *acc)
{
    RC_TRY(s_enter(be));
    return cuda_xent(be, logits, labels, n, classes, dlogits, acc);
}

static int s_sgd(backend_t *be, float *w, const float *g, float *m, size_t n,
                 const backend_sgd_t *p)
{
    RC_TRY(s_enter(be));
    return cuda_sgd(be, w, g, m, n, p);
}

static int s_batch(backend_t *be, const uint8_t *images, const int32_t *labels, int h, int w,
                   const backend_batch_spec_t *spec, float *out, int32_t *labels_out)
{
    RC_TRY(s_enter(be));
    return cuda_batch(be, images, labels, h, w, spec, out, labels_out);
}

/* ---------------------------------------------------------------- capture */

static void s_capture_clear(cuda_impl_t *im)
{
    if (im->replay_pending) {
        cudaEventSynchronize(im->replay_done);
        im->replay_pending = false;
    }
    if (im->graph_exec)
        cudaGraphExecDestroy(im->graph_exec);
    if (im->graph)
        cudaGraphDestroy(im->graph);
    im->graph_exec = NULL;
    im->graph = NULL;
    for (int i = 0; i < im->n_staged; i++)
        cudaFreeHost(im->staged[i].pinned);
    im->n_staged = 0;
}

static int s_capture_begin(backend_t *be)
{
    cuda_impl_t *im = cuda_impl(be);
    const net_node_t *node = NULL;

    if (im->capturing)
        return cuda_failf(be, NULL, -EINVAL, "capture_begin while already capturing");
    RC_TRY(s_enter(be));
    CU_TRY(cudaStreamSynchronize(im->stream));
    s_capture_clear(im);
    CU_TRY(cudaStreamBeginCapture(im->stream, cudaStreamCaptureModeRelaxed));
    im->capturing = true;
    return 0;
}

static int s_launch(backend_t *be)
{
    cuda_impl_t *im = cuda_impl(be);
    const net_node_t *node = NULL;
    CU_TRY(cudaGraphLaunch(im->graph_exec, im->stream));
    CU_TRY(cudaEventRecord(im->replay_done, im->stream));
    im->replay_pending = true;
    return 0;
}

static int s_capture_end(backend_t *be)
{
    cuda_impl_t *im = cuda_impl(be);
    cudaGraph_t g = NULL;

    if (!im->capturing)
        return cuda_failf(be, NULL, -EINVAL, "capture_end without capture_begin");
    im->capturing = false;
    cudaError_t e = cudaStreamEndCapture(im->stream, &g);
    if (e != cudaSuccess) {
        if (g)
            cudaGraphDestroy(g);
        cudaGetLastError();   /* not left for the next launch check */
        return cuda_fail(be, NULL, "capture_end (a call made while capturing is not "
                                   "capturable, or one failed)",
                         "cudaStreamEndCapture", cudaGetErrorString(e));
    }
    im->graph = g;
    e = cudaGraphInstantiate(&im->graph_exec, g, 0);
    if (e != cudaSuccess) {
        im->graph_exec = NULL;
        s_capture_clear(im);
        cudaGetLastError();
        return cuda_fail(be, NULL, "capture_end", "cudaGraphInstantiate",
                         cudaGetErrorString(e));
    }
    return 0;
}

static int s_replay(backend_t *be)
{
    cuda_impl_t *im = cuda_impl(be);
    const net_node_t *node = NULL;

    if (!im->graph_exec)
        return cuda_failf(be, NULL, -EINVAL, "replay without a captured step");
    RC_TRY(s_enter(be));
    if (im->replay_pending && im->n_staged > 0) {
        CU_TRY(cudaEventSynchronize(im->replay_done));
        im->replay_pending = false;
    }
    for (int i = 0; i < im->n_staged; i++)
        memcpy(im->staged[i].pinned, im->staged[i].src, im->staged[i].n);
    return s_launch(be);
}

/* ------------------------------------------------------------ life cycle */

static void s_destroy(backend_t *be)
{
    cuda_impl_t *im;

    if (!be)
        return;
    im = cuda_impl(be);
    if (im) {
        cudaSetDevice(im->ordinal);
        if (im->capturing) {
            cudaGraph_t g = NULL;
            cudaStreamEndCapture(im->stream, &g);
            if (g)
                cudaGraphDestroy(g);
            im->capturing = false;
        }
        if (im->stream)
            cudaStreamSynchronize(im->stream);
        s_capture_clear(im);
        free(im->staged);
        cuda_conv_plans_free(im);
        if (im->cudnn)
            cudnnDestroy(im->cudnn);
        if (im->cublas)
            cublasDestroy(im->cublas);
        if (im->cublas_ws)
            cudaFree(im->cublas_ws);
        for (int i = 0; i < im->n_blocks; i++)
            cudaFree(im->blocks[i].ptr);
        free(im->blocks);
        if (im->replay_done)
            cudaEventDestroy(im->replay_done);
        if (im->stream)
            cudaStreamDestroy(im->stream);
        free(im);
    }
    free(be);
}

static const backend_vtable_t s_vtable = {
    "cuda",       s_alloc,         s_free,           s_upload,      s_download, s_copy,
    s_zero,       s_sync,          s_supports,       s_saved_bytes, s_workspace_bytes,
    s_forward,    s_backward,      s_xent,           s_sgd,         s_batch,
    s_capture_begin, s_capture_end, s_replay,        s_destroy,
};

extern "C" int backend_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

/* Read the environment's tuning knobs (documented in docs/gpu.md). */
static void s_read_env(cuda_impl_t *im)
{
    const char *s = getenv("NADER_CUDA_CONV");
    const char *mb = getenv("NADER_CUDA_CONV_WS_MB");
    im->conv_nhwc = s && strcmp(s, "nhwc") == 0;
    im->conv_ws_limit = (size_t)CONV_WS_DEFAULT_MB << 20;
    if (mb && atoi(mb) > 0)
        im->conv_ws_limit = (size_t)atoi(mb) << 20;
}

static int s_open(backend_t *be, int ordinal, const backend_options_t *opt)
{
    cuda_impl_t *im = cuda_impl(be);
    const net_node_t *node = NULL;
    cudaDeviceProp prop;
    int count = backend_cuda_device_count();

    if (ordinal < 0 || ordinal >= count)
        return cuda_failf(be, NULL, -ENODEV, "no such device (this machine has %d CUDA device%s)",
                          count, count == 1 ? "" : "s");
    im->ordinal = ordinal;
    im->precision = opt ? opt->precision : BACKEND_FP32;
    s_read_env(im);
    CU_TRY(cudaSetDevice(ordinal));
    CU_TRY(cudaGetDeviceProperties(&prop, ordinal));
    im->sm_count = prop.multiProcessorCount;
    snprintf(be->description, sizeof(be->description), "%.64s, %.0f GiB, %d SMs, cc %d.%d",
             prop.name, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
             prop.multiProcessorCount, prop.major, prop.minor);
    if (prop.major < 7 || (prop.major == 7 && prop.minor < 5))
        return cuda_failf(be, NULL, -ENOTSUP,
                          "compute capability %d.%d is too old (this build needs 7.5 or newer)",
                          prop.major, prop.minor);
    /* bf16 tensor-core convolutions and GEMMs start with Ampere */
    if (im->precision == BACKEND_BF16 && prop.major < 8)
        return cuda_failf(be, NULL, -ENOTSUP,
                          "--precision bf16 needs compute capability 8.0 or newer (this "
                          "device has %d.%d); use fp32",
                          prop.major, prop.minor);
    CU_TRY(cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking));
    CU_TRY(cudaEventCreateWithFlags(&im->replay_done, cudaEventDisableTiming));
    DNN_TRY(cudnnCreate(&im->cudnn));
    DNN_TRY(cudnnSetStream(im->cudnn, im->stream));
    BLAS_TRY(cublasCreate(&im->cublas));
    BLAS_TRY(cublasSetStream(im->cublas, im->stream));
    CU_TRY(cudaMalloc(&im->cublas_ws, CUBLAS_WS_BYTES));
    im->cublas_ws_size = CUBLAS_WS_BYTES;
    BLAS_TRY(cublasSetWorkspace(im->cublas, im->cublas_ws, im->cublas_ws_size));
    return 0;
}

extern "C" backend_t *backend_cuda_new(int ordinal, const backend_options_t *opt, char *err,
                                       size_t errlen)
{
    backend_t *be = (backend_t *)calloc(1, sizeof(*be));
    cuda_impl_t *im = (cuda_impl_t *)calloc(1, sizeof(*im));

    if (!be || !im) {
        free(be);
        free(im);
        if (err && errlen)
            snprintf(err, errlen, "cuda:%d: out of host memory", ordinal);
        return NULL;
    }
    be->vt = &s_vtable;
    be->impl = im;
    be->threads = opt ? opt->threads : 0;
    snprintf(be->device, sizeof(be->device), "cuda:%d", ordinal);
    if (s_open(be, ordinal, opt)) {
        if (err && errlen)
            snprintf(err, errlen, "%s", be->err);
        s_destroy(be);
        return NULL;
    }
    return be;
}
