/*
 * llm_json.c - exchanges as JSON lines (see llm.h).
 *
 * One exchange is one JSON object on one line:
 *
 *   {"seq":3,"kind":"chat","agent":"modifier","iteration":2,
 *    "key":"9f..#0","model":"gpt-4o","request":[{"role":"user",...}],
 *    "answer":"...","prompt_tokens":812,"completion_tokens":240,
 *    "estimated":false,"cost":0.0042,"latency_ms":1834,"attempts":1,
 *    "time":1764770000.25}
 *
 * "request" is kept as JSON (the messages, or the texts embedded), so a
 * log reads naturally; the memo key is stored, not recomputed, so a log
 * stays usable if the key's recipe ever changes.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

char *llm_exchange_to_json(const llm_exchange_t *x)
{
    json_t *req = x->request ? json_loads(x->request, 0, NULL) : NULL;
    json_t *o;
    char *s;

    if (!req)
        req = json_string(x->request ? x->request : "");
    o = json_pack(
        "{s:I, s:s, s:s, s:i, s:s, s:s, s:o, s:s, s:I, s:I, "
        "s:b, s:f, s:I, s:i, s:f}",
        "seq", (json_int_t)x->seq, "kind",
        x->kind == LLM_KIND_CHAT ? "chat" : "embed", "agent", x->agent,
        "iteration", x->iteration, "key", x->key, "model", x->model, "request",
        req, "answer", x->answer ? x->answer : "", "prompt_tokens",
        (json_int_t)x->prompt_tokens, "completion_tokens",
        (json_int_t)x->completion_tokens, "estimated", x->estimated, "cost",
        x->cost, "latency_ms", (json_int_t)(x->latency_s * 1000 + 0.5),
        "attempts", x->attempts, "time", x->time);
    if (!o)
        return NULL;
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static int s_copy_str(char *dst, size_t len, json_t *v)
{
    const char *s = json_string_value(v);

    if (!s || strlen(s) >= len)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

int llm_exchange_from_json(const char *line, llm_exchange_t *x, char *err,
                           size_t errlen)
{
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    const char *bad = NULL;

    memset(x, 0, sizeof *x);
    if (!o) {
        snprintf(err, errlen, "not JSON: %s", je.text);
        return -1;
    }
    if (!json_is_object(o)) {
        bad = "not a JSON object";
        goto fail;
    }
    const char *kind = json_string_value(json_object_get(o, "kind"));
    if (!kind || (strcmp(kind, "chat") != 0 && strcmp(kind, "embed") != 0)) {
        bad = "\"kind\" must be \"chat\" or \"embed\"";
        goto fail;
    }
    x->kind = strcmp(kind, "chat") == 0 ? LLM_KIND_CHAT : LLM_KIND_EMBED;
    if (s_copy_str(x->agent, sizeof x->agent, json_object_get(o, "agent"))) {
        bad = "\"agent\" missing or too long";
        goto fail;
    }
    if (s_copy_str(x->key, sizeof x->key, json_object_get(o, "key"))) {
        bad = "\"key\" missing or too long";
        goto fail;
    }
    json_t *it = json_object_get(o, "iteration");
    if (!json_is_integer(it)) {
        bad = "\"iteration\" missing";
        goto fail;
    }
    x->iteration = (int)json_integer_value(it);
    s_copy_str(x->model, sizeof x->model, json_object_get(o, "model"));
    json_t *ans = json_object_get(o, "answer");
    if (!json_is_string(ans)) {
        bad = "\"answer\" missing";
        goto fail;
    }
    json_t *req = json_object_get(o, "request");
    x->request = json_is_string(req)
                     ? strdup(json_string_value(req))
                     : json_dumps(req ? req : json_null(), JSON_COMPACT);
    x->answer = strdup(json_string_value(ans));
    if (!x->request || !x->answer) {
        bad = "out of memory";
        goto fail;
    }
    x->seq = json_integer_value(json_object_get(o, "seq"));
    x->prompt_tokens = json_integer_value(json_object_get(o, "prompt_tokens"));
    x->completion_tokens =
        json_integer_value(json_object_get(o, "completion_tokens"));
    x->estimated = json_is_true(json_object_get(o, "estimated"));
    x->cost = json_number_value(json_object_get(o, "cost"));
    x->latency_s = json_number_value(json_object_get(o, "latency_ms")) / 1000.0;
    x->attempts = (int)json_integer_value(json_object_get(o, "attempts"));
    x->time = json_number_value(json_object_get(o, "time"));
    json_decref(o);
    return 0;
fail:
    snprintf(err, errlen, "%s", bad);
    json_decref(o);
    llm_exchange_free(x);
    return -1;
}

int llm_exchange_copy(llm_exchange_t *dst, const llm_exchange_t *src)
{
    *dst = *src;
    dst->request = src->request ? strdup(src->request) : NULL;
    dst->answer = src->answer ? strdup(src->answer) : NULL;
    if ((src->request && !dst->request) || (src->answer && !dst->answer)) {
        llm_exchange_free(dst);
        return -1;
    }
    return 0;
}

void llm_exchange_free(llm_exchange_t *x)
{
    free(x->request);
    free(x->answer);
    x->request = NULL;
    x->answer = NULL;
}

int llm_sink_jsonl(void *ctx, const llm_exchange_t *x)
{
    FILE *f = ctx;
    char *s = llm_exchange_to_json(x);
    int rc = 0;

    if (!s)
        return -1;
    if (fputs(s, f) == EOF || fputc('\n', f) == EOF || fflush(f) != 0)
        rc = -1;
    free(s);
    return rc;
}
