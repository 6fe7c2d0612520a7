/*
 * commands.h - the subcommands of the `nader` tool.
 *
 * Each subcommand lives in its own file, cli/cmd_NAME.c, and exports one
 * function with the signature below.  argv[0] is the subcommand's name.
 * Exit codes: 0 success, 1 the thing checked or asked for failed (an
 * invalid design, a failed training run), 2 bad usage or unreadable
 * input.  Every subcommand answers --help.
 */
#ifndef NADER_COMMANDS_H
#define NADER_COMMANDS_H

/* Where a bare `nader run` writes its built-in experiment (cmd_run.c);
 * `nader tree` without a file reads it from there. */
#define NADER_QUICKSTART_DIR "nader-quickstart"
#define NADER_QUICKSTART_YAML NADER_QUICKSTART_DIR "/experiment/quickstart.yaml"

typedef int (*cli_command_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} cli_command_t;

/* The table, in main.c. */
extern const cli_command_t cli_commands[];

int cmd_graph(int argc, char **argv);   /* cli/cmd_graph.c */
int cmd_train(int argc, char **argv);   /* cli/cmd_train.c */
int cmd_status(int argc, char **argv);  /* cli/cmd_status.c */
int cmd_submit(int argc, char **argv);  /* cli/cmd_submit.c */
int cmd_results(int argc, char **argv); /* cli/cmd_results.c */
int cmd_set(int argc, char **argv);     /* cli/cmd_set.c */
int cmd_cancel(int argc, char **argv);  /* cli/cmd_cancel.c */
int cmd_keygen(int argc, char **argv);  /* cli/cmd_keygen.c */
int cmd_export(int argc, char **argv);  /* cli/cmd_export.c */
int cmd_report(int argc, char **argv);  /* cli/cmd_report.c */
int cmd_health(int argc, char **argv);  /* cli/cmd_health.c */
int cmd_run(int argc, char **argv);     /* cli/cmd_run.c */
int cmd_tree(int argc, char **argv);    /* cli/cmd_tree.c */
int cmd_read(int argc, char **argv);    /* cli/cmd_read.c */

#endif
