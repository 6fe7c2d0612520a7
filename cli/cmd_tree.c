/*
 * cmd_tree.c - `nader tree [EXPERIMENT.yaml]`: the modification tree of a
 * search, read from its store (also while the search runs); without a
 * file, that of the built-in quickstart a bare `nader run` wrote here.
 *
 *   d0 91.20%  (base design)
 *     d1 92.05% +0.85  [12] Add a squeeze-and-excitation gate ...
 *
 * Each line is a design, its screening accuracy (with full-protocol and
 * extra-seed results in parentheses when it has them), its gain over its
 * parent, and the inspiration that made it from its parent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "search.h"
#include "store.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: nader tree [EXPERIMENT.yaml] [--designs] [--json] "
               "[--leaderboard] [--set KEY=VALUE]...\n\n"
               "Print the tree of designs of the experiment's search from "
               "its store (read\nonly; also while it runs).  Without "
               "EXPERIMENT.yaml: the built-in quickstart\nof a bare `nader "
               "run` in this folder, " NADER_QUICKSTART_YAML ".\n\n"
               "  --designs      print each design's blocks under its line\n"
               "  --json         the tree as JSON\n"
               "  --leaderboard  the designs ranked instead\n");
}

int cmd_tree(int argc, char **argv)
{
    config_t cfg;
    search_config_t scfg;
    search_t *s = NULL;
    store_t *st = NULL;
    store_options_t so = {0};
    const char *path = NULL;
    bool designs = false, json = false, board = false;
    char err[1024];
    int rc = 2;

    if (config_defaults(&cfg) < 0)
        return 1;
    /* Options and the file first, then the overrides in order. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            config_free(&cfg);
            return 0;
        } else if (strcmp(argv[i], "--designs") == 0) {
            designs = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--leaderboard") == 0) {
            board = true;
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            i++;
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            goto usage;
        }
    }
    if (!path && access(NADER_QUICKSTART_YAML, F_OK) == 0)
        path = NADER_QUICKSTART_YAML;
    if (!path)
        goto usage;
    if (config_load_file(&cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "nader tree: %s\n", err);
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 &&
            config_set_pair(&cfg, argv[++i], err, sizeof err) < 0) {
            fprintf(stderr, "nader tree: --set: %s\n", err);
            goto out;
        }
    }
    if (search_config_from(&cfg, &scfg, err, sizeof err) != 0) {
        fprintf(stderr, "nader tree: %s\n", err);
        goto out;
    }
    scfg.use_llm = false;
    so.read_only = true;
    if (store_open(cfg.state_dir, &so, &st, err, sizeof err) < 0) {
        fprintf(stderr, "nader tree: %s\n", err);
        search_config_free(&scfg);
        rc = 1;
        goto out;
    }
    rc = search_new(&scfg, NULL, &s, err, sizeof err);
    search_config_free(&scfg);
    if (rc != 0 || search_load(s, st, err, sizeof err) != 0) {
        fprintf(stderr, "nader tree: %s\n", err);
        rc = 1;
        goto out;
    }
    char *text = board  ? search_leaderboard(s, 1 << 30)
                 : json ? search_tree_json(s)
                        : search_tree_text(s, designs);
    if (text) {
        fputs(text, stdout);
        if (json)
            putchar('\n');
    }
    free(text);
    rc = text ? 0 : 1;
    goto out;
usage:
    s_usage(stderr);
    rc = 2;
out:
    search_destroy(&s);
    store_close(&st);
    config_free(&cfg);
    return rc;
}
