/*
 * cmd_report.c - `nader report [DIR] [-o FILE] [--tag TAG]`: one
 * self-contained HTML page about a search.
 *
 * The page (cli/report_page.html, compiled in) draws the best accuracy
 * against the number of designs evaluated, accuracy against parameters,
 * the modification tree (which inspiration led where) and per-design
 * training curves, from data read here out of a results folder or a
 * coordinator's store (cli/report_data.c).  The data goes into the page
 * as JSON inside a <script> element, with every '<' escaped so that no
 * text from a design or an LLM answer can close the element or open
 * anything inside it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "report_data.h"

static const char s_page[] =
#include "report_page.h"
    ;

#define MARK "/*NADER_DATA*/"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nader report [DIR] [-o FILE] [--tag TAG]\n\n"
            "Write one HTML page about a search: best accuracy against "
            "designs\nevaluated, accuracy against parameters, the "
            "modification tree, and\ntraining curves.  Everything is "
            "inline; the page fetches nothing.\n\n"
            "  DIR            a results folder (nader run) or a "
            "coordinator's state\n"
            "                 folder, read-only (default: nader-state)\n"
            "  -o, --output F write the page to F (default: standard "
            "output)\n"
            "  --tag TAG      with a state folder: only the results of "
            "jobs tagged TAG\n"
            "                 or TAG:... (--tag search:NAME for one "
            "search)\n");
}

/* Write the JSON with every '<' as \u003c: '<' only ever occurs inside
 * JSON strings, and without it the HTML parser cannot see a tag or a
 * comment opening in the data. */
static int s_data(FILE *f, const char *data)
{
    for (; *data; data++) {
        if (*data == '<' ? fputs("\\u003c", f) < 0
                         : fputc(*data, f) == EOF)
            return -1;
    }
    return 0;
}

/* Write page to f with the data in place of the mark. */
static int s_write(FILE *f, const char *data)
{
    const char *at = strstr(s_page, MARK);

    if (!at)
        return -1;
    if (fwrite(s_page, 1, (size_t)(at - s_page), f) !=
            (size_t)(at - s_page) ||
        s_data(f, data) < 0 || fputs(at + strlen(MARK), f) < 0)
        return -1;
    return fflush(f) == 0 ? 0 : -1;
}

int cmd_report(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *tag = NULL;
    char err[1024], tmp[4200];
    json_t *data;
    char *text;
    FILE *f = stdout;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) &&
                   i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(a, "--tag") == 0 && i + 1 < argc) {
            tag = argv[++i];
        } else if (a[0] != '-' && !dir) {
            dir = a;
        } else {
            fprintf(stderr, "nader report: bad argument '%s' (try "
                    "--help)\n", a);
            return 2;
        }
    }
    if (!dir)
        dir = "nader-state";
    if (!(data = report_data_load(dir, tag, err, sizeof err))) {
        fprintf(stderr, "nader report: %s\n", err);
        return 2;
    }
    text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (!text) {
        fprintf(stderr, "nader report: out of memory\n");
        return 1;
    }
    if (out) {
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
        if (!(f = fopen(tmp, "w"))) {
            fprintf(stderr, "nader report: %s: %s\n", tmp, strerror(errno));
            free(text);
            return 2;
        }
    }
    if (s_write(f, text) < 0) {
        fprintf(stderr, "nader report: cannot write %s\n",
                out ? out : "the page");
    } else {
        rc = 0;
    }
    if (out) {
        if (fclose(f) != 0)
            rc = 1;
        if (rc == 0 && rename(tmp, out) != 0) {
            fprintf(stderr, "nader report: %s: %s\n", out, strerror(errno));
            rc = 1;
        }
        if (rc != 0)
            unlink(tmp);
    }
    free(text);
    return rc;
}
