/*
 * cpu_vec.c - the elementwise row loops of the CPU backend, compiled for
 * AVX-512, AVX2 and the x86-64 baseline and chosen at load time.
 *
 * The build targets the baseline instruction set (CI machines differ),
 * which leaves the memory-bound loops of BN, ReLU, Add and the gradient
 * copies at 16 bytes per instruction; these clones (GCC target_clones,
 * resolved once by the dynamic loader) run them at the CPU's width.
 * Each function works on one contiguous row; the callers split rows
 * over threads.
 */
#include "cpu_ops.h"

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CPU_VEC_CLONES                                                         \
    __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_VEC_CLONES
#endif

CPU_VEC_CLONES void cpu_vec_relu(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

CPU_VEC_CLONES void cpu_vec_relu_grad(float *dx, const float *y,
                                      const float *dy, int64_t n, bool acc)
{
    if (acc) {
        for (int64_t i = 0; i < n; i++) {
            float g = dy[i];
            dx[i] += y[i] > 0.0f ? g : 0.0f;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
        }
    }
}

CPU_VEC_CLONES void cpu_vec_add(float *y, const float *a, const float *b,
                                int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

CPU_VEC_CLONES void cpu_vec_mul(float *y, const float *a, const float *b,
                                int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

CPU_VEC_CLONES void cpu_vec_acc(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

CPU_VEC_CLONES void cpu_vec_axpb(float *y, const float *x, float a, float b,
                                 int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * a + b;
}

CPU_VEC_CLONES void cpu_vec_sums(const float *x, float shift, int64_t n,
                                 double *sum, double *sq)
{
    float s = 0.0f, q = 0.0f;

#pragma omp simd reduction(+ : s, q)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] - shift;
        s += v;
        q += v * v;
    }
    *sum += s;
    *sq += q;
}

CPU_VEC_CLONES void cpu_vec_dot2(const float *dy, const float *x, float m,
                                 int64_t n, double *sdy, double *sdyx)
{
    float p1 = 0.0f, p2 = 0.0f;

#pragma omp simd reduction(+ : p1, p2)
    for (int64_t i = 0; i < n; i++) {
        p1 += dy[i];
        p2 += dy[i] * (x[i] - m);
    }
    *sdy += p1;
    *sdyx += p2;
}

CPU_VEC_CLONES void cpu_vec_bn_grad(float *dx, const float *dy, const float *x,
                                    float m, float k1, float k2, float k3,
                                    int64_t n, bool acc)
{
    if (acc) {
        for (int64_t i = 0; i < n; i++)
            dx[i] += k1 * dy[i] - k2 - k3 * (x[i] - m);
    } else {
        for (int64_t i = 0; i < n; i++)
            dx[i] = k1 * dy[i] - k2 - k3 * (x[i] - m);
    }
}
