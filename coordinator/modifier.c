/*
 * modifier.c - the Modifier agent (see modifier.h).
 *
 * One modification is one conversation: the first prompt, the model's
 * answer, the validator's lines, a corrected answer, and so on.  Keeping
 * the conversation (rather than a fresh prompt with the error pasted in)
 * lets the model see its own attempt next to the complaint about it,
 * which is what makes a second answer usually right.
 */
#include "modifier.h"

#include <stdlib.h>
#include <string.h>

#include "text.h"

void modifier_config_default(modifier_config_t *c)
{
    c->retries = 3;
    c->lessons = 3;
    c->stem_always = false;
    c->max_errors = 3;
}

const char *modify_status_name(modify_status_t s)
{
    switch (s) {
    case MODIFY_OK:
        return "ok";
    case MODIFY_INVALID:
        return "invalid";
    case MODIFY_DUPLICATE:
        return "duplicate";
    case MODIFY_NO_ANSWER:
        return "no answer";
    }
    return "?";
}

void modify_result_free(modify_result_t *r)
{
    graph_design_destroy(&r->design);
    free(r->last_block);
    free(r->last_error);
    memset(r, 0, sizeof *r);
}

static bool s_fatal(int rc)
{
    return rc == LLM_ERR_BUDGET || rc == LLM_ERR_CANCELLED ||
           rc == LLM_ERR_SINK || rc == LLM_ERR_REPLAY;
}

static char *s_section(agent_env_t *env, const char *name, const char *v)
{
    char err[128];

    if (!v || !*v)
        return strdup("");
    prompt_var_t vars[] = {{"lessons", v}};
    char *s = prompts_render(env->prompts, name, vars, 1, err, sizeof err);
    return s ? s : strdup("");
}

char *modifier_lessons(const modifier_config_t *cfg, agent_env_t *env,
                       reflector_t *refl, const char *insp)
{
    if (!refl || cfg->lessons <= 0)
        return strdup("");
    char *dev =
        reflector_lessons(refl, env, EXP_DEVELOPMENT, insp, cfg->lessons);
    char *res = reflector_lessons(refl, env, EXP_RESEARCH, insp, cfg->lessons);
    char *a = s_section(env, "experience_dev", dev);
    char *b = s_section(env, "experience_res", res);
    text_buf_t t;
    text_buf_init(&t);
    text_buf_puts(&t, a ? a : "");
    text_buf_puts(&t, b ? b : "");
    free(dev);
    free(res);
    free(a);
    free(b);
    char *s = text_buf_take(&t);
    return s ? s : strdup("");
}

/* Up to max lines of errs, one per line, and a count of the rest. */
static char *s_error_lines(const graph_errors_t *errs, int max)
{
    text_buf_t b;

    text_buf_init(&b);
    for (int i = 0; i < errs->n && i < max; i++)
        text_buf_printf(&b, "%s%s", i ? "\n" : "", errs->v[i].message);
    if (errs->n > max)
        text_buf_printf(&b, "\n(and %d more)", errs->n - max);
    return text_buf_take(&b);
}

static bool s_is_frame_error(const graph_error_t *e)
{
    size_t n = strlen(e->block);
    return (n >= 4 && strcmp(e->block + n - 4, "stem") == 0) ||
           (n >= 10 && strcmp(e->block + n - 10, "downsample") == 0);
}

/* Outcome of one candidate. */
typedef enum s_check {
    S_VALID,
    S_CELL_BAD, /* the cell (or the text) is wrong */
    S_FRAME_BAD /* the cell is fine; stem or downsample do not fit */
} s_check_t;

/* Parse and check cell + stem + downsample texts as one design. */
static s_check_t s_check(const modifier_config_t *cfg, agent_env_t *env,
                         const char *cell, const char *stem, const char *down,
                         graph_design_t **out, net_choice_t *choice,
                         char **lines)
{
    return (s_check_t)modifier_check(env->net, cfg->max_errors, cell, stem,
                                     down, out, choice, lines);
}

int modifier_check(const net_config_t *net, int max_errors, const char *cell,
                   const char *stem, const char *down, graph_design_t **out,
                   net_choice_t *choice, char **lines)
{
    text_buf_t b;
    graph_errors_t errs;
    graph_design_t *d = NULL;
    s_check_t r = S_CELL_BAD;

    *out = NULL;
    *lines = NULL;
    text_buf_init(&b);
    text_buf_puts(&b, cell);
    if (stem) {
        text_buf_puts(&b, "\n");
        text_buf_puts(&b, stem);
    }
    if (down) {
        text_buf_puts(&b, "\n");
        text_buf_puts(&b, down);
    }
    graph_errors_init(&errs);
    if (b.failed || !b.s) {
        *lines = strdup("out of memory");
        goto out;
    }
    if (graph_design_parse(b.s, b.len, NULL, &d, &errs) != 0) {
        *lines = s_error_lines(&errs, max_errors);
        goto out;
    }
    if (net_check(d, net, choice, &errs) == 0) {
        *out = d;
        d = NULL;
        r = S_VALID;
        goto out;
    }
    bool frame = true;
    for (int i = 0; i < errs.n; i++)
        frame = frame && s_is_frame_error(&errs.v[i]);
    r = frame ? S_FRAME_BAD : S_CELL_BAD;
    *lines = s_error_lines(&errs, max_errors);
out:
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    text_buf_free(&b);
    return r;
}

/* A growing conversation. */
typedef struct s_chat {
    int n;
    llm_message_t m[32];
    char *owned[32];
} s_chat_t;

static void s_chat_add(s_chat_t *c, const char *role, char *content)
{
    if (c->n == 32) {
        free(content);
        return;
    }
    c->m[c->n].role = role;
    c->m[c->n].content = content ? content : "";
    c->owned[c->n] = content;
    c->n++;
}

static void s_chat_free(s_chat_t *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->owned[i]);
    c->n = 0;
}

static char *s_feedback(agent_env_t *env, const char *lines)
{
    char err[128];
    prompt_var_t v[] = {{"errors", lines}};
    char *s = prompts_render(env->prompts, "feedback", v, 1, err, sizeof err);
    return s ? s : strdup(lines);
}

/*
 * Ask for answers in conversation c until take() accepts one or the
 * retries are used.  take() returns 0 to accept, 1 to go on (having set
 * *lines to the feedback), -1 on out of memory.
 */
typedef int (*s_take_fn)(void *ctx, const char *answer, char **lines);

static int s_converse(const modifier_config_t *cfg, agent_env_t *env,
                      s_chat_t *c, s_take_fn take, void *ctx,
                      modify_result_t *out, char **last_lines, char *err,
                      size_t errlen)
{
    *last_lines = NULL;
    for (int round = 0; round <= cfg->retries; round++) {
        char *answer = NULL;
        int rc = llm_chat(env->llm, "modifier", env->iteration, c->m, c->n,
                          &answer, err, errlen);
        if (rc != LLM_OK) {
            if (s_fatal(rc))
                return rc;
            out->status = MODIFY_NO_ANSWER;
            free(out->last_error);
            out->last_error = strdup(err);
            return 1;
        }
        out->answers++;
        s_chat_add(c, "assistant", answer);
        char *lines = NULL;
        int t = take(ctx, answer, &lines);
        if (t <= 0) {
            free(lines);
            return t == 0 ? 0 : -1;
        }
        free(*last_lines);
        *last_lines = lines;
        if (round < cfg->retries)
            s_chat_add(c, "user", s_feedback(env, lines));
    }
    return 2;
}

/* State shared by the two take() callbacks. */
typedef struct s_try {
    const modifier_config_t *cfg;
    agent_env_t *env;
    char *parent_stem, *parent_down;
    char *cell;             /* the last cell text tried */
    graph_design_t *design; /* accepted */
    net_choice_t choice;
    bool frame_bad; /* the cell was fine, the frame was not */
    char *frame_lines;
} s_try_t;

static const char s_no_block[] =
    "no block found in the answer: write the block in the block format, "
    "starting with its ##NAME## header line";

static int s_take_cell(void *ctx, const char *answer, char **lines)
{
    s_try_t *t = ctx;
    char *cell = modifier_extract(answer, NULL, NULL);

    if (!cell) {
        *lines = strdup(s_no_block);
        return 1;
    }
    free(t->cell);
    t->cell = cell;
    char *why = NULL;
    s_check_t r = s_check(t->cfg, t->env, cell, t->parent_stem, t->parent_down,
                          &t->design, &t->choice, &why);
    if (r == S_VALID || r == S_FRAME_BAD) {
        t->frame_bad = r == S_FRAME_BAD;
        t->frame_lines = why;
        return 0;
    }
    *lines = why ? why : strdup("invalid block");
    return 1;
}

static int s_take_frame(void *ctx, const char *answer, char **lines)
{
    s_try_t *t = ctx;
    char *stem = NULL, *down = NULL;

    free(modifier_extract(answer, &stem, &down));
    if (!stem || !down) {
        free(stem);
        free(down);
        *lines = strdup("answer with both blocks, each starting with its "
                        "header: ##NAME_stem## and ##NAME_downsample##");
        return 1;
    }
    char *why = NULL;
    graph_design_t *d = NULL;
    s_check_t r =
        s_check(t->cfg, t->env, t->cell, stem, down, &d, &t->choice, &why);
    free(stem);
    free(down);
    if (r == S_VALID) {
        graph_design_destroy(&t->design);
        t->design = d;
        free(why);
        return 0;
    }
    *lines = why ? why : strdup("invalid blocks");
    return 1;
}

/* Ask for a stem and downsample matching the accepted cell. */
static int s_frame(const modifier_config_t *cfg, agent_env_t *env, s_try_t *t,
                   const char *format, const char *why, modify_result_t *out,
                   char *err, size_t errlen)
{
    s_chat_t c = {0};
    char name[128] = "cell", stem_shape[96];
    int scale = env->net && env->net->stem_scale > 1 ? env->net->stem_scale
                                                     : 1;
    text_buf_t cur;

    sscanf(t->cell, "##%127[^#]##", name);
    if (scale == 1)
        snprintf(stem_shape, sizeof stem_shape, "(B,dim,H,W), keeping the "
                 "resolution");
    else
        snprintf(stem_shape, sizeof stem_shape, "(B,dim,H/%d,W/%d), "
                 "reducing the resolution %d times", scale, scale, scale);
    text_buf_init(&cur);
    text_buf_printf(&cur, "%s\n%s", t->parent_stem, t->parent_down);
    char *current = text_buf_take(&cur);
    prompt_var_t vars[] = {{"format", format},
                           {"errors", why ? why : "(asked for new ones)"},
                           {"name", name},
                           {"block", t->cell},
                           {"current", current},
                           {"stem_shape", stem_shape}};
    char *prompt =
        current ? prompts_render(env->prompts, "stem", vars, 6, err, errlen)
                : NULL;
    free(current);
    if (!prompt)
        return -1;
    s_chat_add(&c, "user", prompt);
    char *lines = NULL;
    int rc =
        s_converse(cfg, env, &c, s_take_frame, t, out, &lines, err, errlen);
    s_chat_free(&c);
    if (rc == 0)
        out->stem_new = true;
    free(t->frame_lines);
    t->frame_lines = lines;
    return rc;
}

static const char *s_contract(bool two_input)
{
    return two_input
               ? "The changed cell must still take input1 and input2, each "
                 "of shape (B,C,H,W), and output a tensor of shape "
                 "(B,C,H,W)."
               : "The changed cell must still map a tensor of shape "
                 "(B,C,H,W) to one of shape (B,C,H,W): the same number of "
                 "channels, the same height and width.";
}

int modifier_apply(const modifier_config_t *cfg, agent_env_t *env,
                   const graph_design_t *parent, const char *insp,
                   const char *lessons, modifier_known_fn known, void *ctx,
                   modify_result_t *out, char *err, size_t errlen)
{
    s_try_t t = {.cfg = cfg, .env = env};
    s_chat_t c = {0};
    char *format = NULL, *cell = NULL, *prompt = NULL, *lines = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!env->llm) {
        snprintf(err, errlen, "modifier: no LLM endpoint");
        return -1;
    }
    format = prompts_format(env->prompts, parent->two_input);
    cell = graph_block_print(parent->cell);
    t.parent_stem = graph_block_print(parent->stem);
    t.parent_down = graph_block_print(parent->downsample);
    if (!format || !cell || !t.parent_stem || !t.parent_down) {
        snprintf(err, errlen, "modifier: out of memory");
        goto out;
    }
    prompt_var_t vars[] = {{"format", format},
                           {"contract", s_contract(parent->two_input)},
                           {"inspiration", insp},
                           {"block", cell},
                           {"experience", lessons ? lessons : ""}};
    prompt = prompts_render(env->prompts, "modify", vars, 5, err, errlen);
    if (!prompt)
        goto out;
    s_chat_add(&c, "user", prompt);
    prompt = NULL;

    rc = s_converse(cfg, env, &c, s_take_cell, &t, out, &lines, err, errlen);
    if (rc < 0 || s_fatal(rc))
        goto out;
    if (rc == 0 && (t.frame_bad || cfg->stem_always)) {
        int fr = s_frame(cfg, env, &t, format, t.frame_lines, out, err, errlen);
        if (fr < 0 || s_fatal(fr)) {
            rc = fr;
            goto out;
        }
        if (fr != 0 && t.frame_bad) {
            /* The parent's frame does not fit and no new one came. */
            free(lines);
            lines = t.frame_lines;
            t.frame_lines = NULL;
            rc = 2;
        }
    }
    if (rc == 1) {
        rc = 0; /* no answer: status and reason already set */
        goto out;
    }
    if (rc == 2) {
        out->status = MODIFY_INVALID;
        out->last_block = t.cell ? strdup(t.cell) : NULL;
        out->last_error = lines ? lines : strdup(s_no_block);
        lines = NULL;
        rc = 0;
        goto out;
    }
    out->design = t.design;
    t.design = NULL;
    out->choice = t.choice;
    if (graph_design_hash(out->design, out->hash) != 0) {
        snprintf(err, errlen, "modifier: a valid design could not be hashed");
        rc = -1;
        goto out;
    }
    char ph[33];
    bool dup = graph_design_hash(parent, ph) == 0 && strcmp(ph, out->hash) == 0;
    if (!dup && known)
        dup = known(ctx, out->hash);
    out->status = dup ? MODIFY_DUPLICATE : MODIFY_OK;
    rc = 0;
out:
    graph_design_destroy(&t.design);
    free(t.cell);
    free(t.frame_lines);
    free(t.parent_stem);
    free(t.parent_down);
    free(lines);
    free(prompt);
    free(cell);
    free(format);
    s_chat_free(&c);
    return rc;
}
