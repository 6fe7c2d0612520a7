/*
 * test_graph_corpus.c - every malformed block in tests/blocks/bad/ is
 * rejected with the block, node and rule its first line names, and
 * every block in tests/blocks/good/ and examples/blocks/ is valid,
 * assembles, and reads back from its printed form with the same hash.
 *
 * A bad file starts with "# expect: BLOCK NODE RULE" (NODE "-" for a
 * block-level error); "# width: W" forces a width, "# skeleton: S"
 * picks the skeleton and "# stem_scale: S" sets the skeleton's stem
 * scale (good files too: the ImageNet-style designs need 4).  The
 * expected error must be the first one reported, and each message must
 * begin the way the LLM is told they begin ("cell node 4 (Add): ..." or
 * "FILE:LINE: ...").
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net.h"

#define MAX_FILES 256

static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;

    assert_non_null(f);
    buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .txt files of dir, sorted; returns the count. */
static int s_list(const char *dir, char **names)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) && n < MAX_FILES) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".txt") == 0) {
            names[n] = malloc(strlen(dir) + len + 2);
            sprintf(names[n++], "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, s_cmp);
    return n;
}

static void s_config(const char *text, const graph_design_t *d,
                     net_config_t *cfg)
{
    const char *p;
    char name[32];

    assert_int_equal(net_config_default(cfg, "cifar10"), 0);
    cfg->skeleton = d && d->two_input ? NET_SKELETON_DARTS
                                      : NET_SKELETON_NB201;
    if ((p = strstr(text, "# width:")))
        cfg->width = atoi(p + 8);
    if ((p = strstr(text, "# stem_scale:")))
        cfg->stem_scale = atoi(p + 13);
    if ((p = strstr(text, "# skeleton:")) &&
        sscanf(p + 11, "%31s", name) == 1)
        cfg->skeleton = (net_skeleton_t)net_skeleton_parse(name);
}

static void s_dump(const char *file, const graph_errors_t *e)
{
    print_message("%s:\n", file);
    for (int i = 0; i < e->n; i++)
        print_message("  [%s %d %s] %s\n", e->v[i].block, e->v[i].node,
                      graph_rule_name(e->v[i].rule), e->v[i].message);
}

static void test_bad_blocks(void **state)
{
    char *files[MAX_FILES];
    int n = s_list("tests/blocks/bad", files), failures = 0;

    (void)state;
    assert_true(n >= 40);
    for (int i = 0; i < n; i++) {
        size_t len;
        char *text = s_slurp(files[i], &len);
        char block[32], node[16], rule[32];
        graph_design_t *d = NULL;
        graph_errors_t e;
        net_config_t cfg;

        assert_int_equal(sscanf(text, "# expect: %31s %15s %31s", block, node,
                                rule), 3);
        graph_errors_init(&e);
        if (graph_design_parse(text, len, files[i], &d, &e) == 0) {
            s_config(text, d, &cfg);
            assert_int_equal(e.n, 0);
            net_check(d, &cfg, NULL, &e);
        }

        int want_node = strcmp(node, "-") == 0 ? -1 : atoi(node);
        bool ok = e.n > 0 && strcmp(e.v[0].block, block) == 0 &&
                  e.v[0].node == want_node &&
                  strcmp(graph_rule_name(e.v[0].rule), rule) == 0;

        /* Every message begins as documented. */
        for (int k = 0; ok && k < e.n; k++) {
            char head[96];
            const graph_error_t *x = &e.v[k];
            if (x->rule == GRAPH_RULE_SYNTAX ||
                x->rule == GRAPH_RULE_DESIGN) {
                snprintf(head, sizeof head, "%s:", files[i]);
                ok = strncmp(x->message, head, strlen(head)) == 0 ||
                     strncmp(x->message, x->block, strlen(x->block)) == 0;
            } else if (x->node >= 0) {
                snprintf(head, sizeof head, "%s node %d", x->block, x->node);
                ok = strncmp(x->message, head, strlen(head)) == 0;
            } else {
                snprintf(head, sizeof head, "%s: ", x->block);
                ok = strncmp(x->message, head, strlen(head)) == 0;
            }
        }
        if (!ok) {
            print_message("expected %s %s %s\n", block, node, rule);
            s_dump(files[i], &e);
            failures++;
        }
        graph_design_destroy(&d);
        graph_errors_free(&e);
        free(text);
        free(files[i]);
    }
    assert_int_equal(failures, 0);
}

static void s_good_dir(const char *dir, int *count)
{
    char *files[MAX_FILES];
    int n = s_list(dir, files), failures = 0;

    for (int i = 0; i < n; i++) {
        size_t len;
        char *text = s_slurp(files[i], &len);
        graph_design_t *d = NULL, *again = NULL;
        graph_errors_t e;
        net_config_t cfg;
        net_choice_t choice;
        net_t *net = NULL;
        char h1[33], h2[33];
        bool ok = false;

        graph_errors_init(&e);
        if (graph_design_parse(text, len, files[i], &d, &e) < 0)
            goto done;
        s_config(text, d, &cfg);
        if (net_check(d, &cfg, &choice, &e) != 0 || choice.width < 1)
            goto done;
        if (net_build(d, &cfg, 4, &net, &e) < 0)
            goto done;
        if (net->params != choice.params || net->macs != choice.macs ||
            net->width != choice.width)
            goto done;

        char *printed = graph_design_print(d);
        int rc = graph_design_parse(printed, strlen(printed), "printed",
                                    &again, &e);
        free(printed);
        if (rc < 0 || graph_design_hash(d, h1) < 0 ||
            graph_design_hash(again, h2) < 0 || strcmp(h1, h2) != 0)
            goto done;
        ok = true;
    done:
        if (!ok) {
            s_dump(files[i], &e);
            failures++;
        }
        net_destroy(&net);
        graph_design_destroy(&d);
        graph_design_destroy(&again);
        graph_errors_free(&e);
        free(text);
        free(files[i]);
    }
    *count += n;
    assert_int_equal(failures, 0);
}

static void test_good_blocks(void **state)
{
    int count = 0;

    (void)state;
    s_good_dir("tests/blocks/good", &count);
    s_good_dir("examples/blocks", &count);
    assert_true(count >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_blocks),
        cmocka_unit_test(test_good_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
