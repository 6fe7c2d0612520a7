/*
 * fuzz_graph.c - libFuzzer target for the block reader and everything
 * downstream of it.
 *
 * Any input may be rejected, but never crash, leak or hang; an accepted
 * design must also print to text that reads back to the same text and
 * the same hash, check at a small width without crashing, and assemble
 * when valid.  Built by `make fuzz` (clang, with ASan and UBSan); a short
 * run is part of `make test` (tests/integration/fuzz_graph_short.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

static void s_check_errors(const graph_errors_t *e)
{
    for (int i = 0; i < e->n; i++)
        if (e->v[i].message[0] == '\0' || e->v[i].rule >= GRAPH_RULE_COUNT ||
            memchr(e->v[i].message, '\0', sizeof e->v[i].message) == NULL)
            __builtin_trap();
}

static void s_round_trip(const graph_design_t *d)
{
    graph_design_t *again = NULL;
    graph_errors_t e;
    char h1[33], h2[33];
    char *p1 = graph_design_print(d), *p2 = NULL;

    graph_errors_init(&e);
    if (!p1)
        goto out;
    if (graph_design_parse(p1, strlen(p1), "printed", &again, &e) != 0)
        __builtin_trap(); /* what was accepted must print readably */
    p2 = graph_design_print(again);
    if (!p2 || strcmp(p1, p2) != 0)
        __builtin_trap();
    if (graph_design_hash(d, h1) != 0 || graph_design_hash(again, h2) != 0 ||
        strcmp(h1, h2) != 0)
        __builtin_trap();
out:
    free(p1);
    free(p2);
    graph_design_destroy(&again);
    graph_errors_free(&e);
}

static void s_networks(const graph_design_t *d, size_t size)
{
    net_config_t cfg;
    net_choice_t choice;
    graph_errors_t e;
    net_t *net = NULL;
    net_param_t *params = NULL;

    graph_errors_init(&e);
    net_config_default(&cfg, "cifar10");
    cfg.skeleton = d->two_input ? NET_SKELETON_DARTS : NET_SKELETON_NB201;
    cfg.cells_per_stage = 1;
    cfg.in_h = cfg.in_w = 8;
    cfg.width = 2 + (int)(size % 11);
    if (net_check(d, &cfg, &choice, &e) == 0 &&
        net_build(d, &cfg, 3, &net, &e) == 0) {
        if (net->params != choice.params || net->macs != choice.macs)
            __builtin_trap();
        if (net_param_list(net, &params) < 0)
            __builtin_trap();
    }
    s_check_errors(&e);
    free(params);
    net_destroy(&net);

    /* A short search. */
    graph_errors_clear(&e);
    cfg.width = 0;
    cfg.max_width = 24;
    cfg.budget = 20000;
    net_check(d, &cfg, &choice, &e);
    s_check_errors(&e);
    graph_errors_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    graph_design_t *d = NULL;
    graph_block_t *b = NULL;
    graph_errors_t e;

    if (size > 32768)
        return 0;
    graph_errors_init(&e);
    if (graph_design_parse((const char *)data, size, "fuzz.txt", &d, &e) ==
        0) {
        s_round_trip(d);
        s_networks(d, size);
    }
    s_check_errors(&e);
    graph_errors_clear(&e);
    if (graph_block_parse((const char *)data, size, NULL, &b, &e) == 0) {
        char *c = graph_block_canonical(b);
        free(c);
    }
    s_check_errors(&e);
    graph_block_destroy(&b);
    graph_design_destroy(&d);
    graph_errors_free(&e);
    return 0;
}
