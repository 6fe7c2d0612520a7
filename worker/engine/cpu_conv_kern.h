/*
 * cpu_conv_kern.h - the stride-1 convolution kernels, written once and
 * compiled for several instruction sets (included by cpu_conv_direct.c
 * with KERN_SUFFIX, KERN_ATTR, KERN_VL, KERN_ROC, KERN_RW and KERN_WROC
 * defined).
 *
 * Both kernels work on planes laid out on a padded grid with row stride
 * ldw, so that a convolution tap (kh, kw) is the constant shift
 * kh*dh + kw*dw of the flat position q, and the output row never needs
 * a boundary test: positions that fall in the padding produce values
 * nobody reads.  Vectors run along q.
 *
 *  corr:  out[o][q] = sum over c, kh, kw of in[c][q + shift] * w(o,c,kh,kw)
 *         for q in [0, nq), with the weights packed in blocks of KERN_ROC
 *         output channels ([block][c][kh][kw][KERN_ROC], then the
 *         remaining channels one by one).  Register tile: KERN_ROC
 *         channels x KERN_RW vectors, single vectors at the end.
 *  wgrad: dw[o][c][kh][kw] += sum over q of g[o][q] * in[c][q + shift0 +
 *         shift], a dot product per weight; register tile KERN_WROC
 *         channels x 3 taps along kw.
 */

/* Keep a loaded vector in a register: otherwise the compiler folds the
 * load into each of the three multiply-adds that use it, and the kernel
 * becomes bound by loads. */
#if defined(__x86_64__)
#define KERN_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define KERN_IN_REGISTER(v) (void)(v)
#endif

#define KCAT2(a, b) a##b
#define KCAT(a, b) KCAT2(a, b)
#define KVEC KCAT(s_vec_, KERN_SUFFIX)
#define KVECU KCAT(s_vecu_, KERN_SUFFIX)

typedef float KVEC __attribute__((vector_size(KERN_VL * 4)));
typedef float KVECU __attribute__((vector_size(KERN_VL * 4), aligned(4)));

/* One tile of RO output channels (RO <= KERN_ROC) by RW vectors at q;
 * both known at the call, so the compiler unrolls it into registers. */
#define KERN_CORR_BLOCK(RO, RW)                                                \
    do {                                                                       \
        KVEC acc[RO][RW];                                                      \
        const float *wp = wb;                                                  \
        for (int r = 0; r < RO; r++)                                           \
            for (int v = 0; v < RW; v++)                                       \
                acc[r][v] = (KVEC){0};                                         \
        for (int c = 0; c < cin; c++) {                                        \
            const float *ip = in + c * ldi + q;                                \
            for (int kh = 0; kh < k; kh++) {                                   \
                for (int kw = 0; kw < k; kw++) {                               \
                    const float *p = ip + kh * dh + kw * dw;                   \
                    KVEC xv[RW];                                               \
                    _Pragma("GCC unroll 8") for (int v = 0; v < RW; v++)       \
                        xv[v] = *(const KVECU *)(p + KERN_VL * v);             \
                    _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)       \
                    {                                                          \
                        KVEC wv = wp[r] - (KVEC){0};                           \
                        _Pragma("GCC unroll 8") for (int v = 0; v < RW; v++)   \
                            acc[r][v] += wv * xv[v];                           \
                    }                                                          \
                    wp += RO;                                                  \
                }                                                              \
            }                                                                  \
        }                                                                      \
        for (int r = 0; r < RO; r++)                                           \
            for (int v = 0; v < RW; v++)                                       \
                *(KVECU *)(out + (o + r) * ldo + q + KERN_VL * v) = acc[r][v]; \
    } while (0)

/* All q in [0, nq) for RO output channels at o: whole tiles, then single
 * vectors (nq is a multiple of KERN_VL). */
#define KERN_CORR_ROW(RO)                                                      \
    do {                                                                       \
        const float *wb = wpk + (int64_t)o * per;                              \
        int64_t q = 0;                                                         \
        for (; q + KERN_VL * KERN_RW <= nq; q += KERN_VL * KERN_RW)            \
            KERN_CORR_BLOCK(RO, KERN_RW);                                      \
        for (; q < nq; q += KERN_VL)                                           \
            KERN_CORR_BLOCK(RO, 1);                                            \
    } while (0)

KERN_ATTR static void KCAT(s_corr_, KERN_SUFFIX)(const float *in, int cin,
                                                 int64_t ldi, int k, int64_t dh,
                                                 int64_t dw, const float *wpk,
                                                 int cout, float *out,
                                                 int64_t ldo, int64_t nq)
{
    const int64_t per = (int64_t)cin * k * k;
    int o = 0;

    for (; o + KERN_ROC <= cout; o += KERN_ROC)
        KERN_CORR_ROW(KERN_ROC);
    for (; o < cout; o++)
        KERN_CORR_ROW(1);
}

/* Sum of the lanes of a vector. */
KERN_ATTR static inline float KCAT(s_hsum_, KERN_SUFFIX)(KVEC v)
{
    float s = 0.0f;

    for (int i = 0; i < KERN_VL; i++)
        s += v[i];
    return s;
}

#define KERN_WGRAD_BLOCK(RO)                                                   \
    do {                                                                       \
        for (int c = 0; c < cin; c++) {                                        \
            for (int kh = 0; kh < k; kh++) {                                   \
                for (int kw0 = 0; kw0 < k; kw0 += 3) {                         \
                    const float *ip =                                          \
                        in + c * ldi + shift0 + kh * dh + kw0 * dw;            \
                    const int nk = k - kw0 < 3 ? k - kw0 : 3;                  \
                    KVEC acc[RO][3];                                           \
                    for (int r = 0; r < RO; r++)                               \
                        for (int j = 0; j < 3; j++)                            \
                            acc[r][j] = (KVEC){0};                             \
                    for (int64_t q = 0; q < nq; q += KERN_VL) {                \
                        KVEC xv[3], gv;                                        \
                        xv[0] = *(const KVECU *)(ip + q);                      \
                        xv[1] = nk > 1 ? *(const KVECU *)(ip + q + dw)         \
                                       : (KVEC){0};                            \
                        xv[2] = nk > 2 ? *(const KVECU *)(ip + q + 2 * dw)     \
                                       : (KVEC){0};                            \
                        _Pragma("GCC unroll 8") for (int r = 0; r < RO; r++)   \
                        {                                                      \
                            gv = *(const KVECU *)(g + (o + r) * ldg + q);      \
                            KERN_IN_REGISTER(gv);                              \
                            acc[r][0] += gv * xv[0];                           \
                            acc[r][1] += gv * xv[1];                           \
                            acc[r][2] += gv * xv[2];                           \
                        }                                                      \
                    }                                                          \
                    for (int r = 0; r < RO; r++)                               \
                        for (int j = 0; j < nk; j++)                           \
                            dwt[(((int64_t)(o + r) * cin + c) * k + kh) * k +  \
                                kw0 + j] +=                                    \
                                KCAT(s_hsum_, KERN_SUFFIX)(acc[r][j]);         \
                }                                                              \
            }                                                                  \
        }                                                                      \
    } while (0)

KERN_ATTR static void KCAT(s_wgrad_,
                           KERN_SUFFIX)(const float *g, int cout, int64_t ldg,
                                        const float *in, int cin, int64_t ldi,
                                        int64_t shift0, int k, int64_t dh,
                                        int64_t dw, float *dwt, int64_t nq)
{
    int o = 0;

    for (; o + KERN_WROC <= cout; o += KERN_WROC)
        KERN_WGRAD_BLOCK(KERN_WROC);
    for (; o < cout; o++)
        KERN_WGRAD_BLOCK(1);
}

#undef KVEC
#undef KVECU
#undef KCAT
#undef KCAT2
#undef KERN_IN_REGISTER
#undef KERN_CORR_BLOCK
#undef KERN_CORR_ROW
#undef KERN_WGRAD_BLOCK
