/*
 * test_config.c - the configuration table and its YAML reader: defaults,
 * nested and dotted keys, typed values, limits, checkers, lists, paths
 * relative to the file, and errors that name the file, line and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static void test_defaults_are_valid(void **state)
{
    config_t c;
    int n;
    const config_key_t *k = config_keys(&n);

    (void)state;
    assert_int_equal(config_defaults(&c), 0);
    assert_string_equal(c.workers_endpoint, "tcp://127.0.0.1:5555");
    assert_int_equal(c.heartbeat_interval_ms, 1000);
    assert_int_equal(c.heartbeat_timeout_ms, 5000);
    assert_int_equal(c.jobs_max_attempts, 3);
    assert_true(c.store_map_size == 256LL << 20);
    assert_false(c.security_curve);
    for (int i = 0; i < n; i++) {
        assert_non_null(k[i].doc);
        assert_true(strlen(k[i].doc) > 10);
        assert_ptr_equal(config_key_find(k[i].name), &k[i]);
    }
    config_free(&c);
}

static void test_yaml_nested_and_dotted(void **state)
{
    const char *y = "# a comment\n"
                    "state_dir: /var/lib/nader\n"
                    "heartbeat:\n"
                    "  interval: 250ms\n"
                    "  timeout: 2s\n"
                    "jobs.max_attempts: 7\n"
                    "jobs: {paused: yes, max_running: 12}\n"
                    "store:\n"
                    "  map_size: 64MiB\n"
                    "limits.max_message: 1GiB\n";
    config_t c;
    char err[256], v[64];

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_load_string(&c, y, strlen(y), "t.yaml", err,
                                        sizeof err), 0);
    assert_string_equal(c.state_dir, "/var/lib/nader");
    assert_int_equal(c.heartbeat_interval_ms, 250);
    assert_int_equal(c.heartbeat_timeout_ms, 2000);
    assert_int_equal(c.jobs_max_attempts, 7);
    assert_true(c.jobs_paused);
    assert_int_equal(c.jobs_max_running, 12);
    assert_true(c.store_map_size == 64LL << 20);
    assert_true(c.max_message_bytes == 1LL << 30);
    assert_int_equal(config_get(&c, "jobs.paused", v, sizeof v), 0);
    assert_string_equal(v, "true");
    config_free(&c);
}

static void test_errors_name_line_and_key(void **state)
{
    config_t c;
    char err[256];
    const char *unknown = "heartbeat:\n  interval: 1s\n  intervl: 2s\n";
    const char *bad = "jobs:\n  max_attempts: many\n";
    const char *range = "jobs.max_attempts: 0\n";
    const char *dur = "heartbeat.timeout: 5 parsecs\n";
    const char *ep = "workers.endpoint: localhost:5555\n";
    const char *list = "jobs.max_attempts: [1, 2]\n";
    const char *syntax = "a: [1, 2\n";

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_load_string(&c, unknown, strlen(unknown), "f",
                                        err, sizeof err), -1);
    assert_string_equal(err, "f:3: unknown key 'heartbeat.intervl'");
    assert_int_equal(config_load_string(&c, bad, strlen(bad), "f", err,
                                        sizeof err), -1);
    assert_string_equal(err, "f:2: key 'jobs.max_attempts': 'many' is not "
                             "an integer");
    assert_int_equal(config_load_string(&c, range, strlen(range), "f", err,
                                        sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(config_load_string(&c, dur, strlen(dur), "f", err,
                                        sizeof err), -1);
    assert_non_null(strstr(err, "is not a duration"));
    assert_int_equal(config_load_string(&c, ep, strlen(ep), "f", err,
                                        sizeof err), -1);
    assert_non_null(strstr(err, "not a ZeroMQ endpoint"));
    assert_int_equal(config_load_string(&c, list, strlen(list), "f", err,
                                        sizeof err), -1);
    assert_non_null(strstr(err, "not a list"));
    assert_int_equal(config_load_string(&c, syntax, strlen(syntax), "f",
                                        err, sizeof err), -1);
    assert_non_null(strstr(err, "f:"));
    /* Nothing of the failed values stuck. */
    assert_int_equal(c.jobs_max_attempts, 3);
    assert_int_equal(c.heartbeat_timeout_ms, 5000);
    config_free(&c);
}

static void test_relative_paths_follow_the_file(void **state)
{
    char dir[] = "/tmp/nader-config-XXXXXX", path[256], err[256];
    FILE *f;
    config_t c;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    f = fopen(path, "w");
    fputs("state_dir: state\nsecurity:\n  secret_key: keys/c.key\n"
          "  worker_keys: /abs/workers\n", f);
    fclose(f);
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/state", dir);
    assert_string_equal(c.state_dir, path);
    snprintf(path, sizeof path, "%s/keys/c.key", dir);
    assert_string_equal(c.security_secret_key, path);
    assert_string_equal(c.security_worker_keys, "/abs/workers");
    config_free(&c);
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    unlink(path);
    rmdir(dir);
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, "/nonexistent/x.yaml", err,
                                      sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.yaml: cannot open"));
    config_free(&c);
}

static void test_set_and_parsers(void **state)
{
    config_t c;
    char err[256];
    int64_t v;
    bool b;

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_set(&c, "jobs.max_running", "4", err,
                                sizeof err), 0);
    assert_int_equal(c.jobs_max_running, 4);
    assert_int_equal(config_set(&c, "jobs.max_running", "-1", err,
                                sizeof err), -1);
    assert_int_equal(c.jobs_max_running, 4);
    assert_int_equal(config_set(&c, "no.such", "1", err, sizeof err), -1);
    assert_string_equal(err, "unknown configuration key 'no.such'");
    assert_int_equal(config_set(&c, "log.level", "loud", err, sizeof err),
                     -1);
    assert_true(config_key_find("jobs.paused")->live);
    assert_false(config_key_find("state_dir")->live);
    /* KEY=VALUE, as --set gives it: the value may hold '=' too */
    assert_int_equal(config_set_pair(&c, "jobs.max_running=6", err,
                                     sizeof err), 0);
    assert_int_equal(c.jobs_max_running, 6);
    assert_int_equal(config_set_pair(&c, "log.file=a=b", err, sizeof err),
                     0);
    assert_string_equal(c.log_file, "a=b");
    assert_int_equal(config_set_pair(&c, "jobs.max_running", err,
                                     sizeof err), -1);
    assert_string_equal(err, "'jobs.max_running' is not KEY=VALUE");
    assert_int_equal(config_set_pair(&c, "=3", err, sizeof err), -1);
    assert_int_equal(config_set_pair(&c, "no.such=1", err, sizeof err), -1);
    assert_string_equal(err, "unknown configuration key 'no.such'");
    assert_int_equal(c.jobs_max_running, 6);
    config_free(&c);

    assert_int_equal(config_parse_ms("1.5s", &v), 0);
    assert_int_equal(v, 1500);
    assert_int_equal(config_parse_ms("2m", &v), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(config_parse_ms("250", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(config_parse_ms("-1s", &v), -1);
    assert_int_equal(config_parse_ms("0.5ms", &v), -1);
    assert_int_equal(config_parse_bytes("4KiB", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(config_parse_bytes("1.5G", &v), 0);
    assert_true(v == 3LL << 29);
    assert_int_equal(config_parse_bytes("12 furlongs", &v), -1);
    assert_int_equal(config_parse_bool("On", &b), 0);
    assert_true(b);
    assert_int_equal(config_parse_bool("maybe", &b), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_valid),
        cmocka_unit_test(test_yaml_nested_and_dotted),
        cmocka_unit_test(test_errors_name_line_and_key),
        cmocka_unit_test(test_relative_paths_follow_the_file),
        cmocka_unit_test(test_set_and_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
