/*
 * graph_expr.c - arithmetic over B, C, dim, H and W: parse, evaluate
 * exactly, print.
 *
 * Sizes in blocks are written as expressions such as C/4 or dimx2 and
 * must come out as whole numbers at the widths a network is built with,
 * so evaluation is exact: every value is a reduced fraction of 64-bit
 * integers, and overflow is an error rather than a wrong size.  The
 * letter x is multiplication (the public release writes Cx4), which the
 * lexer untangles from the variable names by reading runs of letters
 * and digits piece by piece.
 */
#define _GNU_SOURCE /* vasprintf */
#include "graph_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXPR_MAX_DEPTH 32

static const char *s_var_names[GRAPH_VAR_COUNT] = {"B", "C", "dim", "H",
                                                   "W"};

const char *graph_var_name(graph_var_t v)
{
    return s_var_names[v];
}

/* ------------------------------------------------------------ rationals */

/* Reduce n/d (d != 0) into num and den, den > 0; -1 on overflow. */
static int s_rat_make(__int128 n, __int128 d, int64_t *num, int64_t *den)
{
    if (d < 0) {
        n = -n;
        d = -d;
    }
    __int128 a = n < 0 ? -n : n, b = d;
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t;
    }
    if (a > 1) {
        n /= a;
        d /= a;
    }
    if (n > INT64_MAX || n < -INT64_MAX || d > INT64_MAX)
        return -1;
    *num = (int64_t)n;
    *den = (int64_t)d;
    return 0;
}

static int s_rat_apply(int kind, int64_t an, int64_t ad, int64_t bn,
                       int64_t bd, int64_t *num, int64_t *den)
{
    switch (kind) {
    case EXPR_ADD:
        return s_rat_make((__int128)an * bd + (__int128)bn * ad,
                          (__int128)ad * bd, num, den);
    case EXPR_SUB:
        return s_rat_make((__int128)an * bd - (__int128)bn * ad,
                          (__int128)ad * bd, num, den);
    case EXPR_MUL:
        return s_rat_make((__int128)an * bn, (__int128)ad * bd, num, den);
    case EXPR_DIV:
        if (bn == 0)
            return -1;
        return s_rat_make((__int128)an * bd, (__int128)ad * bn, num, den);
    default:
        return -1;
    }
}

int graph_expr_eval(const graph_expr_t *e, const graph_bindings_t *b,
                    int64_t *num, int64_t *den)
{
    int64_t sn[GRAPH_EXPR_MAX_TOKENS], sd[GRAPH_EXPR_MAX_TOKENS];
    int top = 0;

    if (!e || e->n == 0)
        return -1;
    for (int i = 0; i < e->n; i++) {
        const expr_tok_t *t = &e->t[i];
        switch (t->kind) {
        case EXPR_NUM:
            sn[top] = t->num;
            sd[top++] = t->den;
            break;
        case EXPR_VAR: {
            const int64_t v[GRAPH_VAR_COUNT] = {b->B, b->C, b->dim, b->H,
                                                b->W};
            sn[top] = v[t->var];
            sd[top++] = 1;
            break;
        }
        case EXPR_NEG:
            if (top < 1)
                return -1;
            sn[top - 1] = -sn[top - 1];
            break;
        default:
            if (top < 2)
                return -1;
            if (s_rat_apply(t->kind, sn[top - 2], sd[top - 2], sn[top - 1],
                            sd[top - 1], &sn[top - 2], &sd[top - 2]) < 0)
                return -1;
            top--;
        }
    }
    if (top != 1)
        return -1;
    *num = sn[0];
    *den = sd[0];
    return 0;
}

/* --------------------------------------------------------------- lexing */

typedef enum lex_kind {
    LEX_END,
    LEX_NUM,
    LEX_VAR,
    LEX_OP,   /* one of + - * / ( ) */
    LEX_BAD
} lex_kind_t;

typedef struct lexer {
    const char *s;
    size_t len, pos;
    lex_kind_t kind;
    char op;
    int var;
    int64_t num, den;
    char *err;
    size_t errlen;
    bool failed;
} lexer_t;

static void s_fail(lexer_t *lx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_fail(lexer_t *lx, const char *fmt, ...)
{
    va_list ap;

    if (lx->failed)
        return;
    lx->failed = true;
    if (!lx->err || lx->errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(lx->err, lx->errlen, fmt, ap);
    va_end(ap);
}

static bool s_is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* The variable spelled at p (case ignored), its length in *n, or -1. */
static int s_var_at(const char *p, size_t left, size_t *n)
{
    if (left >= 3 && strncasecmp(p, "dim", 3) == 0) {
        *n = 3;
        return GRAPH_VAR_DIM;
    }
    *n = 1;
    switch (toupper((unsigned char)*p)) {
    case 'B':
        return GRAPH_VAR_B;
    case 'C':
        return GRAPH_VAR_C;
    case 'H':
        return GRAPH_VAR_H;
    case 'W':
        return GRAPH_VAR_W;
    default:
        return -1;
    }
}

static void s_lex_number(lexer_t *lx)
{
    const char *s = lx->s;
    __int128 num = 0, den = 1;
    int digits = 0;

    while (lx->pos < lx->len && isdigit((unsigned char)s[lx->pos])) {
        num = num * 10 + (s[lx->pos++] - '0');
        if (++digits > 18)
            goto too_long;
    }
    if (lx->pos < lx->len && s[lx->pos] == '.') {
        lx->pos++;
        while (lx->pos < lx->len && isdigit((unsigned char)s[lx->pos])) {
            num = num * 10 + (s[lx->pos++] - '0');
            den *= 10;
            if (++digits > 18)
                goto too_long;
        }
    }
    if (digits == 0) {
        s_fail(lx, "'.' is not a number");
        lx->kind = LEX_BAD;
        return;
    }
    lx->kind = LEX_NUM;
    s_rat_make(num, den, &lx->num, &lx->den);
    return;

too_long:
    s_fail(lx, "number too long");
    lx->kind = LEX_BAD;
}

static void s_lex_next(lexer_t *lx)
{
    const char *s = lx->s;

    while (lx->pos < lx->len && isspace((unsigned char)s[lx->pos]))
        lx->pos++;
    if (lx->pos >= lx->len) {
        lx->kind = LEX_END;
        return;
    }

    char c = s[lx->pos];
    if (isdigit((unsigned char)c) || c == '.') {
        s_lex_number(lx);
        return;
    }
    if (strchr("+-*/()", c)) {
        if (c == '/' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '/') {
            s_fail(lx, "'//' is not an operator here; '/' is exact "
                       "division");
            lx->kind = LEX_BAD;
            return;
        }
        if (c == '*' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '*') {
            s_fail(lx, "'**' is not an operator here; write the "
                       "product out");
            lx->kind = LEX_BAD;
            return;
        }
        lx->kind = LEX_OP;
        lx->op = c;
        lx->pos++;
        return;
    }
    if (c == 'x' || c == 'X') {
        /* Never a variable name, so always multiplication: Cx4. */
        lx->kind = LEX_OP;
        lx->op = '*';
        lx->pos++;
        return;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        size_t n;
        int v = s_var_at(s + lx->pos, lx->len - lx->pos, &n);
        if (v >= 0) {
            lx->kind = LEX_VAR;
            lx->var = v;
            lx->pos += n;
            return;
        }
        size_t start = lx->pos, end = lx->pos;
        while (start > 0 && s_is_word(s[start - 1]))
            start--;
        while (end < lx->len && s_is_word(s[end]))
            end++;
        s_fail(lx, "unknown name '%.*s' (the variables are B, C, dim, H "
                   "and W)", (int)(end - start), s + start);
        lx->kind = LEX_BAD;
        return;
    }
    s_fail(lx, "unexpected '%c'", c);
    lx->kind = LEX_BAD;
}

/* -------------------------------------------------------------- parsing */

typedef struct parser {
    lexer_t lx;
    expr_tok_t out[GRAPH_EXPR_MAX_TOKENS];
    int n;
    int depth;
} parser_t;

static void s_emit(parser_t *p, int kind)
{
    if (p->n >= GRAPH_EXPR_MAX_TOKENS) {
        s_fail(&p->lx, "expression too long");
        return;
    }
    p->out[p->n++] = (expr_tok_t){.kind = kind, .den = 1};
}

static void s_parse_sum(parser_t *p);

static void s_parse_unary(parser_t *p)
{
    lexer_t *lx = &p->lx;

    if (lx->failed)
        return;
    if (++p->depth > EXPR_MAX_DEPTH) {
        s_fail(lx, "expression nested too deeply");
        return;
    }
    if (lx->kind == LEX_OP && (lx->op == '-' || lx->op == '+')) {
        char op = lx->op;
        s_lex_next(lx);
        s_parse_unary(p);
        if (op == '-')
            s_emit(p, EXPR_NEG);
    } else if (lx->kind == LEX_NUM) {
        s_emit(p, EXPR_NUM);
        if (!lx->failed) {
            p->out[p->n - 1].num = lx->num;
            p->out[p->n - 1].den = lx->den;
        }
        s_lex_next(lx);
    } else if (lx->kind == LEX_VAR) {
        s_emit(p, EXPR_VAR);
        if (!lx->failed)
            p->out[p->n - 1].var = lx->var;
        s_lex_next(lx);
    } else if (lx->kind == LEX_OP && lx->op == '(') {
        s_lex_next(lx);
        s_parse_sum(p);
        if (lx->failed)
            goto out;
        if (lx->kind != LEX_OP || lx->op != ')') {
            s_fail(lx, "missing ')'");
            goto out;
        }
        s_lex_next(lx);
    } else if (lx->kind == LEX_END) {
        s_fail(lx, "expression ends where a number or variable is "
                   "expected");
    } else if (lx->kind == LEX_OP) {
        s_fail(lx, "'%c' where a number or variable is expected", lx->op);
    }
out:
    p->depth--;
}

static void s_parse_product(parser_t *p)
{
    lexer_t *lx = &p->lx;

    s_parse_unary(p);
    while (!lx->failed && lx->kind == LEX_OP &&
           (lx->op == '*' || lx->op == '/')) {
        int kind = lx->op == '*' ? EXPR_MUL : EXPR_DIV;
        s_lex_next(lx);
        s_parse_unary(p);
        s_emit(p, kind);
    }
    if (!lx->failed && (lx->kind == LEX_NUM || lx->kind == LEX_VAR))
        s_fail(lx, "two values with no operator between them");
}

static void s_parse_sum(parser_t *p)
{
    lexer_t *lx = &p->lx;

    s_parse_product(p);
    while (!lx->failed && lx->kind == LEX_OP &&
           (lx->op == '+' || lx->op == '-')) {
        int kind = lx->op == '+' ? EXPR_ADD : EXPR_SUB;
        s_lex_next(lx);
        s_parse_product(p);
        s_emit(p, kind);
    }
}

graph_expr_t *graph_expr_parse(const char *text, size_t len, char *err,
                               size_t errlen)
{
    parser_t *p = calloc(1, sizeof *p);
    graph_expr_t *e = NULL;

    if (!p) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->lx = (lexer_t){.s = text, .len = len, .err = err, .errlen = errlen};
    s_lex_next(&p->lx);
    if (p->lx.kind == LEX_END)
        s_fail(&p->lx, "empty value");
    s_parse_sum(p);
    if (!p->lx.failed && p->lx.kind != LEX_END) {
        if (p->lx.kind == LEX_OP && p->lx.op == ')')
            s_fail(&p->lx, "unbalanced ')'");
        else
            s_fail(&p->lx, "unexpected text after the value");
    }
    if (!p->lx.failed) {
        e = malloc(sizeof *e + (size_t)p->n * sizeof(expr_tok_t));
        if (e) {
            e->n = p->n;
            memcpy(e->t, p->out, (size_t)p->n * sizeof(expr_tok_t));
        } else if (err && errlen) {
            snprintf(err, errlen, "out of memory");
        }
    }
    free(p);
    return e;
}

void graph_expr_destroy(graph_expr_t **e)
{
    if (e) {
        free(*e);
        *e = NULL;
    }
}

graph_expr_t *graph_expr_clone(const graph_expr_t *e)
{
    size_t size = sizeof *e + (size_t)e->n * sizeof(expr_tok_t);
    graph_expr_t *c = malloc(size);

    if (c)
        memcpy(c, e, size);
    return c;
}

unsigned graph_expr_vars(const graph_expr_t *e)
{
    unsigned m = 0;

    for (int i = 0; i < e->n; i++)
        if (e->t[i].kind == EXPR_VAR)
            m |= 1u << e->t[i].var;
    return m;
}

bool graph_expr_is_var(const graph_expr_t *e, graph_var_t v)
{
    return e->n == 1 && e->t[0].kind == EXPR_VAR && e->t[0].var == (int)v;
}

bool graph_expr_is_int(const graph_expr_t *e, int64_t k)
{
    if (e->n == 1 && e->t[0].kind == EXPR_NUM)
        return e->t[0].den == 1 && e->t[0].num == k;
    if (e->n == 2 && e->t[0].kind == EXPR_NUM && e->t[1].kind == EXPR_NEG)
        return e->t[0].den == 1 && -e->t[0].num == k;
    return false;
}

/* ------------------------------------------------------------- printing */

void graph_rational_format(int64_t num, int64_t den, char *buf, size_t len)
{
    int64_t d = den;
    int twos = 0, fives = 0;

    if (den == 1) {
        snprintf(buf, len, "%lld", (long long)num);
        return;
    }
    while (d % 2 == 0) {
        d /= 2;
        twos++;
    }
    while (d % 5 == 0) {
        d /= 5;
        fives++;
    }
    int places = twos > fives ? twos : fives;
    if (d != 1 || places > 12) {
        snprintf(buf, len, "%lld/%lld", (long long)num, (long long)den);
        return;
    }

    /* den divides 10^places: print num * (10^places / den) with a point. */
    __int128 scale = 1;
    for (int i = 0; i < places; i++)
        scale *= 10;
    __int128 v = (__int128)num * (scale / den);
    bool neg = v < 0;
    if (neg)
        v = -v;
    long long whole = (long long)(v / scale);
    long long frac = (long long)(v % scale);
    char fbuf[32];
    snprintf(fbuf, sizeof fbuf, "%0*lld", places, frac);
    snprintf(buf, len, "%s%lld.%s", neg ? "-" : "", whole, fbuf);
}

enum { PREC_SUM = 1, PREC_PRODUCT = 2, PREC_UNARY = 3, PREC_ATOM = 4 };

typedef struct piece {
    char *s;
    int prec;
    bool konst;        /* constant subtree (for folding) */
    int64_t num, den;  /* its value when konst */
} piece_t;

static char *s_strdupf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *s_strdupf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static piece_t s_number_piece(int64_t num, int64_t den)
{
    char b[64];

    graph_rational_format(num, den, b, sizeof b);
    int prec = strchr(b, '/') ? PREC_PRODUCT
               : num < 0      ? PREC_UNARY
                              : PREC_ATOM;

    return (piece_t){.s = strdup(b), .prec = prec, .konst = true,
                     .num = num, .den = den};
}

size_t graph_expr_format(const graph_expr_t *e, bool fold, char *buf,
                         size_t len)
{
    piece_t st[GRAPH_EXPR_MAX_TOKENS];
    int top = 0;
    size_t n = 0;
    static const char ops[] = {[EXPR_ADD] = '+', [EXPR_SUB] = '-',
                               [EXPR_MUL] = '*', [EXPR_DIV] = '/'};

    for (int i = 0; e && i < e->n; i++) {
        const expr_tok_t *t = &e->t[i];
        piece_t p = {0};

        if (t->kind == EXPR_NUM) {
            p = s_number_piece(t->num, t->den);
        } else if (t->kind == EXPR_VAR) {
            p = (piece_t){.s = strdup(s_var_names[t->var]),
                          .prec = PREC_ATOM};
        } else if (t->kind == EXPR_NEG) {
            piece_t a = st[--top];
            if (fold && a.konst) {
                p = s_number_piece(-a.num, a.den);
            } else {
                bool par = a.prec < PREC_UNARY;
                p = (piece_t){.s = s_strdupf(par ? "-(%s)" : "-%s", a.s),
                              .prec = PREC_UNARY};
            }
            free(a.s);
        } else {
            piece_t b = st[--top], a = st[--top];
            int prec = t->kind == EXPR_ADD || t->kind == EXPR_SUB
                           ? PREC_SUM
                           : PREC_PRODUCT;
            int64_t vn, vd;
            if (fold && a.konst && b.konst &&
                s_rat_apply(t->kind, a.num, a.den, b.num, b.den, &vn,
                            &vd) == 0) {
                p = s_number_piece(vn, vd);
            } else {
                bool pa = a.prec < prec, pb = b.prec <= prec;
                p = (piece_t){.s = s_strdupf("%s%s%s%c%s%s%s",
                                             pa ? "(" : "", a.s,
                                             pa ? ")" : "", ops[t->kind],
                                             pb ? "(" : "", b.s,
                                             pb ? ")" : ""),
                              .prec = prec};
            }
            free(a.s);
            free(b.s);
        }
        st[top++] = p;
    }
    if (top == 1 && st[0].s)
        n = (size_t)snprintf(buf, len, "%s", st[0].s);
    else if (len)
        buf[0] = '\0';
    while (top > 0)
        free(st[--top].s);
    return n < len ? n : (len ? len - 1 : 0);
}

char *graph_expr_print(const graph_expr_t *e)
{
    char buf[1024];

    graph_expr_format(e, false, buf, sizeof buf);
    return strdup(buf);
}
