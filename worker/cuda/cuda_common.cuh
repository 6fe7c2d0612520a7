/*
 * cuda_common.cuh - what every file of the CUDA backend shares.
 *
 * The backend's private state (cuda_impl_t: the device, its one stream, the
 * cuDNN and cuBLAS handles, the caching memory pool, the convolution plans,
 * the state of a graph capture), the macros that check every CUDA, cuDNN
 * and cuBLAS call and turn a failure into a message in be->err naming the
 * operation and the node, and small host helpers over net_node_t shapes.
 *
 * Every operation file exports a forward and a backward with the same
 * signature as the vtable's (cuda_OPNAME_forward/backward), plus its
 * workspace and saved-state sizes; cuda_backend.cu dispatches on the op.
 *
 * Index arithmetic in kernels is 32-bit: cuda_backend.cu refuses tensors
 * (and the uncropped convolution outputs and broadcast matmul gradients
 * kept in workspaces) within 2^16 elements of 2^31 or larger (a network
 * at batch 256 is far below that), so no kernel pays for 64-bit division.
 */
#ifndef NADER_CUDA_COMMON_CUH
#define NADER_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "graph_ops.h"
#include "net.h"
}

#define CUDA_MAX_DIMS GRAPH_MAX_DIMS
#define CUDA_THREADS 256

/* One convolution shape's cuDNN descriptors and chosen algorithms. */
typedef struct cuda_conv_plan cuda_conv_plan_t;

/* A block of device memory known to the pool. */
typedef struct cuda_block {
    void *ptr;
    size_t size;    /* rounded size actually allocated */
    bool in_use;
} cuda_block_t;

/* A host-to-device copy recorded during a capture (see cuda_backend.cu). */
typedef struct cuda_staged_upload {
    void *dst;
    const void *src;
    size_t n;
    void *pinned;   /* the captured copy reads from here */
} cuda_staged_upload_t;

typedef struct cuda_impl {
    int ordinal;
    int sm_count;
    backend_precision_t precision;
    bool conv_nhwc;           /* convolutions run channels-last inside */
    size_t conv_ws_limit;     /* cap on one convolution's workspace */

    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    void *cublas_ws;
    size_t cublas_ws_size;

    /* The pool: every block ever allocated, in use or free. */
    cuda_block_t *blocks;
    int n_blocks, cap_blocks;
    int64_t bytes_cached;     /* held from the device, in use or not */

    cuda_conv_plan_t **plans;
    int n_plans, cap_plans;

    /* Capture and replay of one step. */
    bool capturing;
    cudaGraph_t graph;
    cudaGraphExec_t graph_exec;
    cudaEvent_t replay_done;
    bool replay_pending;
    cuda_staged_upload_t *staged;
    int n_staged, cap_staged;
} cuda_impl_t;

static inline cuda_impl_t *cuda_impl(backend_t *be)
{
    return (cuda_impl_t *)be->impl;
}

/* ------------------------------------------------------------ errors */

/*
 * Write "cuda NODE (OP): WHAT: MESSAGE" (or "cuda WHERE: ..." when node is
 * NULL) into be->err and return -EIO.  call is the failing call's source
 * text; only the function name before '(' is kept.
 */
int cuda_fail(backend_t *be, const net_node_t *node, const char *where,
              const char *call, const char *msg);

/* The same with a printf-style message and a chosen error code. */
int cuda_failf(backend_t *be, const net_node_t *node, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* In functions with `backend_t *be` and `const net_node_t *node` in scope. */
#define CU_TRY(call)                                                                   \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess)                                                         \
            return cuda_fail(be, node, NULL, #call, cudaGetErrorString(e_));           \
    } while (0)

#define DNN_TRY(call)                                                                  \
    do {                                                                               \
        cudnnStatus_t s_ = (call);                                                     \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                \
            return cuda_fail(be, node, NULL, #call, cudnnGetErrorString(s_));          \
    } while (0)

#define BLAS_TRY(call)                                                                 \
    do {                                                                               \
        cublasStatus_t s_ = (call);                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                               \
            return cuda_fail(be, node, NULL, #call, cublasGetStatusString(s_));        \
    } while (0)

/* After a kernel launch: report a bad configuration or an earlier fault. */
#define LAUNCH_TRY(name) CU_TRY(cudaGetLastError())

/* Propagate a nonzero return. */
#define RC_TRY(expr)                                                                   \
    do {                                                                               \
        int rc_ = (expr);                                                              \
        if (rc_)                                                                       \
            return rc_;                                                                \
    } while (0)

/* ---------------------------------------------------------- shapes */

static inline int64_t cuda_numel(const graph_shape_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

static inline const graph_shape_t *cuda_in_shape(const backend_op_t *op, int i)
{
    return &op->net->nodes[op->node->inputs[i]].shape;
}

static inline const graph_shape_t *cuda_in_shape_n(const net_t *net, const net_node_t *node,
                                                   int i)
{
    return &net->nodes[node->inputs[i]].shape;
}

/* Blocks for n elements at CUDA_THREADS per block (at least 1). */
static inline unsigned cuda_blocks(int64_t n)
{
    int64_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    return (unsigned)(b < 1 ? 1 : b);
}

/* Round up to a multiple of 256 bytes (the alignment every slice keeps). */
static inline size_t cuda_align(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

/*
 * A bump allocator over a workspace: cuda_ws_take() hands out aligned
 * slices, or NULL when the workspace is too small (a planning bug that
 * the caller reports).
 */
typedef struct cuda_ws {
    char *base;
    size_t size, used;
} cuda_ws_t;

static inline cuda_ws_t cuda_ws_of(const backend_op_t *op)
{
    cuda_ws_t w = {(char *)op->workspace, op->workspace ? op->workspace_size : 0, 0};
    return w;
}

static inline void *cuda_ws_take(cuda_ws_t *w, size_t n)
{
    size_t a = cuda_align(n);
    if (w->used + a > w->size)
        return NULL;
    void *p = w->base + w->used;
    w->used += a;
    return p;
}

/* A workspace slice or a message naming the node and how much is missing. */
#define WS_TAKE(ptr, ws, bytes)                                                        \
    do {                                                                               \
        (ptr) = (decltype(ptr))cuda_ws_take(&(ws), (bytes));                           \
        if (!(ptr))                                                                    \
            return cuda_failf(be, node, -ENOMEM,                                       \
                              "workspace of %zu bytes is too small (needs %zu more)",  \
                              (ws).size, cuda_align(bytes));                           \
    } while (0)

/* ------------------------------------------------- operation entry points */

typedef int (*cuda_op_fn)(backend_t *be, const backend_op_t *op);
typedef size_t (*cuda_size_fn)(backend_t *be, const net_t *net, const net_node_t *node);

/* cuda_conv.cu */
int cuda_conv_forward(backend_t *be, const backend_op_t *op);
int cuda_conv_backward(backend_t *be, const backend_op_t *op);
size_t cuda_conv_workspace(backend_t *be, const net_t *net, const net_node_t *node);
size_t cuda_conv_saved(backend_t *be, const net_t *net, const net_node_t *node);
void cuda_conv_plans_free(cuda_impl_t *im);

/* cuda_gemm.cu */
int cuda_linear_forward(backend_t *be, const backend_op_t *op);
int cuda_linear_backward(backend_t *be, const backend_op_t *op);
size_t cuda_linear_workspace(backend_t *be, const net_t *net, const net_node_t *node);
int cuda_matmul_forward(backend_t *be, const backend_op_t *op);
int cuda_matmul_backward(backend_t *be, const backend_op_t *op);
size_t cuda_matmul_workspace(backend_t *be, const net_t *net, const net_node_t *node);

/* cuda_pool.cu */
int cuda_pool_forward(backend_t *be, const backend_op_t *op);
int cuda_pool_backward(backend_t *be, const backend_op_t *op);
size_t cuda_pool_saved(backend_t *be, const net_t *net, const net_node_t *node);

/* cuda_norm.cu */
int cuda_bn_forward(backend_t *be, const backend_op_t *op);
int cuda_bn_backward(backend_t *be, const backend_op_t *op);
size_t cuda_bn_workspace(backend_t *be, const net_t *net, const net_node_t *node);
size_t cuda_bn_saved(backend_t *be, const net_t *net, const net_node_t *node);
int cuda_ln_forward(backend_t *be, const backend_op_t *op);
int cuda_ln_backward(backend_t *be, const backend_op_t *op);
size_t cuda_ln_workspace(backend_t *be, const net_t *net, const net_node_t *node);
size_t cuda_ln_saved(backend_t *be, const net_t *net, const net_node_t *node);

/* cuda_pointwise.cu */
int cuda_eltwise_forward(backend_t *be, const backend_op_t *op);
int cuda_eltwise_backward(backend_t *be, const backend_op_t *op);
size_t cuda_eltwise_workspace(backend_t *be, const net_t *net, const net_node_t *node);
int cuda_act_forward(backend_t *be, const backend_op_t *op);
int cuda_act_backward(backend_t *be, const backend_op_t *op);
int cuda_droppath_forward(backend_t *be, const backend_op_t *op);
int cuda_droppath_backward(backend_t *be, const backend_op_t *op);
int cuda_softmax_forward(backend_t *be, const backend_op_t *op);
int cuda_softmax_backward(backend_t *be, const backend_op_t *op);

/* cuda_reduce.cu: the mean, max and sum operations */
int cuda_reduce_forward(backend_t *be, const backend_op_t *op);
int cuda_reduce_backward(backend_t *be, const backend_op_t *op);
size_t cuda_reduce_workspace(backend_t *be, const net_t *net, const net_node_t *node);

/* cuda_layout.cu */
int cuda_permute_forward(backend_t *be, const backend_op_t *op);
int cuda_permute_backward(backend_t *be, const backend_op_t *op);
int cuda_repeat_forward(backend_t *be, const backend_op_t *op);
int cuda_repeat_backward(backend_t *be, const backend_op_t *op);
int cuda_concat_forward(backend_t *be, const backend_op_t *op);
int cuda_concat_backward(backend_t *be, const backend_op_t *op);
int cuda_reshape_forward(backend_t *be, const backend_op_t *op);
int cuda_reshape_backward(backend_t *be, const backend_op_t *op);

/* cuda_train.cu: the vtable's xent, sgd and batch */
int cuda_xent(backend_t *be, const float *logits, const int32_t *labels, int n, int classes,
              float *dlogits, float *acc);
int cuda_sgd(backend_t *be, float *w, const float *g, float *m, size_t n,
             const backend_sgd_t *p);
int cuda_batch(backend_t *be, const uint8_t *images, const int32_t *labels, int h, int w,
               const backend_batch_spec_t *spec, float *out, int32_t *labels_out);

/* ------------------------------------------------- shared device helpers */

/*
 * dst = src (accumulate false) or dst += src over n floats, on the
 * backend's stream.  dst == src with accumulate false is a no-op.
 */
int cuda_copy_or_add(backend_t *be, const net_node_t *node, float *dst, const float *src,
                     int64_t n, bool accumulate);

/* dst = alpha * src (+ dst when accumulate), n floats. */
int cuda_scale_into(backend_t *be, const net_node_t *node, float *dst, const float *src,
                    float alpha, int64_t n, bool accumulate);

#endif
