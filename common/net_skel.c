/*
 * net_skel.c - the skeletons (docs/skeletons.md) as lists of block
 * slots, configurations for the data sets, and the measurement of a
 * design at one width.
 *
 * Measurement is what the width search repeats, so it infers each
 * distinct block instance once: the cells of one stage share their
 * bindings and input shape, and their counts are reused.  A block that
 * fails at one instance is not checked again at later ones, so a broken
 * cell yields its errors once rather than once per stage.
 */
#include "net_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int net_skeleton_parse(const char *name)
{
    if (strcasecmp(name, "nb201") == 0)
        return NET_SKELETON_NB201;
    if (strcasecmp(name, "darts") == 0)
        return NET_SKELETON_DARTS;
    return -1;
}

const char *net_skeleton_name(net_skeleton_t s)
{
    return s == NET_SKELETON_DARTS ? "darts" : "nb201";
}

bool net_stem_scale_ok(int s)
{
    return s == 1 || s == 2 || s == 4 || s == 8;
}

int net_config_default(net_config_t *c, const char *dataset)
{
    memset(c, 0, sizeof *c);
    c->skeleton = NET_SKELETON_NB201;
    c->in_c = 3;
    c->in_h = c->in_w = 32;
    c->cells_per_stage = 5;
    c->stem_scale = 1;
    c->budget = 1500000;
    c->tolerance = 0.03;
    c->min_width = 1;
    c->max_width = 1024;
    if (strcasecmp(dataset, "cifar10") == 0 ||
        strcasecmp(dataset, "cifar10-valid") == 0)
        c->classes = 10;
    else if (strcasecmp(dataset, "cifar100") == 0)
        c->classes = 100;
    else if (strcasecmp(dataset, "imagenet16-120") == 0) {
        c->classes = 120;
        c->in_h = c->in_w = 16;
    } else
        return -1;
    return 0;
}

int64_t net_mac_cap(const net_config_t *cfg)
{
    if (cfg->mac_cap > 0)
        return cfg->mac_cap;
    /* 0.2 G at 32x32, scaled by input area: 0.05 G at 16x16. */
    return (int64_t)200000000 * cfg->in_h * cfg->in_w / 1024;
}

static graph_shape_t s_shape(int64_t b, int64_t c, int64_t h, int64_t w)
{
    return (graph_shape_t){.ndim = 4, .d = {b, c, h, w}, .batch_mask = 1};
}

static int64_t s_half(int64_t v)
{
    return (v + 1) / 2;
}

/* The resolution the stem returns: the input's divided by the scale. */
static int64_t s_stem_out(int64_t v, const net_config_t *cfg)
{
    int64_t s = cfg->stem_scale > 0 ? cfg->stem_scale : 1;
    return (v + s - 1) / s;
}

static void s_slot(net_slot_t *s, const net_config_t *cfg, graph_role_t role,
                   const graph_block_t *b, const char *name, int64_t batch,
                   int64_t c, int64_t dim, int64_t h, int64_t w)
{
    memset(s, 0, sizeof *s);
    s->role = role;
    s->block = b;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->bind = (graph_bindings_t){batch, c, dim, h, w};
    s->in_shape = s_shape(batch, c, h, w);
    if (role == GRAPH_ROLE_STEM)
        s->out_shape = s_shape(batch, dim, s_stem_out(h, cfg),
                               s_stem_out(w, cfg));
    else if (role == GRAPH_ROLE_DOWNSAMPLE)
        s->out_shape = s_shape(batch, dim, s_half(h), s_half(w));
    else
        s->out_shape = s_shape(batch, dim, h, w);
    s->n_src = 1;
    s->src[0] = s->src[1] = -1;
}

static int s_nb201(const graph_design_t *d, const net_config_t *cfg,
                   int w, int batch, net_slot_t *slots)
{
    int n = 0, N = cfg->cells_per_stage;
    int64_t h = cfg->in_h, wd = cfg->in_w;
    char name[24];

    s_slot(&slots[n++], cfg, GRAPH_ROLE_STEM, d->stem, "stem", batch,
           cfg->in_c, w, h, wd);
    h = slots[0].out_shape.d[2];
    wd = slots[0].out_shape.d[3];
    for (int s = 0; s < 3; s++) {
        int64_t ws = (int64_t)w << s;
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "stage%d.%d", s & 3, i & 1023);
            s_slot(&slots[n], cfg, GRAPH_ROLE_CELL, d->cell, name, batch,
                   ws, ws, h, wd);
            slots[n].src[0] = n - 1;
            n++;
        }
        if (s == 2)
            break;
        snprintf(name, sizeof name, "down%d", s & 3);
        s_slot(&slots[n], cfg, GRAPH_ROLE_DOWNSAMPLE, d->downsample, name,
               batch, ws, 2 * ws, h, wd);
        slots[n].src[0] = n - 1;
        n++;
        h = s_half(h);
        wd = s_half(wd);
    }
    return n;
}

static int s_darts(const graph_design_t *d, const net_config_t *cfg,
                   int w, int batch, net_slot_t *slots)
{
    int n = 0, L = 3 * cfg->cells_per_stage + 2;
    int r1 = L / 3, r2 = 2 * L / 3, pp = 0, p = 0;
    int64_t width = w;
    bool prev_red = false;
    char name[24];

    s_slot(&slots[n++], cfg, GRAPH_ROLE_STEM, d->stem, "stem", batch,
           cfg->in_c, w, cfg->in_h, cfg->in_w);
    for (int k = 0; k < L; k++) {
        bool red = k == r1 || k == r2;
        const net_slot_t *a = &slots[pp], *b = &slots[p];
        int64_t h = b->out_shape.d[2], wd = b->out_shape.d[3];
        net_slot_t *s = &slots[n];

        if (red)
            width *= 2;
        snprintf(name, sizeof name, "cells.%d", k & 1023);
        s_slot(s, cfg, red ? GRAPH_ROLE_DOWNSAMPLE : GRAPH_ROLE_CELL,
               red ? d->downsample : d->cell, name, batch, width, width, h,
               wd);
        s->n_src = 2;
        s->src[0] = pp;
        s->src[1] = p;
        s->pre_in[0] = a->out_shape.d[1];
        s->pre_in[1] = b->out_shape.d[1];
        s->pre[0] = prev_red                ? NET_PRE_STRIDED
                    : s->pre_in[0] != width ? NET_PRE_CONV
                                            : NET_PRE_NONE;
        s->pre[1] = s->pre_in[1] != width ? NET_PRE_CONV : NET_PRE_NONE;
        prev_red = red;
        pp = p;
        p = n++;
    }
    return n;
}

int net_slots_make(const graph_design_t *d, const net_config_t *cfg,
                   int width, int batch, net_slot_t *slots,
                   graph_errors_t *errs)
{
    bool darts = cfg->skeleton == NET_SKELETON_DARTS;

    if (cfg->cells_per_stage < 1 || 3 * cfg->cells_per_stage + 3 >
                                        NET_MAX_SLOTS) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "design: cells_per_stage = %d is out of range "
                         "(1..%d)", cfg->cells_per_stage,
                         (NET_MAX_SLOTS - 3) / 3);
        return -1;
    }
    if (cfg->stem_scale != 0 && !net_stem_scale_ok(cfg->stem_scale)) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                         "design: stem_scale = %d is not one the skeletons "
                         "take (1, 2, 4 or 8)", cfg->stem_scale);
        return -1;
    }
    if (d->two_input != darts) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "cell", -1, d->cell->line,
                         d->two_input
                             ? "cell: it takes input1 and input2, so it "
                               "needs a two-input skeleton (darts), not %s"
                             : "cell: it takes one input, but the %s "
                               "skeleton needs two-input cells (input1, "
                               "input2)",
                         net_skeleton_name(cfg->skeleton));
        return -1;
    }
    return darts ? s_darts(d, cfg, width, batch, slots)
                 : s_nb201(d, cfg, width, batch, slots);
}

void net_pre_counts(const net_slot_t *s, int64_t *params, int64_t *macs)
{
    int64_t w = s->bind.dim, pix = s->bind.H * s->bind.W;

    *params = *macs = 0;
    for (int i = 0; i < s->n_src; i++) {
        if (s->pre[i] == NET_PRE_NONE)
            continue;
        *params += s->pre_in[i] * w + 2 * w; /* conv (no bias), BN */
        *macs += s->pre_in[i] * w * pix;
    }
}

/* ------------------------------------------------------------ measuring */

static bool s_same_bind(const graph_bindings_t *a, const graph_bindings_t *b)
{
    return a->B == b->B && a->C == b->C && a->dim == b->dim &&
           a->H == b->H && a->W == b->W;
}

static bool s_same_shape(const graph_shape_t *a, const graph_shape_t *b)
{
    if (a->ndim != b->ndim || a->batch_mask != b->batch_mask)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i])
            return false;
    return true;
}

int net_measure(const graph_design_t *d, const net_config_t *cfg, int width,
                int64_t *params, int64_t *macs, graph_errors_t *errs,
                bool stop_first)
{
    enum { SMALL = 64, FEW_SLOTS = 32 };
    net_slot_t few[FEW_SLOTS], *slots = few;
    graph_resolved_t small[SMALL], *res = small;
    int max_nodes = d->cell->n_nodes, n, errors = 0;
    const graph_block_t *failed[3] = {NULL};
    int n_failed = 0;
    int64_t p = 0, m = 0, cp = 0, cm = 0;
    const net_slot_t *cached = NULL;

    if (3 * cfg->cells_per_stage + 3 > FEW_SLOTS) {
        slots = malloc(NET_MAX_SLOTS * sizeof *slots);
        if (!slots) {
            graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                             "design: out of memory");
            return 1;
        }
    }
    n = net_slots_make(d, cfg, width, NET_CHECK_BATCH, slots, errs);
    if (n < 0) {
        if (slots != few)
            free(slots);
        return 1;
    }
    if (d->stem->n_nodes > max_nodes)
        max_nodes = d->stem->n_nodes;
    if (d->downsample->n_nodes > max_nodes)
        max_nodes = d->downsample->n_nodes;
    if (max_nodes > SMALL) {
        res = malloc((size_t)max_nodes * sizeof *res);
        if (!res) {
            graph_errors_add(errs, GRAPH_RULE_DESIGN, "design", -1, 0,
                             "design: out of memory");
            if (slots != few)
                free(slots);
            return 1;
        }
    }

    for (int i = 0; i < n; i++) {
        const net_slot_t *s = &slots[i];
        int64_t pp, pm;
        bool skip = false;

        net_pre_counts(s, &pp, &pm);
        p += pp;
        m += pm * NET_CHECK_BATCH;
        for (int f = 0; f < n_failed; f++)
            skip = skip || failed[f] == s->block;
        if (skip)
            continue;
        if (cached && cached->block == s->block &&
            s_same_bind(&cached->bind, &s->bind) &&
            s_same_shape(&cached->in_shape, &s->in_shape)) {
            p += cp;
            m += cm;
            continue;
        }
        int e = graph_block_infer_ex(s->block, &s->bind, &s->in_shape,
                                     cfg->stem_scale, res, NULL, errs,
                                     stop_first);
        if (e) {
            errors += e;
            failed[n_failed++] = s->block;
            cached = NULL;
            if (stop_first)
                break;
            continue;
        }
        cp = cm = 0;
        for (int k = 0; k < s->block->n_nodes; k++) {
            cp += res[k].params;
            cm += res[k].macs;
        }
        p += cp;
        m += cm;
        cached = s;
    }

    /* Head: global pooling, flatten, the classifier (with bias). */
    int64_t feat = slots[n - 1].out_shape.d[1];
    p += feat * cfg->classes + cfg->classes;
    m += feat * cfg->classes * NET_CHECK_BATCH;
    if (params)
        *params = p;
    if (macs)
        *macs = m / NET_CHECK_BATCH;
    if (res != small)
        free(res);
    if (slots != few)
        free(slots);
    return errors;
}
