/*
 * prompt.h - the prompts the agents send, as templates.
 *
 * The templates are the files prompts/NAME.txt, written in the project's
 * own words and embedded into the binary at build time (prompts/embed.sh
 * makes the table prompt_files[]).  A folder of NAME.txt files may
 * override any of them at run time, so a user can tune a prompt without
 * rebuilding.  A template holds placeholders {{name}}; rendering fills
 * every one or fails, naming the one without a value.
 *
 * The definition of the block format shown to the model is format.txt
 * with its list of operations generated from the operation table
 * (graph_ops.h): an operation added to the engine's table appears in
 * every prompt without touching a template.
 *
 * Ownership: prompts_new returns a set owned by the caller (destroy with
 * prompts_destroy(&p)); rendered strings are malloc'd for the caller.
 */
#ifndef NADER_PROMPT_H
#define NADER_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

/* One embedded file; the generated table ends with {NULL, NULL}. */
typedef struct prompt_file {
    const char *name;
    const char *text;
} prompt_file_t;

extern const prompt_file_t prompt_files[];

typedef struct prompt_var {
    const char *name;
    const char *value;
} prompt_var_t;

typedef struct prompts prompts_t;

/*
 * The built-in templates, each overridden by DIR/NAME.txt when dir is
 * not NULL and that file exists.  Returns NULL with a message in err
 * when dir cannot be read or a file in it cannot be.
 */
prompts_t *prompts_new(const char *dir, char *err, size_t errlen);
void prompts_destroy(prompts_t **p);

/* The template text of name, or NULL when there is none. */
const char *prompts_text(const prompts_t *p, const char *name);

/*
 * Render template name with vars.  Returns a malloc'd string, or NULL
 * with a message in err ("prompt modify: no value for {{block}}", or an
 * unknown template).
 */
char *prompts_render(const prompts_t *p, const char *name,
                     const prompt_var_t *vars, int n_vars, char *err,
                     size_t errlen);

/*
 * The block-format definition (format.txt) with the list of operations
 * made from the operation table, for single-input blocks or two-input
 * cells.  malloc'd; NULL when out of memory.
 */
char *prompts_format(const prompts_t *p, bool two_input);

/* The generated list of operations alone, one per line (malloc'd). */
char *prompt_operations(void);

#endif
