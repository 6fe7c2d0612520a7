/*
 * test_keys.c - CURVE key files: keygen writes a private pair and a
 * public file, they load back, bad files are errors naming the file, and
 * an allow-list folder follows files being added and removed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "keys.h"

static char s_dir[64];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/nader-keys-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd);
}

static void test_generate_and_load(void **state)
{
    char path[256], pub[41], sec[41], pub2[41], err[512];
    struct stat st;
    FILE *f;

    (void)state;
    assert_int_equal(keys_generate(s_dir, "w1", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/w1.key", s_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(keys_load_pair(path, pub, sec, err, sizeof err), 0);
    assert_int_equal(strlen(pub), 40);
    snprintf(path, sizeof path, "%s/w1.pub", s_dir);
    assert_int_equal(keys_load_public(path, pub2, err, sizeof err), 0);
    assert_string_equal(pub, pub2);
    assert_int_equal(keys_load_pair(path, pub, sec, err, sizeof err), -1);
    assert_non_null(strstr(err, "w1.pub: not a nader key pair file"));
    /* Never overwrite a key. */
    assert_int_equal(keys_generate(s_dir, "w1", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create"));
    assert_int_equal(keys_generate(s_dir, "../x", err, sizeof err), -1);

    snprintf(path, sizeof path, "%s/bad.pub", s_dir);
    f = fopen(path, "w");
    fputs("public-key = \"tooshort\"\n", f);
    fclose(f);
    assert_int_equal(keys_load_public(path, pub, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.pub"));
    f = fopen(path, "w");
    fputs("public-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n", f);
    fclose(f);
    assert_int_equal(keys_load_public(path, pub, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a Z85 key"));
}

/* keygen makes the folder it is given, private, as on a fresh machine. */
static void test_generate_makes_the_folder(void **state)
{
    char dir[160], path[256], err[512];
    struct stat st;

    (void)state;
    snprintf(dir, sizeof dir, "%s/new/keys", s_dir);
    assert_int_equal(keys_generate(dir, "c", err, sizeof err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/c.pub", dir);
    assert_int_equal(stat(path, &st), 0);

    snprintf(path, sizeof path, "%s/c.pub/x", dir);
    assert_int_equal(keys_generate(path, "d", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot make the folder"));
}

static void test_allow_list_follows_the_folder(void **state)
{
    char dir[128], path[256], pub[41], sec[41], err[512];
    uint8_t raw[32];
    keys_list_t *l;
    struct timespec pause = {0, 600 * 1000000L};

    (void)state;
    snprintf(dir, sizeof dir, "%s/allowed", s_dir);
    l = keys_list_new(dir);                  /* folder missing: nobody */
    assert_int_equal(keys_generate(s_dir, "a", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/a.key", s_dir);
    keys_load_pair(path, pub, sec, err, sizeof err);
    zmq_z85_decode(raw, pub);
    assert_false(keys_list_allows(l, raw));
    mkdir(dir, 0700);
    assert_int_equal(keys_generate(dir, "a", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/a.key", dir);
    unlink(path);                            /* keep a.pub only */
    nanosleep(&pause, NULL);
    /* a fresh pair in the folder is another key: a is not allowed */
    assert_false(keys_list_allows(l, raw));
    snprintf(path, sizeof path, "%s/a.pub", dir);
    unlink(path);
    snprintf(path, sizeof path, "cp %s/a.pub %s/", s_dir, dir);
    assert_int_equal(system(path), 0);
    nanosleep(&pause, NULL);
    assert_true(keys_list_allows(l, raw));
    assert_int_equal(keys_list_count(l), 1);
    snprintf(path, sizeof path, "%s/a.pub", dir);
    unlink(path);
    nanosleep(&pause, NULL);
    assert_false(keys_list_allows(l, raw));
    keys_list_destroy(&l);
    assert_null(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_and_load, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_generate_makes_the_folder,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_allow_list_follows_the_folder,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
