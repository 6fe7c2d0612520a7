/*
 * test_graph_parse.c - reading block files into designs, and printing
 * them back: the spellings the format allows, the roles, the defaults,
 * and the messages for what cannot be read.
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

static graph_design_t *s_parse(const char *text, graph_errors_t *errs)
{
    graph_design_t *d = NULL;
    int rc = graph_design_parse(text, strlen(text), "design.txt", &d, errs);

    assert_true((rc == 0) == (d != NULL));
    return d;
}

static const graph_node_t *s_node(const graph_block_t *b, int index)
{
    int pos = graph_block_find(b, index);

    assert_true(pos >= 0);
    return &b->nodes[pos];
}

static bool s_has(const graph_errors_t *e, const char *text)
{
    for (int i = 0; i < e->n; i++)
        if (strstr(e->v[i].message, text))
            return true;
    return false;
}

static void test_example_files(void **state)
{
    static const char *files[] = {"examples/blocks/resnet_basic.txt",
                                  "examples/blocks/nasbench201_seed777.txt"};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "rb");
        char buf[8192];
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';

        graph_errors_t e;
        graph_errors_init(&e);
        graph_design_t *d = s_parse(buf, &e);
        assert_int_equal(e.n, 0);
        assert_non_null(d);
        assert_false(d->stem_default);
        assert_false(d->downsample_default);
        assert_false(d->two_input);
        assert_int_equal(d->downsample->n_nodes, 11);
        assert_int_equal(d->stem->role, GRAPH_ROLE_STEM);
        graph_design_destroy(&d);
        graph_errors_free(&e);
    }
}

/* Comments, blank lines, case, A,B->C, chains, positional and keyword
 * arguments, and the x for multiplication all read. */
static void test_spellings(void **state)
{
    const char *text =
        "# a comment line\n"
        "##Mixed##   # a comment after a header\n"
        "  0 : INPUT  \n"
        "1:Output\n"
        "\n"
        "2:conv2d(C, 3, stride=1)   # positional then keyword\n"
        "3:bn\n"
        "4:Conv2d(out_channels=Cx2/2,kernel_size=1,)\n"
        "5:add\n"
        "6:CONCAT(dim=1)\n"
        "7:Conv2d(C,1)\n"
        "8:Mean(dim=(2,3))\n"
        "9:Mul\n"
        "0->2->3\n"
        "0->4\n"
        "3,4->5\n"
        "5,0->6\n"
        "6->7\n"
        "7->8\n"
        "8,7->9\n"
        "9->1\n";
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    graph_design_t *d = s_parse(text, &e);
    for (int i = 0; i < e.n; i++)
        print_message("%s\n", e.v[i].message);
    assert_non_null(d);
    assert_true(d->stem_default);
    assert_true(d->downsample_default);

    const graph_block_t *c = d->cell;
    assert_string_equal(c->name, "Mixed");
    assert_int_equal(s_node(c, 0)->op, GRAPH_OP_INPUT);
    assert_int_equal(s_node(c, 2)->op, GRAPH_OP_CONV2D);
    assert_int_equal(s_node(c, 6)->op, GRAPH_OP_CONCAT);

    /* Edge order: 6 takes 5 then 0; 9 takes 8 then 7. */
    const graph_node_t *cat = s_node(c, 6);
    assert_int_equal(cat->n_inputs, 2);
    assert_int_equal(c->nodes[cat->inputs[0]].index, 5);
    assert_int_equal(c->nodes[cat->inputs[1]].index, 0);
    assert_int_equal(s_node(c, 3)->n_inputs, 1);

    /* Arguments are normalised to keywords in table order. */
    char *s = graph_block_print(c);
    assert_non_null(strstr(s, "2:Conv2d(out_channels=C,kernel_size=3,"
                              "stride=1)\n"));
    assert_non_null(strstr(s, "4:Conv2d(out_channels=C*2/2,kernel_size=1)"));
    assert_non_null(strstr(s, "8:mean(dim=(2,3))\n"));
    assert_non_null(strstr(s, "6:concat(dim=1)\n"));
    assert_non_null(strstr(s, "5->6\n0->6\n"));
    free(s);
    graph_design_destroy(&d);
    graph_errors_free(&e);
}

/* Printing and reading back gives the same text. */
static void test_print_round_trip(void **state)
{
    const char *text =
        "##A##\n0:input\n1:output\n"
        "2:Conv2d(kernel_size=3, out_channels=C/4)\n"
        "3:reshape(B, C/4, H*W)\n4:permute((0,2,1))\n"
        "5:softmax(-1)\n6:reshape(B,-1,H,W)\n7:Conv2d(C,1)\n"
        "8:DropPath\n9:AdaptiveAvgPool2d(output_size=(1,1))\n10:Mul\n"
        "0->2\n2->3\n3->4\n4->5\n5->6\n6->7\n7->8\n8->9\n9,8->10\n10->1\n";
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    graph_design_t *d = s_parse(text, &e);
    assert_non_null(d);
    char *once = graph_design_print(d);
    graph_design_t *d2 = s_parse(once, &e);
    assert_non_null(d2);
    assert_false(d2->stem_default); /* printed defaults are now explicit */
    char *twice = graph_design_print(d2);
    assert_string_equal(once, twice);
    assert_non_null(strstr(once, "##A_stem##"));
    assert_non_null(strstr(once, "##A_downsample##"));
    assert_non_null(strstr(once, "4:permute(0,2,1)\n"));
    assert_non_null(strstr(once, "5:softmax(dim=-1)\n"));
    assert_non_null(strstr(once,
                           "9:AdaptiveAvgPool2d(output_size=(1,1))\n"));
    free(once);
    free(twice);

    /* A clone prints the same. */
    graph_design_t *c = graph_design_clone(d2);
    once = graph_design_print(d2);
    twice = graph_design_print(c);
    assert_string_equal(once, twice);
    free(once);
    free(twice);
    graph_design_destroy(&c);
    graph_design_destroy(&d);
    graph_design_destroy(&d2);
    assert_null(d);
    graph_errors_free(&e);
}

static void test_roles_and_defaults(void **state)
{
    /* Names of different prefixes still form one design. */
    const char *text =
        "##Foo_downsample##\n0:input\n1:output\n"
        "2:Conv2d(out_channels=dim,kernel_size=2,stride=2)\n0->2\n2->1\n"
        "##Bar##\n0:input\n1:output\n2:ReLU\n0->2\n2->1\n";
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    graph_design_t *d = s_parse(text, &e);
    assert_non_null(d);
    assert_string_equal(d->cell->name, "Bar");
    assert_string_equal(d->downsample->name, "Foo_downsample");
    assert_true(d->stem_default);
    assert_false(d->downsample_default);
    graph_design_destroy(&d);

    /* Two-input cells get the two-input defaults. */
    const char *darts = "##D##\n0:input1\n1:input2\n2:output\n3:Add\n"
                        "0->3\n1->3\n3->2\n";
    d = s_parse(darts, &e);
    assert_non_null(d);
    assert_true(d->two_input);
    assert_int_equal(d->downsample->nodes[0].op, GRAPH_OP_INPUT1);
    assert_int_equal(d->stem->nodes[0].op, GRAPH_OP_INPUT);
    graph_design_destroy(&d);

    graph_block_t *b = graph_default_downsample(false);
    assert_non_null(b);
    assert_int_equal(b->role, GRAPH_ROLE_DOWNSAMPLE);
    assert_int_equal(b->n_nodes, 11);
    graph_block_destroy(&b);
    assert_null(b);
    graph_errors_free(&e);
}

static void test_syntax_errors(void **state)
{
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    const char *text = "##A##\n0:input\n1:output\n2:ReLU\n0->2\n2->\n"
                       "2->1\nhello\n3:Conv2d(C,3\n";
    assert_null(s_parse(text, &e));
    assert_true(s_has(&e, "design.txt:6: cannot read '2->': expected a "
                          "node index"));
    assert_true(s_has(&e, "design.txt:8: cannot read 'hello': expected "
                          "INDEX:OPERATION, A->B or ##NAME##"));
    assert_true(s_has(&e, "design.txt:9: cannot read '3:Conv2d(C,3': "
                          "missing ')'"));
    for (int i = 0; i < e.n; i++)
        assert_int_equal(e.v[i].rule, GRAPH_RULE_SYNTAX);
    assert_int_equal(e.v[0].line, 6);

    graph_errors_clear(&e);
    assert_null(s_parse("0:input\n1:output\n0->1\n", &e));
    assert_true(s_has(&e, "design.txt:1: '0:input' comes before any "
                          "##NAME## header"));

    /* A control byte in a block name would not print back. */
    graph_errors_clear(&e);
    const char named[] = "##Se\tA\0x##\n0:input\n1:output\n0->1\n";
    graph_design_t *d = NULL;
    assert_int_equal(graph_design_parse(named, sizeof named - 1, "n.txt",
                                        &d, &e), -1);
    assert_true(s_has(&e, "n.txt:1: the block name 'Se?A?x' holds control "
                          "characters"));

    graph_errors_clear(&e);
    assert_null(s_parse("", &e));
    assert_true(s_has(&e, "no block found"));
    graph_errors_free(&e);
}

static void test_argument_errors(void **state)
{
    graph_errors_t e;
    const char *text =
        "##A##\n0:input\n1:output\n"
        "2:Conv2d(out_channels=C,kernel_size=3,padding=1)\n"
        "3:Conv2d(out_channels=C)\n"
        "4:Conv2d(out_channels=C,kernel_size=(3,3))\n"
        "5:Conv2d(kernel_size=3,C)\n"
        "6:ReLU(inplace=True)\n"
        "7:Conv2d(out_channels=Cin,kernel_size=1)\n"
        "8:BatchNorm2d\n"
        "9:Conv2d(out_channels=C,kernel_size=3,stride=2,stride=1)\n"
        "0->2\n2->3\n3->4\n4->5\n5->6\n6->7\n7->8\n8->9\n9->1\n";

    (void)state;
    graph_errors_init(&e);
    assert_null(s_parse(text, &e));
    assert_true(s_has(&e, "cell node 2 (Conv2d): unknown argument 'padding' "
                          "(Conv2d takes out_channels, kernel_size, "
                          "stride=1, dilation=1, groups=1); padding is "
                          "always \"same\""));
    assert_true(s_has(&e, "cell node 3 (Conv2d): missing required argument "
                          "kernel_size"));
    assert_true(s_has(&e, "cell node 4 (Conv2d): kernel_size must be one "
                          "integer, not a tuple"));
    assert_true(s_has(&e, "cell node 5 (Conv2d): positional argument after "
                          "a keyword argument"));
    assert_true(s_has(&e, "cell node 6 (ReLU): unknown argument 'inplace' "
                          "(ReLU takes no arguments)"));
    assert_true(s_has(&e, "cell node 7 (Conv2d): cannot read argument "
                          "'out_channels=Cin': unknown name 'Cin'"));
    assert_true(s_has(&e, "cell node 8 (BatchNorm2d): unknown operation "
                          "'BatchNorm2d'; use BN"));
    assert_true(s_has(&e, "cell node 9 (Conv2d): argument stride given "
                          "twice"));
    /* The unreadable argument is not also reported missing. */
    assert_false(s_has(&e, "node 7 (Conv2d): missing"));
    graph_errors_free(&e);
}

static void test_design_errors(void **state)
{
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    const char *two = "##A##\n0:input\n1:output\n0->1\n"
                      "##B##\n0:input\n1:output\n0->1\n";
    assert_null(s_parse(two, &e));
    assert_true(s_has(&e, "a second cell block 'B'"));
    assert_int_equal(e.v[0].rule, GRAPH_RULE_DESIGN);

    graph_errors_clear(&e);
    const char *mixed =
        "##A##\n0:input1\n1:input2\n2:output\n3:Add\n0->3\n1->3\n3->2\n"
        "##A_downsample##\n0:input\n1:output\n2:AvgPool2d(2,2)\n3:Conv2d("
        "dim,1)\n0->2\n2->3\n3->1\n";
    assert_null(s_parse(mixed, &e));
    assert_true(s_has(&e, "the cell takes input1 and input2, so the "
                          "downsample"));

    graph_errors_clear(&e);
    assert_null(s_parse("##A_stem##\n0:input\n1:output\n0->1\n", &e));
    assert_true(s_has(&e, "no cell block"));
    graph_errors_free(&e);
}

static void test_single_block(void **state)
{
    graph_block_t *b = NULL;
    graph_errors_t e;
    const char *text = "##X_stem##\n0:input\n1:output\n2:Conv2d(dim,3)\n"
                       "0->2\n2->1\n##Y##\n0:garbage\n";

    (void)state;
    graph_errors_init(&e);
    assert_int_equal(graph_block_parse(text, strlen(text), NULL, &b, &e), 0);
    assert_int_equal(b->role, GRAPH_ROLE_STEM);
    assert_int_equal(b->n_edges, 2);
    graph_block_destroy(&b);
    graph_errors_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_files),
        cmocka_unit_test(test_spellings),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_roles_and_defaults),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_design_errors),
        cmocka_unit_test(test_single_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
