/*
 * main.c - the `nader` command-line tool: dispatch to a subcommand.
 *
 * Local tools that need no daemon (graph, train, export, keygen), the
 * all-local runner (run), and clients of a coordinator's status socket
 * (status, submit, results, set) all live behind this one binary; the
 * table below is the list, and `nader help` prints it.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#define NADER_VERSION "0.1.0"

static int s_help(int argc, char **argv);
static int s_version(int argc, char **argv);

const cli_command_t cli_commands[] = {
    {"help", s_help, "list the subcommands"},
    {"version", s_version, "print the version"},
    {"graph", cmd_graph, "check, show or hash a design file"},
    {"train", cmd_train, "train one design on a data set"},
    {"status", cmd_status, "show a coordinator: workers, queue, jobs, "
                           "results"},
    {"submit", cmd_submit, "queue evaluation jobs for a design"},
    {"results", cmd_results, "list the results a coordinator kept"},
    {"set", cmd_set, "change a live limit of a coordinator"},
    {"cancel", cmd_cancel, "cancel jobs"},
    {"keygen", cmd_keygen, "make a CURVE key pair"},
    {"export", cmd_export, "write a design as PyTorch, dot, JSON or "
                           "blocks, with its weights"},
    {"report", cmd_report, "write an HTML page about a search"},
    {"health", cmd_health, "check that a coordinator (and a worker) is "
                           "up"},
    {"run", cmd_run, "run a search on this machine ([EXPERIMENT.yaml])"},
    {"tree", cmd_tree, "print a search's tree of designs"},
    {"read", cmd_read, "turn papers into inspirations; import lists"},
    {NULL, NULL, NULL},
};

static int s_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: nader COMMAND [ARGS...]   (nader COMMAND --help)\n\n");
    for (const cli_command_t *c = cli_commands; c->name; c++)
        printf("  %-10s %s\n", c->name, c->summary);
    return 0;
}

static int s_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("nader %s\n", NADER_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return s_help(0, NULL) == 0 && argc >= 2 ? 0 : 2;

    for (const cli_command_t *c = cli_commands; c->name; c++)
        if (strcmp(c->name, argv[1]) == 0)
            return c->fn(argc - 1, argv + 1);

    fprintf(stderr, "nader: unknown command '%s' (try 'nader help')\n",
            argv[1]);
    return 2;
}
