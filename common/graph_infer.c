/*
 * graph_infer.c - shapes, parameters and multiply-accumulates of a
 * linked block at one set of bindings: rules 4 (argument values) to 6.
 *
 * This is the hot path of the width search (every width tried runs it
 * once per distinct block instance), so it allocates nothing for blocks
 * of ordinary size and can stop at the first failing node.  Shapes carry
 * a mask of the dimensions that are the batch B, so that messages print
 * (B,32,16,16) and so that an operation that would mix the images of a
 * batch (a Linear over B, a softmax along B) is caught whatever batch
 * size the check runs at.
 *
 * MACs are counted for Conv2d, Linear and multiply only; pooling,
 * normalisation, activations and elementwise operations count zero
 * (docs/graph-format.md).
 */
#include "graph_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct infer {
    const graph_block_t *b;
    const graph_bindings_t *bind;
    const graph_shape_t *in_shape;
    int stem_scale;
    graph_resolved_t *res;
    graph_errors_t *errs;
    int added;
} infer_t;

/* --------------------------------------------------------------- shapes */

char *graph_shape_format(const graph_shape_t *s, char *buf, size_t len)
{
    size_t n = 0;

    if (len == 0)
        return buf;
    n += (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < s->ndim && n < len; i++) {
        if (s->batch_mask & (1u << i))
            n += (size_t)snprintf(buf + n, len - n, "%sB", i ? "," : "");
        else
            n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? "," : "",
                                  (long long)s->d[i]);
    }
    if (n < len)
        snprintf(buf + n, len - n, ")");
    return buf;
}

static const char *s_fmt(const graph_shape_t *s, char *buf)
{
    return graph_shape_format(s, buf, 96);
}

int64_t graph_same_out(int64_t in, int64_t k, int64_t s, int64_t d,
                       int64_t *pad, bool *crop)
{
    int64_t e = d * (k - 1) + 1;
    int64_t p = e > s ? (e - s + 1) / 2 : 0;
    int64_t span = in + 2 * p - e;
    bool c = 2 * p == e;

    *pad = p;
    *crop = c;
    if (span < 0)
        return 0;
    return span / s + 1 - (c ? 1 : 0);
}

/* ---------------------------------------------------------------- errors */

static void s_err(infer_t *x, graph_rule_t rule, int pos, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static void s_err(infer_t *x, graph_rule_t rule, int pos, const char *fmt,
                  ...)
{
    char msg[256], prefix[128];
    const graph_node_t *n = &x->b->nodes[pos];
    va_list ap;

    x->added++;
    if (!x->errs)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    graph_node_prefix(x->b, n, prefix, sizeof prefix);
    graph_errors_add(x->errs, rule, graph_role_name(x->b->role), n->index,
                     n->line, "%s: %s", prefix, msg);
}

/* " at C=18, dim=36" for the variables an expression uses. */
static void s_at(const graph_expr_t *e, const graph_bindings_t *b,
                 char *buf, size_t len)
{
    const int64_t v[GRAPH_VAR_COUNT] = {b->B, b->C, b->dim, b->H, b->W};
    unsigned used = graph_expr_vars(e);
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; i < GRAPH_VAR_COUNT && n < len; i++)
        if (used & (1u << i))
            n += (size_t)snprintf(buf + n, len - n, "%s%s=%lld",
                                  n ? ", " : " at ",
                                  graph_var_name((graph_var_t)i),
                                  (long long)v[i]);
}

/* ------------------------------------------------------------ arguments */

typedef enum want { WANT_SIZE, WANT_INT, WANT_REAL } want_t;

/* Evaluate one expression as a positive integer (SIZE), an integer (INT)
 * or a real (REAL, into *real).  name is the argument's name. */
static int s_eval(infer_t *x, int pos, const char *name,
                  const graph_expr_t *e, want_t want, int64_t *out,
                  double *real)
{
    char text[96], value[48], at[96];
    int64_t num, den;

    if (!e) {
        s_err(x, GRAPH_RULE_ARG, pos, "%s could not be read", name);
        return -1;
    }
    if (graph_expr_eval(e, x->bind, &num, &den) < 0) {
        if (!x->errs) {
            x->added++;
            return -1;
        }
        graph_expr_format(e, false, text, sizeof text);
        s_at(e, x->bind, at, sizeof at);
        s_err(x, GRAPH_RULE_ARG, pos,
              "%s = %s cannot be evaluated (division by zero or a number "
              "too large)%s", name, text, at);
        return -1;
    }
    if (want == WANT_REAL) {
        *real = (double)num / (double)den;
        return 0;
    }
    if (den == 1 && (want == WANT_INT || num > 0)) {
        if (num > GRAPH_MAX_DIM || num < -GRAPH_MAX_DIM) {
            s_err(x, GRAPH_RULE_ARG, pos, "%s = %lld is too large", name,
                  (long long)num);
            return -1;
        }
        *out = num;
        return 0;
    }
    if (!x->errs) {
        x->added++;
        return -1;
    }
    graph_expr_format(e, false, text, sizeof text);
    graph_rational_format(num, den, value, sizeof value);
    s_at(e, x->bind, at, sizeof at);
    bool literal = strcmp(text, value) == 0;
    s_err(x, GRAPH_RULE_ARG, pos, "%s = %s%s%s is not a %s%s", name, text,
          literal ? "" : " = ", literal ? "" : value,
          den != 1 ? "whole number" : "positive integer", at);
    return -1;
}

/* A table argument (slot) of a fixed-argument op, or its default. */
static int s_arg(infer_t *x, int pos, int slot, want_t want, int64_t *out,
                 double *real)
{
    const graph_node_t *n = &x->b->nodes[pos];
    const graph_arg_info_t *ai = &graph_op_info(n->op)->args[slot];
    const graph_arg_t *a = graph_node_arg(n, slot);

    if (!a) {
        if (!ai->dflt) {
            s_err(x, GRAPH_RULE_ARG, pos, "missing required argument %s",
                  ai->name);
            return -1;
        }
        if (want == WANT_REAL)
            *real = strtod(ai->dflt, NULL);
        else
            *out = strtoll(ai->dflt, NULL, 10);
        return 0;
    }
    if (a->n_items != 1) {
        s_err(x, GRAPH_RULE_ARG, pos, "%s must be one value", ai->name);
        return -1;
    }
    return s_eval(x, pos, ai->name, a->items[0], want, out, real);
}

/* Normalise dim d for a rank-`ndim` shape; -1 when out of range. */
static int s_dim(infer_t *x, int pos, int64_t d, const graph_shape_t *s)
{
    char sb[96];

    if (d < -s->ndim || d >= s->ndim) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "dim %lld is out of range for %s (use 0..%d or -%d..-1)",
              (long long)d, s_fmt(s, sb), s->ndim - 1, s->ndim);
        return -1;
    }
    return (int)(d < 0 ? d + s->ndim : d);
}

static bool s_mul(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static int64_t s_numel(const graph_shape_t *s)
{
    int64_t n = 1;

    for (int i = 0; i < s->ndim; i++)
        if (!s_mul(n, s->d[i], &n))
            return -1;
    return n;
}

/* Reject sizes past the limits that keep counts in 64 bits. */
static int s_check_size(infer_t *x, int pos, const graph_shape_t *s)
{
    for (int i = 0; i < s->ndim; i++)
        if (s->d[i] > GRAPH_MAX_DIM) {
            s_err(x, GRAPH_RULE_SHAPE, pos, "dimension %d would be %lld, "
                  "too large", i, (long long)s->d[i]);
            return -1;
        }
    if (s_numel(s) < 0 || s_numel(s) > ((int64_t)1 << 50)) {
        s_err(x, GRAPH_RULE_SHAPE, pos, "the output would be too large");
        return -1;
    }
    return 0;
}

#define IN(k) (&x->res[x->b->nodes[pos].inputs[k]].shape)
#define BATCH(s, i) (((s)->batch_mask >> (i)) & 1u)

/* --------------------------------------------------------- convolutions */

static int s_window(infer_t *x, int pos, const graph_shape_t *in,
                    int64_t k, int64_t s, int64_t d, graph_resolved_t *r)
{
    char sb[96];
    int64_t ho = graph_same_out(in->d[2], k, s, d, &r->pad, &r->crop);
    int64_t wo = graph_same_out(in->d[3], k, s, d, &r->pad, &r->crop);

    if (ho < 1 || wo < 1) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "a %lldx%lld window (dilation %lld, stride %lld) does not fit "
              "the input %s", (long long)k, (long long)k, (long long)d,
              (long long)s, s_fmt(in, sb));
        return -1;
    }
    r->kernel = k;
    r->stride = s;
    r->dilation = d;
    r->shape = *in;
    r->shape.d[2] = ho;
    r->shape.d[3] = wo;
    return 0;
}

static int s_need4(infer_t *x, int pos, const graph_shape_t *in,
                   bool channels)
{
    char sb[96];
    const char *op = graph_op_name(x->b->nodes[pos].op);

    if (in->ndim != 4) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "%s needs a 4-D (B,C,H,W) input, got %s%s", op,
              s_fmt(in, sb),
              in->ndim == 3 ? "; reshape or permute back first" : "");
        return -1;
    }
    if (channels && BATCH(in, 1)) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "dimension 1 of %s is the batch; it would mix the images "
              "of a batch (permute back to (B,C,H,W))", s_fmt(in, sb));
        return -1;
    }
    return 0;
}

static int s_conv(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_shape_t *in = IN(0);
    int64_t out, k, s, d, g, cin, w;

    if (s_need4(x, pos, in, true) < 0)
        return -1;
    if (s_arg(x, pos, 0, WANT_SIZE, &out, NULL) < 0 ||
        s_arg(x, pos, 1, WANT_SIZE, &k, NULL) < 0 ||
        s_arg(x, pos, 2, WANT_SIZE, &s, NULL) < 0 ||
        s_arg(x, pos, 3, WANT_SIZE, &d, NULL) < 0 ||
        s_arg(x, pos, 4, WANT_SIZE, &g, NULL) < 0)
        return -1;
    cin = in->d[1];
    if (cin % g != 0) {
        s_err(x, GRAPH_RULE_GROUPS, pos,
              "groups = %lld does not divide the input channels %lld",
              (long long)g, (long long)cin);
        return -1;
    }
    if (out % g != 0) {
        s_err(x, GRAPH_RULE_GROUPS, pos,
              "groups = %lld does not divide out_channels = %lld",
              (long long)g, (long long)out);
        return -1;
    }
    if (s_window(x, pos, in, k, s, d, r) < 0)
        return -1;
    r->shape.d[1] = out;
    r->in_ch = cin;
    r->out_ch = out;
    r->groups = g;
    /* weights = out * (cin/g) * k * k, applied at every output pixel */
    if (!s_mul((cin / g) * k, k, &w) || !s_mul(w, out, &w) ||
        !s_mul(w, r->shape.d[2] * r->shape.d[3], &r->macs) ||
        !s_mul(r->macs, r->shape.d[0], &r->macs)) {
        s_err(x, GRAPH_RULE_SHAPE, pos, "sizes too large");
        return -1;
    }
    r->params = w + out;
    return 0;
}

static int s_pool(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_shape_t *in = IN(0);
    int64_t k, s;

    if (s_need4(x, pos, in, false) < 0 ||
        s_arg(x, pos, 0, WANT_SIZE, &k, NULL) < 0 ||
        s_arg(x, pos, 1, WANT_SIZE, &s, NULL) < 0)
        return -1;
    return s_window(x, pos, in, k, s, 1, r);
}

static int s_adaptive(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_node_t *n = &x->b->nodes[pos];
    const graph_shape_t *in = IN(0);
    const graph_arg_t *a = graph_node_arg(n, 0);
    int64_t v[2];

    if (s_need4(x, pos, in, false) < 0)
        return -1;
    if (!a || a->n_items < 1 || a->n_items > 2) {
        s_err(x, GRAPH_RULE_ARG, pos,
              "output_size must be an integer or a pair (h,w)");
        return -1;
    }
    for (int i = 0; i < a->n_items; i++)
        if (s_eval(x, pos, "output_size", a->items[i], WANT_SIZE, &v[i],
                   NULL) < 0)
            return -1;
    r->out_h = v[0];
    r->out_w = a->n_items == 2 ? v[1] : v[0];
    r->shape = *in;
    r->shape.d[2] = r->out_h;
    r->shape.d[3] = r->out_w;
    return 0;
}

/* --------------------------------------------------------- elementwise */

static int s_broadcast(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_node_t *n = &x->b->nodes[pos];
    graph_shape_t o = *IN(0);
    char list[320];
    size_t len = 0;

    for (int k = 1; k < n->n_inputs; k++) {
        const graph_shape_t *s = IN(k);
        graph_shape_t t = {.ndim = o.ndim > s->ndim ? o.ndim : s->ndim};
        for (int i = 0; i < t.ndim; i++) {
            int io = i - (t.ndim - o.ndim), is = i - (t.ndim - s->ndim);
            int64_t a = io >= 0 ? o.d[io] : 1, b = is >= 0 ? s->d[is] : 1;
            bool ba = io >= 0 && BATCH(&o, io), bb = is >= 0 && BATCH(s, is);
            if (a != b && a != 1 && b != 1)
                goto mismatch;
            t.d[i] = a > b ? a : b;
            if ((ba && a == t.d[i]) || (bb && b == t.d[i]))
                t.batch_mask |= 1u << i;
        }
        o = t;
    }
    r->shape = o;
    return 0;

mismatch:
    if (!x->errs) {
        x->added++;
        return -1;
    }
    for (int k = 0; k < n->n_inputs && len < sizeof list; k++) {
        char sb[96];
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                k == 0                 ? ""
                                : k == n->n_inputs - 1 ? " and "
                                                       : ", ",
                                s_fmt(IN(k), sb));
    }
    s_err(x, GRAPH_RULE_SHAPE, pos, "shapes %s do not broadcast", list);
    return -1;
}

static int s_matmul(infer_t *x, int pos, graph_resolved_t *r)
{
    graph_shape_t a = *IN(0), b = *IN(1);
    char sa[96], sb[96];
    bool a1 = a.ndim == 1, b1 = b.ndim == 1;

    if (a1 && b1) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "%s and %s would give a single number; multiply needs a "
              "matrix on one side", s_fmt(&a, sa), s_fmt(&b, sb));
        return -1;
    }
    if (a1) { /* (k) -> (1,k) */
        a.d[1] = a.d[0];
        a.d[0] = 1;
        a.batch_mask = (uint8_t)(a.batch_mask << 1);
        a.ndim = 2;
    }
    if (b1) { /* (k) -> (k,1) */
        b.d[1] = 1;
        b.ndim = 2;
    }
    int64_t n = a.d[a.ndim - 2], k = a.d[a.ndim - 1];
    int64_t k2 = b.d[b.ndim - 2], m = b.d[b.ndim - 1];
    if (k != k2) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "shapes %s and %s do not fit a matrix product: the last "
              "dimension of the first (%lld) must equal the second-to-last "
              "of the second (%lld)", s_fmt(IN(0), sa), s_fmt(IN(1), sb),
              (long long)k, (long long)k2);
        return -1;
    }
    if (BATCH(&a, a.ndim - 1) || BATCH(&b, b.ndim - 2)) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "%s times %s sums over the batch dimension, mixing the "
              "images of a batch", s_fmt(IN(0), sa), s_fmt(IN(1), sb));
        return -1;
    }

    /* Batch dimensions broadcast. */
    int ba = a.ndim - 2, bb = b.ndim - 2;
    int nb = ba > bb ? ba : bb;
    graph_shape_t o = {.ndim = nb + 2};
    int64_t batch = 1;
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - ba), ib = i - (nb - bb);
        int64_t x1 = ia >= 0 ? a.d[ia] : 1, x2 = ib >= 0 ? b.d[ib] : 1;
        if (x1 != x2 && x1 != 1 && x2 != 1) {
            s_err(x, GRAPH_RULE_SHAPE, pos,
                  "shapes %s and %s do not fit a matrix product: batch "
                  "dimensions %lld and %lld do not broadcast",
                  s_fmt(IN(0), sa), s_fmt(IN(1), sb), (long long)x1,
                  (long long)x2);
            return -1;
        }
        o.d[i] = x1 > x2 ? x1 : x2;
        if ((ia >= 0 && BATCH(&a, ia) && x1 == o.d[i]) ||
            (ib >= 0 && BATCH(&b, ib) && x2 == o.d[i]))
            o.batch_mask |= 1u << i;
        batch *= o.d[i];
    }
    o.d[nb] = n;
    o.d[nb + 1] = m;
    if (BATCH(&a, a.ndim - 2))
        o.batch_mask |= 1u << nb;
    if (BATCH(&b, b.ndim - 1))
        o.batch_mask |= 1u << (nb + 1);
    if (b1) {
        o.ndim--;
        o.batch_mask &= (uint8_t)~(1u << (nb + 1));
    }
    if (a1) {
        o.d[nb] = o.d[nb + 1];
        o.ndim--;
        o.batch_mask = (uint8_t)((o.batch_mask & ((1u << nb) - 1)) |
                                 ((o.batch_mask >> 1) & (1u << nb)));
    }
    if (!s_mul(batch, n, &r->macs) || !s_mul(r->macs, k, &r->macs) ||
        !s_mul(r->macs, m, &r->macs)) {
        s_err(x, GRAPH_RULE_SHAPE, pos, "sizes too large");
        return -1;
    }
    r->shape = o;
    return 0;
}

static int s_concat(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_node_t *n = &x->b->nodes[pos];
    const graph_shape_t *a = IN(0);
    char sa[96], sb[96];
    int64_t dim;
    int d;

    if (s_arg(x, pos, 0, WANT_INT, &dim, NULL) < 0 ||
        (d = s_dim(x, pos, dim, a)) < 0)
        return -1;
    if (BATCH(a, d)) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "dim %d of %s is the batch; concatenate along channels "
              "(dim=1) instead", d, s_fmt(a, sa));
        return -1;
    }
    r->shape = *a;
    for (int k = 1; k < n->n_inputs; k++) {
        const graph_shape_t *s = IN(k);
        bool same = s->ndim == a->ndim;
        for (int i = 0; same && i < a->ndim; i++)
            same = i == d || s->d[i] == a->d[i];
        if (!same) {
            s_err(x, GRAPH_RULE_SHAPE, pos,
                  "shapes %s and %s differ outside dim %d", s_fmt(a, sa),
                  s_fmt(s, sb), d);
            return -1;
        }
        r->shape.d[d] += s->d[d];
        r->shape.batch_mask &= s->batch_mask;
    }
    r->n_dims = 1;
    r->dims[0] = d;
    return 0;
}

static int s_reduce(infer_t *x, int pos, graph_resolved_t *r, bool single)
{
    const graph_node_t *n = &x->b->nodes[pos];
    const graph_shape_t *in = IN(0);
    const graph_arg_t *a = graph_node_arg(n, 0);
    char sb[96];
    unsigned seen = 0;

    if (!a || a->n_items < 1 || (single && a->n_items != 1)) {
        s_err(x, GRAPH_RULE_ARG, pos, "dim must be %s",
              single ? "one integer" : "an integer or a tuple");
        return -1;
    }
    r->shape = *in;
    for (int i = 0; i < a->n_items; i++) {
        int64_t v;
        int d;
        if (s_eval(x, pos, "dim", a->items[i], WANT_INT, &v, NULL) < 0 ||
            (d = s_dim(x, pos, v, in)) < 0)
            return -1;
        if (seen & (1u << d)) {
            s_err(x, GRAPH_RULE_ARG, pos, "dim %d is listed twice", d);
            return -1;
        }
        if (BATCH(in, d)) {
            s_err(x, GRAPH_RULE_SHAPE, pos,
                  "dim %d of %s is the batch; this would mix the images of "
                  "a batch", d, s_fmt(in, sb));
            return -1;
        }
        seen |= 1u << d;
        if (!single)
            r->shape.d[d] = 1;
    }
    /* Sorted, as net.h promises. */
    r->n_dims = 0;
    for (int d = 0; d < in->ndim; d++)
        if (seen & (1u << d))
            r->dims[r->n_dims++] = d;
    return 0;
}

static int s_features(infer_t *x, int pos, const graph_shape_t *in)
{
    char sb[96];

    if (BATCH(in, in->ndim - 1)) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "the last dimension of %s is the batch; this would mix the "
              "images of a batch", s_fmt(in, sb));
        return -1;
    }
    return 0;
}

static int s_linear(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_shape_t *in = IN(0);
    int64_t out, rows, w;

    if (s_features(x, pos, in) < 0 ||
        s_arg(x, pos, 0, WANT_SIZE, &out, NULL) < 0)
        return -1;
    r->in_ch = in->d[in->ndim - 1];
    r->out_ch = out;
    r->shape = *in;
    r->shape.d[in->ndim - 1] = out;
    rows = s_numel(in) / r->in_ch;
    if (!s_mul(r->in_ch, out, &w) || !s_mul(w, rows, &r->macs)) {
        s_err(x, GRAPH_RULE_SHAPE, pos, "sizes too large");
        return -1;
    }
    r->params = w + out;
    return 0;
}

/* ----------------------------------------------------------- layouts */

static int s_permute(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_node_t *n = &x->b->nodes[pos];
    const graph_shape_t *in = IN(0);
    char sb[96];
    unsigned seen = 0;

    if (n->n_args != in->ndim) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "%d dims given for the %d-D input %s; list each dimension "
              "once", n->n_args, in->ndim, s_fmt(in, sb));
        return -1;
    }
    r->shape.ndim = in->ndim;
    r->shape.batch_mask = 0;
    for (int i = 0; i < n->n_args; i++) {
        int64_t v;
        int d;
        if (s_eval(x, pos, "dim", n->args[i].items[0], WANT_INT, &v,
                   NULL) < 0 ||
            (d = s_dim(x, pos, v, in)) < 0)
            return -1;
        if (seen & (1u << d)) {
            s_err(x, GRAPH_RULE_ARG, pos,
                  "dim %d is listed twice; permute needs each of 0..%d "
                  "once", d, in->ndim - 1);
            return -1;
        }
        seen |= 1u << d;
        r->dims[i] = d;
        r->shape.d[i] = in->d[d];
        if (BATCH(in, d))
            r->shape.batch_mask |= 1u << i;
    }
    r->n_dims = n->n_args;
    return 0;
}

static int s_repeat(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_node_t *n = &x->b->nodes[pos];
    const graph_shape_t *in = IN(0);
    char sb[96];
    int extra = n->n_args - in->ndim;

    if (extra < 0) {
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "%d repeat counts for the %d-D input %s; give one per "
              "dimension", n->n_args, in->ndim, s_fmt(in, sb));
        return -1;
    }
    r->shape.ndim = n->n_args;
    r->shape.batch_mask = (uint8_t)(in->batch_mask << extra);
    for (int i = 0; i < n->n_args; i++) {
        int64_t v;
        if (s_eval(x, pos, "count", n->args[i].items[0], WANT_SIZE, &v,
                   NULL) < 0)
            return -1;
        r->sizes[i] = v;
        int64_t base = i < extra ? 1 : in->d[i - extra];
        if (BATCH(&r->shape, i) && v != 1) {
            s_err(x, GRAPH_RULE_SHAPE, pos,
                  "repeating dim %d of %s, the batch, would change the "
                  "batch size", i - extra, s_fmt(in, sb));
            return -1;
        }
        if (!s_mul(base, v, &r->shape.d[i]) || r->shape.d[i] > GRAPH_MAX_DIM) {
            s_err(x, GRAPH_RULE_SHAPE, pos, "sizes too large");
            return -1;
        }
    }
    r->n_sizes = n->n_args;
    return 0;
}

static int s_reshape(infer_t *x, int pos, graph_resolved_t *r)
{
    const graph_node_t *n = &x->b->nodes[pos];
    const graph_shape_t *in = IN(0);
    char sa[96], sb[96];
    int64_t total = s_numel(in), known = 1;
    int free_at = -1;
    bool b_named = false;

    r->shape.ndim = n->n_args;
    r->shape.batch_mask = 0;
    for (int i = 0; i < n->n_args; i++) {
        const graph_expr_t *e = n->args[i].items[0];
        int64_t v;
        if (graph_expr_is_int(e, -1)) {
            if (free_at >= 0) {
                s_err(x, GRAPH_RULE_ARG, pos,
                      "-1 appears twice; at most one size may be left "
                      "open");
                return -1;
            }
            free_at = i;
            r->shape.d[i] = 1;
            continue;
        }
        if (s_eval(x, pos, "size", e, WANT_SIZE, &v, NULL) < 0)
            return -1;
        r->shape.d[i] = v;
        if (graph_expr_is_var(e, GRAPH_VAR_B))
            r->shape.batch_mask |= 1u << i;
        if (graph_expr_vars(e) & (1u << GRAPH_VAR_B))
            b_named = true;
        if (!s_mul(known, v, &known)) {
            s_err(x, GRAPH_RULE_SHAPE, pos, "sizes too large");
            return -1;
        }
    }
    if (free_at >= 0 && known > 0 && total % known == 0) {
        r->shape.d[free_at] = total / known;
        /* The open size holds the batch when no other entry names B and
         * it comes out as exactly B. */
        if (in->batch_mask && !b_named && r->shape.d[free_at] == x->bind->B)
            r->shape.batch_mask |= 1u << free_at;
        known = total;
    }
    if (known != total) {
        graph_shape_t shown = r->shape;
        if (free_at >= 0)
            shown.d[free_at] = -1;
        s_err(x, GRAPH_RULE_SHAPE, pos,
              "cannot reshape %s (%lld elements) to %s: the element "
              "counts differ", s_fmt(in, sa), (long long)total,
              s_fmt(&shown, sb));
        return -1;
    }
    r->n_sizes = n->n_args;
    memcpy(r->sizes, r->shape.d, sizeof r->sizes);
    return 0;
}

/* ------------------------------------------------------------- dispatch */

static int s_node(infer_t *x, int pos)
{
    const graph_node_t *n = &x->b->nodes[pos];
    graph_resolved_t *r = &x->res[pos];
    const graph_shape_t *in = n->n_inputs ? IN(0) : NULL;
    double prob;
    char sb[96];

    switch (n->op) {
    case GRAPH_OP_INPUT:
    case GRAPH_OP_INPUT1:
    case GRAPH_OP_INPUT2:
        r->shape = *x->in_shape;
        return 0;
    case GRAPH_OP_OUTPUT:
    case GRAPH_OP_RELU:
    case GRAPH_OP_GELU:
    case GRAPH_OP_SIGMOID:
        r->shape = *in;
        return 0;
    case GRAPH_OP_DROPPATH:
        if (s_arg(x, pos, 0, WANT_REAL, NULL, &prob) < 0)
            return -1;
        if (!(prob >= 0.0 && prob < 1.0)) {
            s_err(x, GRAPH_RULE_ARG, pos,
                  "prob = %g must be at least 0 and below 1", prob);
            return -1;
        }
        r->prob = (float)prob;
        r->shape = *in;
        return 0;
    case GRAPH_OP_CONV2D:
        return s_conv(x, pos, r);
    case GRAPH_OP_LINEAR:
        return s_linear(x, pos, r);
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_MAXPOOL2D:
        return s_pool(x, pos, r);
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
        return s_adaptive(x, pos, r);
    case GRAPH_OP_ADD:
    case GRAPH_OP_MUL:
        return s_broadcast(x, pos, r);
    case GRAPH_OP_MULTIPLY:
        return s_matmul(x, pos, r);
    case GRAPH_OP_CONCAT:
        return s_concat(x, pos, r);
    case GRAPH_OP_MEAN:
    case GRAPH_OP_MAX:
    case GRAPH_OP_SUM:
        return s_reduce(x, pos, r, false);
    case GRAPH_OP_SOFTMAX:
        if (s_reduce(x, pos, r, true) < 0)
            return -1;
        return 0;
    case GRAPH_OP_BN:
        if (s_need4(x, pos, in, true) < 0)
            return -1;
        r->shape = *in;
        r->in_ch = r->out_ch = in->d[1];
        r->params = 2 * in->d[1];
        return 0;
    case GRAPH_OP_LN:
        if (s_features(x, pos, in) < 0)
            return -1;
        r->shape = *in;
        r->in_ch = r->out_ch = in->d[in->ndim - 1];
        r->params = 2 * r->in_ch;
        return 0;
    case GRAPH_OP_PERMUTE:
        return s_permute(x, pos, r);
    case GRAPH_OP_REPEAT:
        return s_repeat(x, pos, r);
    case GRAPH_OP_RESHAPE:
        return s_reshape(x, pos, r);
    default:
        s_err(x, GRAPH_RULE_OP, pos, "unknown operation (input %s)",
              in ? s_fmt(in, sb) : "none");
        return -1;
    }
}

/* Rule 6: what the block returns must be what its role needs. */
static void s_role(infer_t *x, int out_pos, const graph_shape_t *got)
{
    const graph_bindings_t *b = x->bind;
    const graph_shape_t *in = x->in_shape;
    graph_shape_t want = *in;
    int64_t s = x->stem_scale;
    char what[160], sa[96], sb[96];

    switch (x->b->role) {
    case GRAPH_ROLE_STEM:
        want.d[1] = b->dim;
        want.d[2] = (in->d[2] + s - 1) / s;
        want.d[3] = (in->d[3] + s - 1) / s;
        if (s == 1)
            snprintf(what, sizeof what, "a stem must return dim channels "
                     "at the input resolution %lldx%lld (stem_scale 1)",
                     (long long)in->d[2], (long long)in->d[3]);
        else
            snprintf(what, sizeof what, "a stem must return dim channels "
                     "at %lldx%lld, the %lldx%lld input reduced %lldx "
                     "(stem_scale %lld)", (long long)want.d[2],
                     (long long)want.d[3], (long long)in->d[2],
                     (long long)in->d[3], (long long)s, (long long)s);
        break;
    case GRAPH_ROLE_DOWNSAMPLE:
        want.d[1] = b->dim;
        want.d[2] = (in->d[2] + 1) / 2;
        want.d[3] = (in->d[3] + 1) / 2;
        snprintf(what, sizeof what, "a downsample block must return dim "
                 "channels at half the resolution");
        break;
    default:
        snprintf(what, sizeof what, "a cell must return the shape of its "
                 "input");
    }
    bool same = got->ndim == want.ndim &&
                (got->batch_mask & 1u) == (want.batch_mask & 1u);
    for (int i = 0; same && i < want.ndim; i++)
        same = got->d[i] == want.d[i];
    if (!same)
        s_err(x, GRAPH_RULE_ROLE, out_pos, "gets %s, but %s, %s",
              s_fmt(got, sa), what, s_fmt(&want, sb));
}

int graph_block_infer_ex(const graph_block_t *b,
                         const graph_bindings_t *bind,
                         const graph_shape_t *in_shape, int stem_scale,
                         graph_resolved_t *res, graph_shape_t *out_shape,
                         graph_errors_t *errs, bool stop_first)
{
    enum { SMALL = 64 };
    int s_order[SMALL];
    graph_resolved_t s_res[SMALL];
    int n = b->n_nodes;
    int *order = n <= SMALL ? s_order : malloc((size_t)n * sizeof *order);
    graph_resolved_t *r = res;
    infer_t x = {b, bind, in_shape, stem_scale > 0 ? stem_scale : 1, NULL,
                 errs, 0};
    int out_pos = -1;

    if (!r)
        r = n <= SMALL ? s_res : malloc((size_t)n * sizeof *r);
    if (!order || !r) {
        graph_errors_add(errs, GRAPH_RULE_SHAPE, graph_role_name(b->role),
                         -1, 0, "%s: out of memory", graph_role_name(b->role));
        x.added = 1;
        goto out;
    }
    x.res = r;
    if (graph_block_topo(b, order) < 0) {
        graph_errors_add(errs, GRAPH_RULE_CYCLE, graph_role_name(b->role),
                         -1, b->line, "%s: the block has a cycle",
                         graph_role_name(b->role));
        x.added = 1;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int pos = order[i];
        const graph_node_t *nd = &b->nodes[pos];
        bool inputs_ok = true;

        memset(&r[pos], 0, sizeof r[pos]);
        for (int k = 0; k < nd->n_inputs; k++)
            inputs_ok = inputs_ok && r[nd->inputs[k]].ok;
        if (!inputs_ok)
            continue;
        if (nd->op >= GRAPH_OP_COUNT ||
            (nd->n_inputs == 0) != (nd->op <= GRAPH_OP_INPUT2) ||
            nd->n_inputs < graph_op_info(nd->op)->min_inputs) {
            x.added++; /* not linked: reported by graph_block_link */
            if (stop_first)
                goto out;
            continue;
        }
        if (s_node(&x, pos) == 0 && s_check_size(&x, pos, &r[pos].shape) == 0)
            r[pos].ok = true;
        else if (stop_first)
            goto out;
        if (nd->op == GRAPH_OP_OUTPUT)
            out_pos = pos;
    }
    if (out_pos >= 0 && r[out_pos].ok) {
        s_role(&x, out_pos, &r[out_pos].shape);
        if (out_shape)
            *out_shape = r[out_pos].shape;
    }

out:
    if (order != s_order)
        free(order);
    if (r != res && r != s_res)
        free(r);
    return x.added;
}

int graph_block_infer(const graph_block_t *b, const graph_bindings_t *bind,
                      const graph_shape_t *in_shape, graph_node_info_t *info,
                      graph_shape_t *out_shape, graph_errors_t *errs)
{
    graph_resolved_t *res = calloc((size_t)b->n_nodes + 1, sizeof *res);
    int rc;

    if (!res) {
        graph_errors_add(errs, GRAPH_RULE_SHAPE, graph_role_name(b->role),
                         -1, 0, "%s: out of memory", graph_role_name(b->role));
        return 1;
    }
    rc = graph_block_infer_ex(b, bind, in_shape, 1, res, out_shape, errs,
                              false);
    for (int i = 0; info && i < b->n_nodes; i++) {
        info[i].shape = res[i].shape;
        info[i].params = res[i].params;
        info[i].macs = res[i].macs;
    }
    free(res);
    return rc;
}
