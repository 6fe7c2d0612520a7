/*
 * cpu_conv.h - what cpu_conv.c (paths, im2col) and cpu_conv_direct.c
 * (the stride-1 kernels on padded grids) share: the geometry of one
 * Conv2d node.  Internal to the CPU backend.
 */
#ifndef NADER_CPU_CONV_H
#define NADER_CPU_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu_ops.h"

typedef enum conv_path {
    CONV_PATH_POINTWISE, /* 1x1, stride 1, no padding: plain GEMMs */
    CONV_PATH_DEPTHWISE, /* strided, one input channel per group */
    CONV_PATH_MASKED,    /* stride 1, same size, AVX-512: in place */
    CONV_PATH_DIRECT,    /* other stride 1: padded-grid kernels */
    CONV_PATH_IM2COL     /* everything else */
} conv_path_t;

typedef struct conv_geom {
    int n, ci, h, w, co, oh, ow;
    int k, s, d, p, g;
    int e;        /* effective kernel d*(k-1)+1 */
    int cig, cog; /* channels per group */
    int kk;       /* GEMM inner size per group: cig*k*k */
    int rows;     /* im2col rows: ci*k*k */
    int64_t ihw, ohw;
    int64_t wsz; /* weight elements */
    conv_path_t path;
    int nb; /* images per batch of work */
    int threads;

    /* CONV_PATH_DIRECT: every image of a batch is one hb x wb plane per
     * channel, image j's starting `plane` floats after image j-1's (the
     * planes overlap in their zero rows); a channel's nb planes take nq
     * floats (rounded up to the kernels' block), with `margin` floats
     * before the first channel and after the last. */
    int hb, wb;
    int64_t plane, nq, margin;
} conv_geom_t;

/* Fill g for the node; false when the shapes do not fit its arguments. */
bool cpu_conv_geom(const net_t *net, const net_node_t *node,
                   const backend_t *be, conv_geom_t *g);

/* Images per batch of work: at most `most`, with the n images in a
 * number of batches that the threads share evenly. */
int cpu_conv_batch(int n, int threads, int most);

/* Direct path: the workspace it needs (bytes), forward and backward.
 * dx and dw may be NULL. */
size_t cpu_conv_direct_workspace(const conv_geom_t *g);
void cpu_conv_direct_forward(const conv_geom_t *g, const float *x,
                             const float *w, const float *bias, float *y,
                             float *ws);
void cpu_conv_direct_backward(const conv_geom_t *g, const float *x,
                              const float *w, const float *dy, float *dx,
                              bool acc, float *dw, float *ws);

/* Masked path (cpu_conv_masked.c): whether it takes the node (stride 1,
 * output the input's size, AVX-512 kernels chosen), its workspace
 * (bytes), forward and backward.  dx and dw may be NULL. */
bool cpu_conv_masked_ok(const conv_geom_t *g);
size_t cpu_conv_masked_workspace(const conv_geom_t *g);
void cpu_conv_masked_forward(const conv_geom_t *g, const float *x,
                             const float *w, const float *bias, float *y,
                             float *ws);
void cpu_conv_masked_backward(const conv_geom_t *g, const float *x,
                              const float *w, const float *dy, float *dx,
                              bool acc, float *dw, float *ws);

/* The name of the kernel set in use ("avx512", "avx2", "generic"). */
const char *cpu_conv_isa(void);

/* Choose the kernels for this CPU once (NADER_CPU_ISA=avx512, avx2 or
 * generic overrides, for tests); returns the name of the set chosen. */
const char *cpu_conv_isa_init(void);

#endif
