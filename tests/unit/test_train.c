/*
 * test_train.c - train_run() on a small generated CIFAR-10 folder: a
 * whole run, exact resume from a checkpoint, divergence, cancellation,
 * max_steps, partial batches, and the errors of bad input.
 *
 * The network is the ResNet basic cell at width 4 with one cell per
 * stage on 32x32 images; each run takes a fraction of a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "graph.h"
#include "net.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"

static const char s_resnet[] =
    "##R##\n0:input\n1:output\n"
    "2:Conv2d(out_channels=C,kernel_size=3,stride=1)\n3:BN\n4:ReLU\n"
    "5:Conv2d(out_channels=C,kernel_size=3,stride=1)\n6:BN\n7:ReLU\n"
    "8:Add\n0->2\n2->3\n3->4\n4->5\n5->6\n6->8\n0->8\n8->7\n7->1\n";

static char s_dir[128];
static graph_design_t *s_design;

/* n records per training file, the class drawn as a bright square. */
static void s_write(const char *name, int n, uint64_t seed)
{
    char path[256];
    FILE *f;
    uint64_t st = seed;

    snprintf(path, sizeof(path), "%s/%s", s_dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    for (int k = 0; k < n; k++) {
        uint8_t rec[3073];
        int label = (int)(engine_rng_next(&st) % 10);
        rec[0] = (uint8_t)label;
        for (int j = 0; j < 3072; j++)
            rec[1 + j] = (uint8_t)(engine_rng_next(&st) >> 58);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 6; x++)
                    rec[1 + c * 1024 + (2 * label + y) * 32 + 4 + x] = 250;
        assert_int_equal(fwrite(rec, 1, sizeof(rec), f), sizeof(rec));
    }
    fclose(f);
}

static void s_make_data(const int *train, int test)
{
    char path[256], names[6][24];
    FILE *f;

    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof(names[i]), "data_batch_%d.bin", i + 1);
        s_write(names[i], train[i], 100 + (uint64_t)i);
    }
    s_write("test_batch.bin", test, 7);
    snprintf(path, sizeof(path), "%s/nader-data.json", s_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"records\": {\"data_batch_1.bin\": %d, \"data_batch_2.bin"
            "\": %d, \"data_batch_3.bin\": %d, \"data_batch_4.bin\": %d, "
            "\"data_batch_5.bin\": %d, \"test_batch.bin\": %d}}\n", train[0],
            train[1], train[2], train[3], train[4], test);
    fclose(f);
}

static int s_setup(void **state)
{
    static const int train[5] = {20, 20, 20, 20, 20};
    graph_errors_t errs;

    (void)state;
    snprintf(s_dir, sizeof(s_dir), "/tmp/nader-test-train-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    s_make_data(train, 40);
    graph_errors_init(&errs);
    if (graph_design_parse(s_resnet, strlen(s_resnet), "resnet", &s_design,
                           &errs) != 0)
        return -1;
    graph_errors_free(&errs);
    return 0;
}

static int s_teardown(void **state)
{
    char cmd[200];

    (void)state;
    graph_design_destroy(&s_design);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void s_configs(net_config_t *n, train_config_t *c)
{
    assert_int_equal(net_config_default(n, "cifar10"), 0);
    n->width = 4;
    n->cells_per_stage = 1;
    train_config_default(c);
    c->dataset = "cifar10";
    c->data_dir = s_dir;
    c->epochs = 3;
    c->batch = 32;
    c->threads = 2;
}

static const char *s_path(const char *name)
{
    static char p[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", s_dir, name);
    return p[i];
}

static void s_count_beat(void *ctx)
{
    (*(int *)ctx)++;
}

/* on_beat comes once per data file read (the six of CIFAR-10) and once
 * per evaluation batch: 40 test images at batch 32 are 2 batches,
 * evaluated after each of the 3 epochs. */
static void test_beats_during_evaluation(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;
    int beats = 0;
    train_hooks_t hooks = {&beats, NULL, NULL, NULL, s_count_beat};

    (void)state;
    s_configs(&n, &c);
    assert_int_equal(train_run(s_design, &n, &c, &hooks, &r), 0);
    assert_int_equal(r.status, TRAIN_OK);
    assert_int_equal(beats, 6 + 3 * 2);
    train_result_free(&r);
}

static void test_run(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;

    (void)state;
    s_configs(&n, &c);
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    if (r.status != TRAIN_OK)
        fail_msg("%s", r.reason);
    assert_int_equal(r.n_epochs, 3);
    assert_int_equal(r.width, 4);
    assert_true(r.params > 1000);
    assert_true(r.macs > 0);
    /* 100 images at batch 32: 3 full batches and one of 4 */
    assert_int_equal(r.steps, 12);
    for (int e = 0; e < 3; e++) {
        assert_int_equal(r.epochs[e].epoch, e);
        assert_true(isfinite(r.epochs[e].train_loss));
        assert_true(r.epochs[e].valid_acc >= 0 &&
                    r.epochs[e].valid_acc <= 100);
        /* cifar10: the evaluation split is the test set */
        assert_true(r.epochs[e].test_acc == r.epochs[e].valid_acc);
        assert_true(r.epochs[e].images_per_s > 0);
    }
    assert_true(fabs(r.epochs[0].lr - 0.1) < 1e-12);
    assert_true(fabs(r.epochs[1].lr - 0.05 * (1 + cos(M_PI / 3))) < 1e-12);
    assert_true(r.best_valid_acc >= r.final_valid_acc);
    assert_true(r.peak_bytes > 0 && r.peak_rss_bytes > 0);
    assert_true(strstr(r.device, "cpu") != NULL);
    train_result_free(&r);
}

typedef struct keep {
    int epoch;                /* copy the checkpoint of this epoch */
    const char *to;
    int copies;
} keep_t;

static int s_keep_checkpoint(void *ctx, const char *path, int epoch)
{
    keep_t *k = ctx;
    char cmd[600];

    if (epoch != k->epoch)
        return 0;
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, k->to);
    k->copies++;
    return system(cmd) == 0 ? 0 : 1;
}

static void s_same_weights(const char *a, const char *b)
{
    safetensors_t *x = NULL, *y = NULL;
    char err[512];

    assert_int_equal(safetensors_load(a, &x, err, sizeof(err)), 0);
    assert_int_equal(safetensors_load(b, &y, err, sizeof(err)), 0);
    assert_int_equal(safetensors_count(x), safetensors_count(y));
    for (int i = 0; i < safetensors_count(x); i++) {
        const safetensors_tensor_t *t = safetensors_at(x, i);
        const safetensors_tensor_t *u = safetensors_find(y, t->name);
        assert_non_null(u);
        assert_int_equal(t->bytes, u->bytes);
        if (memcmp(t->data, u->data, t->bytes) != 0)
            fail_msg("%s differs between %s and %s", t->name, a, b);
    }
    safetensors_destroy(&x);
    safetensors_destroy(&y);
}

static void test_resume_is_exact(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r1, r2, r3;
    keep_t keep = {1, s_path("epoch2.ckpt"), 0};
    train_hooks_t hooks = {&keep, NULL, NULL, s_keep_checkpoint, NULL};

    (void)state;
    s_configs(&n, &c);
    c.epochs = 4;
    c.checkpoint = s_path("run.ckpt");
    c.checkpoint_every = 1;
    c.save_weights = s_path("straight.st");
    assert_int_equal(train_run(s_design, &n, &c, &hooks, &r1), 0);
    assert_int_equal(r1.status, TRAIN_OK);
    assert_int_equal(keep.copies, 1);

    /* the same run again: the engine is deterministic */
    c.checkpoint = NULL;
    c.checkpoint_every = 0;
    c.save_weights = s_path("again.st");
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r2), 0);
    s_same_weights(s_path("straight.st"), s_path("again.st"));

    /* resumed after epoch 2 of 4: bit-identical at the end */
    c.resume = s_path("epoch2.ckpt");
    c.save_weights = s_path("resumed.st");
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r3), 0);
    if (r3.status != TRAIN_OK)
        fail_msg("%s", r3.reason);
    assert_int_equal(r3.n_epochs, 4);
    assert_int_equal(r3.steps, r1.steps);
    s_same_weights(s_path("straight.st"), s_path("resumed.st"));
    for (int e = 0; e < 4; e++) {
        assert_true(r3.epochs[e].train_loss == r1.epochs[e].train_loss);
        assert_true(r3.epochs[e].valid_acc == r1.epochs[e].valid_acc);
    }
    train_result_free(&r1);
    train_result_free(&r2);
    train_result_free(&r3);
}

static void test_resume_mismatch(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;

    (void)state;
    s_configs(&n, &c);
    c.epochs = 1;
    c.checkpoint = s_path("one.ckpt");
    c.checkpoint_every = 1;
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    train_result_free(&r);
    c.checkpoint = NULL;
    c.checkpoint_every = 0;
    c.resume = s_path("one.ckpt");
    c.batch = 16;
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_int_equal(r.status, TRAIN_FAILED);
    assert_non_null(strstr(r.reason, "batch 32, this run has batch 16"));
    train_result_free(&r);
    c.batch = 32;
    c.resume = s_path("straight.st");
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_non_null(strstr(r.reason, "not a nader checkpoint"));
    train_result_free(&r);
}

/* A checkpoint that cannot be written fails the run, unless checkpoints
 * are optional (the worker's jobs): then training goes on and says how
 * many were lost. */
static void test_checkpoint_unwritable(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;

    (void)state;
    s_configs(&n, &c);
    c.epochs = 2;
    c.checkpoint = "/nonexistent-folder/job.ckpt";
    c.checkpoint_every = 1;
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    assert_int_equal(r.status, TRAIN_FAILED);
    assert_non_null(strstr(r.reason, "checkpoint after epoch 0"));
    assert_non_null(strstr(r.reason, "/nonexistent-folder/job.ckpt"));
    train_result_free(&r);

    c.checkpoint_optional = true;
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    assert_int_equal(r.status, TRAIN_OK);
    assert_int_equal(r.n_epochs, 2);
    assert_int_equal(r.checkpoints_lost, 2);
    train_result_free(&r);
}

static void test_divergence(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;

    (void)state;
    s_configs(&n, &c);
    c.lr = 1e12;
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    assert_int_equal(r.status, TRAIN_DIVERGED);
    assert_true(strstr(r.reason, "NaN") || strstr(r.reason, "infinite"));
    assert_true(r.n_epochs < 3);
    train_result_free(&r);
}

static int s_stop_at_3(void *ctx, const train_step_t *s)
{
    int *calls = ctx;
    (*calls)++;
    assert_true(s->loss > 0 && s->steps_per_epoch == 4);
    return s->step == 3 ? 1 : 0;
}

static void test_cancel_and_max_steps(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;
    int calls = 0;
    train_hooks_t hooks = {&calls, NULL, s_stop_at_3, NULL, NULL};

    (void)state;
    s_configs(&n, &c);
    assert_int_equal(train_run(s_design, &n, &c, &hooks, &r), 0);
    assert_int_equal(r.status, TRAIN_CANCELLED);
    assert_int_equal(r.steps, 3);
    assert_int_equal(calls, 3);
    train_result_free(&r);

    c.max_steps = 6;
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    assert_int_equal(r.status, TRAIN_OK);
    assert_int_equal(r.steps, 6);
    assert_int_equal(r.n_epochs, 2);
    train_result_free(&r);
}

static void test_lone_last_sample_dropped(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;

    (void)state;
    s_configs(&n, &c);
    c.epochs = 1;
    c.batch = 33; /* 100 = 3 x 33 + 1 */
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    assert_int_equal(r.status, TRAIN_OK);
    assert_int_equal(r.steps, 3);
    train_result_free(&r);
    c.batch = 48; /* 100 = 2 x 48 + 4 */
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    assert_int_equal(r.steps, 3);
    train_result_free(&r);
}

static void test_bad_input(void **state)
{
    net_config_t n;
    train_config_t c;
    train_result_t r;
    FILE *f;

    (void)state;
    s_configs(&n, &c);
    c.data_dir = "/nonexistent/nader-data";
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_int_equal(r.status, TRAIN_FAILED);
    assert_non_null(strstr(r.reason, "/nonexistent/nader-data"));
    train_result_free(&r);

    s_configs(&n, &c);
    c.device = "tpu:3";
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_true(strlen(r.reason) > 0);
    train_result_free(&r);

    s_configs(&n, &c);
    c.init_weights = s_path("missing.st");
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_non_null(strstr(r.reason, "missing.st"));
    train_result_free(&r);

    /* weights of another width: the tensor that does not fit is named */
    s_configs(&n, &c);
    c.epochs = 1;
    c.save_weights = s_path("w4.st");
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), 0);
    train_result_free(&r);
    n.width = 8;
    c.save_weights = NULL;
    c.init_weights = s_path("w4.st");
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_non_null(strstr(r.reason, "has shape"));
    train_result_free(&r);

    s_configs(&n, &c);
    c.epochs = 0;
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_non_null(strstr(r.reason, "epochs"));
    train_result_free(&r);

    /* a truncated training file */
    f = fopen(s_path("data_batch_5.bin"), "r+b");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 3073 * 19), 0);
    fclose(f);
    s_configs(&n, &c);
    assert_int_equal(train_run(s_design, &n, &c, NULL, &r), -1);
    assert_non_null(strstr(r.reason, "data_batch_5.bin"));
    assert_non_null(strstr(r.reason, "truncated"));
    train_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_beats_during_evaluation),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_resume_mismatch),
        cmocka_unit_test(test_checkpoint_unwritable),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_cancel_and_max_steps),
        cmocka_unit_test(test_lone_last_sample_dropped),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
