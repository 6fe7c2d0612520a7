/*
 * test_graph_canon.c - the canonical form and design hash: isomorphic
 * designs hash alike whatever their numbering, edge order, names and
 * spelling; different operations, arguments, edges or input order of
 * ordered operations hash apart.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "graph_impl.h"

static void s_hash(const char *text, char out[33])
{
    graph_design_t *d = NULL;
    graph_errors_t e;

    graph_errors_init(&e);
    int rc = graph_design_parse(text, strlen(text), "t.txt", &d, &e);
    for (int i = 0; i < e.n; i++)
        print_message("%s\n", e.v[i].message);
    assert_int_equal(rc, 0);
    assert_int_equal(graph_design_hash(d, out), 0);
    assert_int_equal(strlen(out), 32);
    graph_design_destroy(&d);
    graph_errors_free(&e);
}

static bool s_same(const char *a, const char *b)
{
    char ha[33], hb[33];

    s_hash(a, ha);
    s_hash(b, hb);
    return strcmp(ha, hb) == 0;
}

#define CELL(body) "##C##\n0:input\n1:output\n" body

static void test_same_designs(void **state)
{
    (void)state;
    /* Renumbered, edges in another order, another name. */
    assert_true(s_same(
        CELL("2:Conv2d(out_channels=C,kernel_size=3)\n3:BN\n4:Add\n"
             "0->2\n2->3\n3->4\n0->4\n4->1\n"),
        "##Other##\n7:Add\n3:BN\n1:input\n9:output\n"
        "5:Conv2d(out_channels=C,kernel_size=3)\n"
        "7->9\n1->7\n3->7\n5->3\n1->5\n"));
    /* Default arguments written or not, positional or keyword, case. */
    assert_true(s_same(
        CELL("2:Conv2d(C,3)\n3:DropPath\n0->2\n2->3\n3->1\n"),
        CELL("2:conv2d(out_channels=C,kernel_size=3,stride=1,dilation=1,"
             "groups=1)\n3:droppath(prob=0.2)\n0->2\n2->3\n3->1\n")));
    /* Constant arithmetic is folded; x is *. */
    assert_true(s_same(CELL("2:Conv2d(out_channels=2*2*C,kernel_size=1)\n"
                            "3:Conv2d(out_channels=C,kernel_size=3-2)\n"
                            "0->2\n2->3\n3->1\n"),
                       CELL("2:Conv2d(out_channels=4xC,kernel_size=1)\n"
                            "3:Conv2d(out_channels=C,kernel_size=1)\n"
                            "0->2\n2->3\n3->1\n")));
    /* Add and Mul ignore the order of their inputs. */
    assert_true(s_same(CELL("2:ReLU\n3:Mul\n0->2\n2->3\n0->3\n3->1\n"),
                       CELL("2:ReLU\n3:Mul\n0->3\n0->2\n2->3\n3->1\n")));
}

static void test_different_designs(void **state)
{
    (void)state;
    /* concat and multiply keep their input order. */
    assert_false(s_same(
        CELL("2:ReLU\n3:concat(dim=1)\n4:Conv2d(C,1)\n"
             "0->2\n2->3\n0->3\n3->4\n4->1\n"),
        CELL("2:ReLU\n3:concat(dim=1)\n4:Conv2d(C,1)\n"
             "0->2\n0->3\n2->3\n3->4\n4->1\n")));
    assert_false(s_same(
        CELL("2:reshape(B,C,H*W)\n3:permute(0,2,1)\n4:multiply\n"
             "5:reshape(B,C,H,W)\n0->2\n2->3\n2->4\n3->4\n4->5\n5->1\n"),
        CELL("2:reshape(B,C,H*W)\n3:permute(0,2,1)\n4:multiply\n"
             "5:reshape(B,C,H,W)\n0->2\n2->3\n3->4\n2->4\n4->5\n5->1\n")));
    /* Arguments, including the order of permute's. */
    assert_false(s_same(CELL("2:Conv2d(C,3)\n0->2\n2->1\n"),
                        CELL("2:Conv2d(C,5)\n0->2\n2->1\n")));
    assert_false(s_same(CELL("2:permute(0,2,3,1)\n3:permute(0,3,1,2)\n"
                             "0->2\n2->3\n3->1\n"),
                        CELL("2:permute(0,3,1,2)\n3:permute(0,2,3,1)\n"
                             "0->2\n2->3\n3->1\n")));
    assert_false(s_same(CELL("2:DropPath(prob=0.3)\n0->2\n2->1\n"),
                        CELL("2:DropPath\n0->2\n2->1\n")));
    /* One shared ReLU used twice is not two ReLUs. */
    assert_false(s_same(CELL("2:ReLU\n3:Add\n0->2\n2->3\n2->3\n3->1\n"),
                        CELL("2:ReLU\n4:ReLU\n3:Add\n0->2\n0->4\n2->3\n"
                             "4->3\n3->1\n")));
    /* Rewired edge. */
    assert_false(s_same(CELL("2:ReLU\n3:BN\n4:Add\n"
                             "0->2\n2->3\n3->4\n0->4\n4->1\n"),
                        CELL("2:ReLU\n3:BN\n4:Add\n"
                             "0->2\n2->3\n3->4\n2->4\n4->1\n")));
    /* input1 and input2 are not interchangeable. */
    assert_false(s_same(
        "##D##\n0:input1\n1:input2\n2:output\n3:ReLU\n4:Add\n"
        "0->3\n3->4\n1->4\n4->2\n",
        "##D##\n0:input1\n1:input2\n2:output\n3:ReLU\n4:Add\n"
        "1->3\n3->4\n0->4\n4->2\n"));
    /* The stem and downsample are part of the identity. */
    assert_false(s_same(CELL("2:ReLU\n0->2\n2->1\n"),
                        CELL("2:ReLU\n0->2\n2->1\n")
                            "##C_stem##\n0:input\n1:output\n"
                            "2:Conv2d(dim,1)\n0->2\n2->1\n"));
}

static void test_defaults_are_the_blocks(void **state)
{
    FILE *f = fopen("examples/blocks/resnet_basic.txt", "rb");
    char full[8192], cell[8192];

    (void)state;
    assert_non_null(f);
    size_t n = fread(full, 1, sizeof full - 1, f);
    fclose(f);
    full[n] = '\0';
    /* The file's stem and downsample are the defaults. */
    snprintf(cell, sizeof cell, "%s", full);
    *strstr(cell, "##ResNetBasicBlock_stem##") = '\0';
    assert_true(s_same(full, cell));
}

/* n identical parallel branches, numbered in a given order. */
static char *s_branches(int n, int shift)
{
    static char text[16384];
    int k = 0;

    k += snprintf(text + k, sizeof text - k, "##B##\n0:input\n1:output\n"
                                              "2:Add\n");
    for (int i = 0; i < n; i++) {
        int a = 10 + ((i + shift) % n) * 2;
        k += snprintf(text + k, sizeof text - k,
                      "%d:Conv2d(out_channels=C,kernel_size=3)\n%d:BN\n"
                      "0->%d\n%d->%d\n%d->2\n", a, a + 1, a, a, a + 1,
                      a + 1);
    }
    snprintf(text + k, sizeof text - k, "2->1\n");
    return text;
}

static void test_symmetric_branches(void **state)
{
    char h1[33], h2[33];

    (void)state;
    for (int n = 2; n <= 12; n += 5) {
        clock_t t0 = clock();
        s_hash(s_branches(n, 0), h1);
        s_hash(s_branches(n, 3), h2);
        assert_string_equal(h1, h2);
        /* Far from the worst case n! of a search without pruning. */
        assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
    }
}

/* Print block b with node indices permuted and edges shuffled, keeping
 * the relative order of the edges into each ordered operation. */
static void s_scramble(const graph_block_t *b, const char *name,
                       unsigned *seed, char *out, size_t len)
{
    int n = b->n_nodes, m = b->n_edges;
    int *perm = malloc((size_t)n * sizeof *perm);
    int *order = malloc((size_t)m * sizeof *order);
    size_t k = 0;
    char args[1024];

    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rand_r(seed) % (unsigned)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < m; i++)
        order[i] = i;
    for (int i = m - 1; i > 0; i--) {
        int j = (int)(rand_r(seed) % (unsigned)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* Restore the written order among edges into ordered operations. */
    for (int v = 0; v < n; v++) {
        const graph_node_t *nd = &b->nodes[v];
        if (!graph_op_info(nd->op)->ordered)
            continue;
        int slots[64], ids[64], c = 0;
        for (int i = 0; i < m && c < 64; i++)
            if (b->edges[order[i]].to == nd->index)
                slots[c++] = i;
        for (int i = 0; i < c; i++)
            ids[i] = order[slots[i]];
        for (int i = 1; i < c; i++)
            for (int j = i; j > 0 && ids[j] < ids[j - 1]; j--) {
                int t = ids[j];
                ids[j] = ids[j - 1];
                ids[j - 1] = t;
            }
        for (int i = 0; i < c; i++)
            order[slots[i]] = ids[i];
    }

    k += (size_t)snprintf(out + k, len - k, "##%s##\n", name);
    for (int i = 0; i < n; i++) {
        const graph_node_t *nd = &b->nodes[perm[i]];
        graph_node_args_format(nd, false, args, sizeof args);
        k += (size_t)snprintf(out + k, len - k, "%d:%s%s%s%s\n",
                              1000 + graph_block_find(b, nd->index) * 7,
                              graph_op_name(nd->op), args[0] ? "(" : "",
                              args, args[0] ? ")" : "");
    }
    for (int i = 0; i < m; i++) {
        const graph_edge_t *e = &b->edges[order[i]];
        k += (size_t)snprintf(out + k, len - k, "%d->%d\n",
                              1000 + graph_block_find(b, e->from) * 7,
                              1000 + graph_block_find(b, e->to) * 7);
    }
    free(perm);
    free(order);
}

/* Every valid block of the repository, scrambled, hashes the same. */
static void test_scrambled_files(void **state)
{
    static const char *dirs[] = {"tests/blocks/good", "examples/blocks"};
    static char text[1 << 16], scrambled[3 << 16];
    unsigned seed = 12345;
    int checked = 0;

    (void)state;
    for (int k = 0; k < 2; k++) {
        DIR *dir = opendir(dirs[k]);
        struct dirent *ent;
        assert_non_null(dir);
        while ((ent = readdir(dir))) {
            char path[512], h1[33], h2[33];
            graph_design_t *d = NULL;
            graph_errors_t e;
            if (!strstr(ent->d_name, ".txt"))
                continue;
            snprintf(path, sizeof path, "%s/%s", dirs[k], ent->d_name);
            FILE *f = fopen(path, "rb");
            size_t n = fread(text, 1, sizeof text - 1, f);
            fclose(f);
            text[n] = '\0';
            graph_errors_init(&e);
            assert_int_equal(graph_design_parse(text, n, path, &d, &e), 0);
            assert_int_equal(graph_design_hash(d, h1), 0);
            for (int round = 0; round < 5; round++) {
                size_t len = 0;
                const graph_block_t *bl[3] = {d->cell, d->stem,
                                              d->downsample};
                const char *names[3] = {"X", "Y_stem", "Z_downsample"};
                for (int i = 0; i < 3; i++) {
                    s_scramble(bl[i], names[i], &seed, scrambled + len,
                               sizeof scrambled - len);
                    len = strlen(scrambled);
                }
                s_hash(scrambled, h2);
                if (strcmp(h1, h2) != 0)
                    print_message("%s\n%s", path, scrambled);
                assert_string_equal(h1, h2);
                checked++;
            }
            graph_design_destroy(&d);
            graph_errors_free(&e);
        }
        closedir(dir);
    }
    assert_true(checked >= 50);
}

static void test_canonical_text(void **state)
{
    const char *t = "##Name##\n5:Add\n9:input\n3:output\n"
                    "4:Conv2d(C,3)\n9->4\n4->5\n9->5\n5->3\n";
    graph_block_t *b = NULL, *b2 = NULL;
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    assert_int_equal(graph_block_parse(t, strlen(t), NULL, &b, &e), 0);
    char *c = graph_block_canonical(b);
    assert_string_equal(c, "##cell##\n0:input\n1:output\n"
                           "2:Conv2d(out_channels=C,kernel_size=3,stride=1,"
                           "dilation=1,groups=1)\n3:Add\n"
                           "0->2\n0->3\n2->3\n3->1\n");
    /* The canonical text reads back to itself. */
    assert_int_equal(graph_block_parse(c, strlen(c), NULL, &b2, &e), 0);
    char *c2 = graph_block_canonical(b2);
    assert_string_equal(c, c2);
    free(c);
    free(c2);
    graph_block_destroy(&b);
    graph_block_destroy(&b2);
    graph_errors_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_designs),
        cmocka_unit_test(test_different_designs),
        cmocka_unit_test(test_defaults_are_the_blocks),
        cmocka_unit_test(test_symmetric_branches),
        cmocka_unit_test(test_scrambled_files),
        cmocka_unit_test(test_canonical_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
