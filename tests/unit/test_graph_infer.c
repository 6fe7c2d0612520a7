/*
 * test_graph_infer.c - shape inference, parameter and MAC counts, and the
 * exact messages of shape, argument and role failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph_impl.h"

/* A cell whose body is `nodes` and `edges` (input 0, output 1). */
static graph_block_t *s_block(const char *nodes, const char *edges)
{
    char text[4096];
    graph_block_t *b = NULL;
    graph_errors_t e;

    snprintf(text, sizeof text, "##T##\n0:input\n1:output\n%s\n%s\n", nodes,
             edges);
    graph_errors_init(&e);
    int rc = graph_block_parse(text, strlen(text), "t.txt", &b, &e);
    for (int i = 0; i < e.n; i++)
        print_message("%s\n", e.v[i].message);
    assert_int_equal(rc, 0);
    graph_errors_free(&e);
    return b;
}

typedef struct run {
    graph_node_info_t info[64];
    graph_shape_t out;
    graph_errors_t errs;
    int n_errors;
} run_t;

static void s_infer(const graph_block_t *b, int64_t C, int64_t H, run_t *r)
{
    graph_bindings_t bind = {.B = 2, .C = C, .dim = C, .H = H, .W = H};
    graph_shape_t in = {.ndim = 4, .d = {2, C, H, H}, .batch_mask = 1};

    graph_errors_init(&r->errs);
    r->n_errors = graph_block_infer(b, &bind, &in, r->info, &r->out,
                                    &r->errs);
}

static const graph_node_info_t *s_info(const graph_block_t *b, run_t *r,
                                       int index)
{
    return &r->info[graph_block_find(b, index)];
}

static void s_shape_is(const graph_shape_t *s, const char *want)
{
    char buf[96];

    assert_string_equal(graph_shape_format(s, buf, sizeof buf), want);
}

/* The padding rule of docs/graph-format.md, case by case. */
static void test_same_padding(void **state)
{
    static const struct {
        int64_t in, k, s, d, out, pad;
        bool crop;
    } cases[] = {
        {32, 3, 1, 1, 32, 1, false}, {32, 3, 2, 1, 16, 1, false},
        {32, 2, 2, 1, 16, 0, false}, /* 2x2 stride 2: not cropped */
        {32, 2, 1, 1, 32, 1, true},  /* even window at stride 1 */
        {32, 4, 1, 1, 32, 2, true},  {32, 4, 2, 1, 16, 1, false},
        {32, 1, 2, 1, 16, 0, false}, {31, 3, 2, 1, 16, 1, false},
        {32, 3, 1, 2, 32, 2, false}, /* dilated: e = 5 */
        {32, 5, 1, 2, 32, 4, false}, {32, 7, 1, 1, 32, 3, false},
        {32, 4, 4, 1, 8, 0, false},  {8, 3, 2, 1, 4, 1, false},
        {1, 2, 4, 1, 0, 0, false},   /* does not fit */
        {32, 2, 1, 3, 32, 2, true},  /* e = 4 */
        {7, 7, 1, 1, 7, 3, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t pad;
        bool crop;
        int64_t out = graph_same_out(cases[i].in, cases[i].k, cases[i].s,
                                     cases[i].d, &pad, &crop);
        assert_int_equal(out, cases[i].out);
        if (out > 0) {
            assert_int_equal(pad, cases[i].pad);
            assert_int_equal(crop, cases[i].crop);
        }
    }
}

static void test_conv_counts(void **state)
{
    graph_block_t *b = s_block(
        "2:Conv2d(out_channels=C,kernel_size=3)\n3:BN\n"
        "4:Conv2d(out_channels=2*C,kernel_size=3,stride=2,groups=4)\n"
        "5:Conv2d(out_channels=C,kernel_size=1)\n"
        "6:AvgPool2d(kernel_size=2,stride=2)\n7:Add",
        "0->2\n2->3\n3->4\n4->5\n0->6\n5->7\n6->7\n7->1");
    run_t r;

    (void)state;
    s_infer(b, 32, 16, &r);
    assert_int_equal(r.n_errors, 1); /* the cell halves H: role */
    assert_int_equal(r.errs.v[0].rule, GRAPH_RULE_ROLE);
    assert_string_equal(r.errs.v[0].message,
                        "cell node 1 (output): gets (B,32,8,8), but a cell "
                        "must return the shape of its input, (B,32,16,16)");
    assert_int_equal(s_info(b, &r, 2)->params, 32 * 32 * 9 + 32);
    assert_int_equal(s_info(b, &r, 2)->macs, 2LL * 32 * 32 * 9 * 16 * 16);
    assert_int_equal(s_info(b, &r, 3)->params, 64);
    assert_int_equal(s_info(b, &r, 3)->macs, 0);
    /* grouped: out 64, in/groups 8 */
    assert_int_equal(s_info(b, &r, 4)->params, 64 * 8 * 9 + 64);
    assert_int_equal(s_info(b, &r, 4)->macs, 2LL * 64 * 8 * 9 * 8 * 8);
    s_shape_is(&s_info(b, &r, 4)->shape, "(B,64,8,8)");
    s_shape_is(&s_info(b, &r, 6)->shape, "(B,32,8,8)");
    s_shape_is(&r.out, "(B,32,8,8)");
    graph_errors_free(&r.errs);
    graph_block_destroy(&b);
}

/* The SE gate of the public release's style: shapes and counts. */
static void test_se_gate(void **state)
{
    graph_block_t *b = s_block(
        "2:AdaptiveAvgPool2d(output_size=1)\n3:reshape(B,C)\n"
        "4:Linear(out_channels=C/4)\n5:ReLU\n6:Linear(out_channels=C)\n"
        "7:Sigmoid\n8:reshape(B,C,1,1)\n9:Mul",
        "0->2\n2->3\n3->4\n4->5\n5->6\n6->7\n7->8\n8->9\n0->9\n9->1");
    run_t r;

    (void)state;
    s_infer(b, 64, 8, &r);
    assert_int_equal(r.n_errors, 0);
    s_shape_is(&s_info(b, &r, 2)->shape, "(B,64,1,1)");
    s_shape_is(&s_info(b, &r, 3)->shape, "(B,64)");
    s_shape_is(&s_info(b, &r, 4)->shape, "(B,16)");
    assert_int_equal(s_info(b, &r, 4)->params, 64 * 16 + 16);
    assert_int_equal(s_info(b, &r, 4)->macs, 2 * 64 * 16);
    s_shape_is(&s_info(b, &r, 8)->shape, "(B,64,1,1)");
    s_shape_is(&s_info(b, &r, 9)->shape, "(B,64,8,8)");
    graph_errors_free(&r.errs);
    graph_block_destroy(&b);
}

/* ConvNeXt layout: permute, LN and Linear channels-last. */
static void test_channels_last(void **state)
{
    graph_block_t *b = s_block(
        "2:Conv2d(out_channels=C,kernel_size=7,groups=C)\n"
        "3:permute(0,2,3,1)\n4:LN\n5:Linear(out_channels=4*C)\n6:GELU\n"
        "7:Linear(out_channels=C)\n8:permute(0,3,1,2)\n9:Add",
        "0->2\n2->3\n3->4\n4->5\n5->6\n6->7\n7->8\n8->9\n0->9\n9->1");
    run_t r;

    (void)state;
    s_infer(b, 16, 8, &r);
    assert_int_equal(r.n_errors, 0);
    s_shape_is(&s_info(b, &r, 3)->shape, "(B,8,8,16)");
    assert_int_equal(s_info(b, &r, 4)->params, 32);
    assert_int_equal(s_info(b, &r, 5)->params, 16 * 64 + 64);
    assert_int_equal(s_info(b, &r, 5)->macs, 2LL * 8 * 8 * 16 * 64);
    assert_int_equal(s_info(b, &r, 2)->params, 16 * 49 + 16);
    graph_errors_free(&r.errs);
    graph_block_destroy(&b);
}

/* Shuffle with a 5-D reshape and permute; attention with multiply. */
static void test_reshape_permute_multiply(void **state)
{
    graph_block_t *b = s_block(
        "2:reshape(B,4,C/4,H,W)\n3:permute(0,2,1,3,4)\n"
        "4:reshape(B,-1,H,W)\n5:reshape(B,C,H*W)\n6:permute(0,2,1)\n"
        "7:multiply\n8:softmax(dim=-1)\n9:multiply\n10:reshape(B,C,H,W)",
        "0->2\n2->3\n3->4\n4->5\n5->6\n6->7\n5->7\n7->8\n8->9\n6->9\n"
        "9->10\n10->1");
    run_t r;

    (void)state;
    s_infer(b, 16, 4, &r);
    for (int i = 0; i < r.errs.n; i++)
        print_message("%s\n", r.errs.v[i].message);
    assert_int_equal(r.n_errors, 0);
    s_shape_is(&s_info(b, &r, 2)->shape, "(B,4,4,4,4)");
    s_shape_is(&s_info(b, &r, 4)->shape, "(B,16,4,4)");
    s_shape_is(&s_info(b, &r, 6)->shape, "(B,16,16)");
    s_shape_is(&s_info(b, &r, 7)->shape, "(B,16,16)");
    assert_int_equal(s_info(b, &r, 7)->macs, 2 * 16 * 16 * 16);
    s_shape_is(&s_info(b, &r, 9)->shape, "(B,16,16)");
    graph_errors_free(&r.errs);
    graph_block_destroy(&b);
}

static void test_reductions_and_repeat(void **state)
{
    graph_block_t *b = s_block(
        "2:mean(dim=1)\n3:max(dim=(1,))\n4:concat(dim=1)\n"
        "5:sum(dim=(-1,-2))\n6:repeat(1,C/2,H,W)\n7:Mul\n"
        "8:AdaptiveMaxPool2d(output_size=(1,2))\n9:repeat(1,1,H,W/2)\n"
        "10:Add",
        "0->2\n0->3\n2->4\n3->4\n4->5\n5->6\n6->7\n0->7\n0->8\n8->9\n"
        "7->10\n9->10\n10->1");
    run_t r;

    (void)state;
    s_infer(b, 8, 4, &r);
    for (int i = 0; i < r.errs.n; i++)
        print_message("%s\n", r.errs.v[i].message);
    assert_int_equal(r.n_errors, 0);
    s_shape_is(&s_info(b, &r, 4)->shape, "(B,2,4,4)");
    s_shape_is(&s_info(b, &r, 5)->shape, "(B,2,1,1)");
    s_shape_is(&s_info(b, &r, 6)->shape, "(B,8,4,4)");
    s_shape_is(&s_info(b, &r, 8)->shape, "(B,8,1,2)");
    graph_errors_free(&r.errs);
    graph_block_destroy(&b);
}

static void s_fails(const char *nodes, const char *edges, int64_t C,
                    const char *message)
{
    graph_block_t *b = s_block(nodes, edges);
    run_t r;

    s_infer(b, C, 16, &r);
    assert_true(r.n_errors > 0);
    if (strcmp(r.errs.v[0].message, message) != 0)
        print_message("got: %s\nwant: %s\n", r.errs.v[0].message, message);
    assert_string_equal(r.errs.v[0].message, message);
    graph_errors_free(&r.errs);
    graph_block_destroy(&b);
}

/* The messages the language model sees, word for word. */
static void test_messages(void **state)
{
    (void)state;
    s_fails("2:Conv2d(out_channels=2*C,kernel_size=3)\n3:Add",
            "0->2\n2->3\n0->3\n3->1", 32,
            "cell node 3 (Add): shapes (B,64,16,16) and (B,32,16,16) do "
            "not broadcast");
    s_fails("5:Conv2d(out_channels=C/4,kernel_size=1)\n"
            "6:Conv2d(out_channels=C,kernel_size=1)",
            "0->5\n5->6\n6->1", 18,
            "cell node 5 (Conv2d): out_channels = C/4 = 4.5 is not a whole "
            "number at C=18");
    s_fails("2:Conv2d(out_channels=C,kernel_size=3,groups=4)",
            "0->2\n2->1", 18,
            "cell node 2 (Conv2d): groups = 4 does not divide the input "
            "channels 18");
    s_fails("2:Conv2d(out_channels=C,kernel_size=C-18)", "0->2\n2->1", 18,
            "cell node 2 (Conv2d): kernel_size = C-18 = 0 is not a positive "
            "integer at C=18");
    s_fails("2:Conv2d(out_channels=C,kernel_size=0)", "0->2\n2->1", 18,
            "cell node 2 (Conv2d): kernel_size = 0 is not a positive "
            "integer");
    s_fails("2:MaxPool2d(kernel_size=2,stride=2)\n3:concat(dim=1)\n"
            "4:Conv2d(out_channels=C,kernel_size=1)",
            "0->2\n2->3\n0->3\n3->4\n4->1", 8,
            "cell node 3 (concat): shapes (B,8,8,8) and (B,8,16,16) differ "
            "outside dim 1");
    s_fails("2:reshape(B,C,H*W)\n3:multiply\n4:reshape(B,C,H,W)",
            "0->2\n2->3\n2->3\n3->4\n4->1", 8,
            "cell node 3 (multiply): shapes (B,8,256) and (B,8,256) do not "
            "fit a matrix product: the last dimension of the first (256) "
            "must equal the second-to-last of the second (8)");
    s_fails("2:reshape(B,C,H)", "0->2\n2->1", 8,
            "cell node 2 (reshape): cannot reshape (B,8,16,16) (4096 "
            "elements) to (B,8,16): the element counts differ");
    s_fails("2:reshape(B,C*H*W)\n3:Conv2d(out_channels=C,kernel_size=1)",
            "0->2\n2->3\n3->1", 8,
            "cell node 3 (Conv2d): Conv2d needs a 4-D (B,C,H,W) input, got "
            "(B,2048)");
    s_fails("2:permute(0,2,1)", "0->2\n2->1", 8,
            "cell node 2 (permute): 3 dims given for the 4-D input "
            "(B,8,16,16); list each dimension once");
    s_fails("2:softmax(dim=0)", "0->2\n2->1", 8,
            "cell node 2 (softmax): dim 0 of (B,8,16,16) is the batch; this "
            "would mix the images of a batch");
    s_fails("2:concat(dim=5)\n3:Conv2d(out_channels=C,kernel_size=1)",
            "0->2\n0->2\n2->3\n3->1", 8,
            "cell node 2 (concat): dim 5 is out of range for (B,8,16,16) "
            "(use 0..3 or -4..-1)");
    s_fails("2:DropPath(prob=1)", "0->2\n2->1", 8,
            "cell node 2 (DropPath): prob = 1 must be at least 0 and "
            "below 1");
    s_fails("2:Conv2d(out_channels=C,kernel_size=3,stride=2)",
            "0->2\n2->1", 8,
            "cell node 1 (output): gets (B,8,8,8), but a cell must return "
            "the shape of its input, (B,8,16,16)");
}

/* A node whose input failed is not reported again. */
static void test_no_cascade(void **state)
{
    graph_block_t *b = s_block(
        "2:Conv2d(out_channels=C/3,kernel_size=1)\n3:BN\n4:ReLU\n"
        "5:Conv2d(out_channels=C,kernel_size=1)\n6:Conv2d(out_channels=C/5,"
        "kernel_size=1)\n7:Conv2d(out_channels=C,kernel_size=1)\n8:Add",
        "0->2\n2->3\n3->4\n4->5\n0->6\n6->7\n5->8\n7->8\n8->1");
    run_t r;

    (void)state;
    s_infer(b, 16, 8, &r);
    assert_int_equal(r.n_errors, 2); /* nodes 2 and 6, nothing after */
    assert_int_equal(r.errs.v[0].node == 2 || r.errs.v[1].node == 2, 1);
    assert_int_equal(r.errs.v[0].node == 6 || r.errs.v[1].node == 6, 1);
    graph_errors_free(&r.errs);

    /* Quiet mode, first error only. */
    graph_bindings_t bind = {2, 16, 16, 8, 8};
    graph_shape_t in = {4, {2, 16, 8, 8}, 1};
    assert_int_equal(graph_block_infer_ex(b, &bind, &in, 1, NULL, NULL, NULL,
                                          true), 1);
    graph_block_destroy(&b);
}

static void test_roles(void **state)
{
    const char *t = "##X_downsample##\n0:input\n1:output\n"
                    "2:Conv2d(out_channels=dim,kernel_size=3,stride=2)\n"
                    "0->2\n2->1\n";
    graph_block_t *b = NULL;
    graph_errors_t e;
    graph_bindings_t bind = {2, 16, 32, 16, 16};
    graph_shape_t in = {4, {2, 16, 16, 16}, 1}, out;

    (void)state;
    graph_errors_init(&e);
    assert_int_equal(graph_block_parse(t, strlen(t), NULL, &b, &e), 0);
    assert_int_equal(graph_block_infer(b, &bind, &in, NULL, &out, &e), 0);
    s_shape_is(&out, "(B,32,8,8)");

    /* As a stem the same block is wrong: stems keep the resolution. */
    b->role = GRAPH_ROLE_STEM;
    assert_int_equal(graph_block_infer(b, &bind, &in, NULL, &out, &e), 1);
    assert_string_equal(e.v[0].message,
                        "stem node 1 (output): gets (B,32,8,8), but a stem "
                        "must return dim channels at the input resolution "
                        "16x16 (stem_scale 1), (B,32,16,16)");

    /* A skeleton with stem_scale 2 takes it, and 4 wants 4x4 (and says
     * so); the other roles ignore the scale. */
    graph_errors_free(&e);
    graph_errors_init(&e);
    assert_int_equal(graph_block_infer_ex(b, &bind, &in, 2, NULL, &out, &e,
                                          false), 0);
    s_shape_is(&out, "(B,32,8,8)");
    assert_int_equal(graph_block_infer_ex(b, &bind, &in, 4, NULL, &out, &e,
                                          false), 1);
    assert_string_equal(e.v[0].message,
                        "stem node 1 (output): gets (B,32,8,8), but a stem "
                        "must return dim channels at 4x4, the 16x16 input "
                        "reduced 4x (stem_scale 4), (B,32,4,4)");
    b->role = GRAPH_ROLE_DOWNSAMPLE;
    assert_int_equal(graph_block_infer_ex(b, &bind, &in, 4, NULL, &out, &e,
                                          false), 0);
    graph_block_destroy(&b);
    graph_errors_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_padding),
        cmocka_unit_test(test_conv_counts),
        cmocka_unit_test(test_se_gate),
        cmocka_unit_test(test_channels_last),
        cmocka_unit_test(test_reshape_permute_multiply),
        cmocka_unit_test(test_reductions_and_repeat),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_no_cascade),
        cmocka_unit_test(test_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
