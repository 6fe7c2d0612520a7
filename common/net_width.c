/*
 * net_width.c - choose the base width of a design for a parameter
 * budget under a MAC cap, and check a design completely.
 *
 * The objective is the spec's: among the widths in [min_width,
 * max_width] at which the design is valid, the one whose whole-network
 * parameter count is closest to the budget with MACs per image at most
 * the cap.  Parameters and MACs grow with the width for any block whose
 * sizes grow with C and dim (every block of the format in practice), and
 * the search relies on that to stay fast:
 *
 *   1. gallop: try the first valid width at or above 1, 2, 4, 8, ...
 *      until one reaches the budget or the cap;
 *   2. scan every width upward from the last probe below the budget,
 *      skipping invalid ones, and stop once the MACs exceed the cap or
 *      the parameters have passed the budget by more than the best
 *      distance found.
 *
 * A width is tried by measuring the design quietly and stopping at its
 * first error, so invalid widths cost little.
 */
#include "net_impl.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct probe {
    int w;
    int64_t params, macs;
} probe_t;

static bool s_valid(const graph_design_t *d, const net_config_t *cfg, int w,
                    probe_t *p)
{
    p->w = w;
    return net_measure(d, cfg, w, &p->params, &p->macs, NULL, true) == 0;
}

/* The first valid width in [w, max]; false when there is none. */
static bool s_next_valid(const graph_design_t *d, const net_config_t *cfg,
                         int w, int max, probe_t *p)
{
    for (; w <= max; w++)
        if (s_valid(d, cfg, w, p))
            return true;
    return false;
}

static int64_t s_abs(int64_t v)
{
    return v < 0 ? -v : v;
}

static void s_fill(const net_config_t *cfg, const probe_t *p,
                   net_choice_t *out)
{
    if (!out)
        return;
    out->width = p->w;
    out->params = p->params;
    out->macs = p->macs;
    out->within_tolerance =
        (double)s_abs(p->params - cfg->budget) <=
        cfg->tolerance * (double)cfg->budget;
}

/* When no width is valid: the errors at the reference width with the
 * fewest of them (16 first), so that the report is about the design and
 * not about an unlucky width. */
static void s_report_reference(const graph_design_t *d,
                               const net_config_t *cfg, int min, int max,
                               graph_errors_t *errs)
{
    static const int refs[] = {16, 32, 64, 8, 24, 48, 96, 128, 12,
                               20, 40, 80, 160, 256, 4, 2, 1};
    int best = -1, best_errors = 0;

    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        int w = refs[i];
        if (w < min || w > max)
            continue;
        graph_errors_t quiet;
        graph_errors_init(&quiet);
        int e = net_measure(d, cfg, w, NULL, NULL, &quiet, false);
        graph_errors_free(&quiet);
        if (best < 0 || e < best_errors) {
            best = w;
            best_errors = e;
        }
    }
    if (best < 0)
        best = min;
    if (net_measure(d, cfg, best, NULL, NULL, errs, false) == 0)
        graph_errors_add(errs, GRAPH_RULE_BUDGET, "design", -1, 0,
                         "design: no valid width in %d..%d", min, max);
}

int net_choose_width(const graph_design_t *d, const net_config_t *cfg,
                     net_choice_t *out, graph_errors_t *errs)
{
    int min = cfg->min_width > 0 ? cfg->min_width : 1;
    int max = cfg->max_width > 0 ? cfg->max_width : 1024;
    int64_t cap = net_mac_cap(cfg), budget = cfg->budget;
    probe_t p, prev = {0}, best = {0};
    bool have_prev = false, have_best = false;

    if (out)
        *out = (net_choice_t){0};
    if (cfg->width > 0) {
        if (net_measure(d, cfg, cfg->width, &p.params, &p.macs, errs,
                        false) != 0)
            return -1;
        p.w = cfg->width;
        s_fill(cfg, &p, out);
        return 0;
    }
    if (min > max) {
        graph_errors_add(errs, GRAPH_RULE_BUDGET, "design", -1, 0,
                         "design: empty width range %d..%d", min, max);
        return -1;
    }

    /* 1. Gallop to bracket the budget. */
    int w = min;
    bool any = false;
    while (w <= max && s_next_valid(d, cfg, w, max, &p)) {
        any = true;
        if (p.params >= budget || p.macs > cap)
            break;
        prev = p;
        have_prev = true;
        w = p.w * 2 > p.w + 1 ? p.w * 2 : p.w + 1;
    }
    if (!any) {
        s_report_reference(d, cfg, min, max, errs);
        return -1;
    }

    /* 2. Scan upward from the last probe below the budget. */
    int64_t smallest_macs = -1;
    for (w = have_prev ? prev.w : min; w <= max; w++) {
        if (!s_valid(d, cfg, w, &p))
            continue;
        if (smallest_macs < 0)
            smallest_macs = p.macs;
        if (p.macs > cap)
            break;
        int64_t dist = s_abs(p.params - budget);
        if (!have_best || dist < s_abs(best.params - budget)) {
            best = p;
            have_best = true;
        }
        if (p.params > budget && dist > s_abs(best.params - budget))
            break;
    }
    if (!have_best) {
        graph_errors_add(errs, GRAPH_RULE_BUDGET, "design", -1, 0,
                         "design: no width in %d..%d keeps the MACs under "
                         "%.3g G per image (the smallest valid width needs "
                         "%.3g G); make the cell cheaper",
                         min, max, (double)cap / 1e9,
                         (double)smallest_macs / 1e9);
        return -1;
    }
    s_fill(cfg, &best, out);
    return 0;
}

int net_check(const graph_design_t *d, const net_config_t *cfg,
              net_choice_t *choice, graph_errors_t *errs)
{
    int before = errs ? errs->n : 0;
    graph_errors_t local;
    graph_errors_t *e = errs;
    int added;

    if (!e) {
        graph_errors_init(&local);
        e = &local;
    }
    if (net_choose_width(d, cfg, choice, e) < 0 && e->n == before)
        graph_errors_add(e, GRAPH_RULE_BUDGET, "design", -1, 0,
                         "design: no width could be chosen");
    added = e->n - before;
    if (e == &local)
        graph_errors_free(&local);
    return added;
}
