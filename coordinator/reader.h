/*
 * reader.h - inspirations and the Reader agent.
 *
 * An inspiration is one short design idea (at most 50 words) with its
 * source.  The Reader makes them from paper text with the language model;
 * lists can also be imported: the public NADER release's JSON layout
 * ([{"id", "paper_id", "inspiration"}], where older files say
 * "proposal"), a JSON list of strings, or a text file with one idea per
 * line.  Lists are written back in the release's layout, plus "source".
 *
 * Ids are assigned in order from 1 and never reused; an idea whose text
 * (white space squashed) is already in the list is not added twice.
 *
 * Ownership: a list owns its inspirations (insp_list_free).
 */
#ifndef NADER_READER_H
#define NADER_READER_H

#include <stdint.h>

#include "agent.h"

#define INSPIRATION_MAX_WORDS 50

typedef struct inspiration {
    int64_t id;
    char *text;
    char *source;      /* file name or paper title; may be NULL */
    char *paper_id;    /* as imported; may be NULL */
    char *external_id; /* the id in an imported list; may be NULL */
    float *emb;        /* unit embedding, once asked for; NULL */
    int dim;
} inspiration_t;

typedef struct insp_list {
    int n, cap;
    inspiration_t *v;
    int64_t next_id;
} insp_list_t;

void insp_list_init(insp_list_t *l);
void insp_list_free(insp_list_t *l);

/*
 * Add an idea (copied, white space squashed).  Returns its id, the id of
 * the same text already there, 0 when the text is empty, or -1 when out
 * of memory.  id > 0 keeps that id (loading a stored list); 0 assigns
 * the next one.
 */
int64_t insp_list_add(insp_list_t *l, int64_t id, const char *text,
                      const char *source, const char *paper_id,
                      const char *external_id);

/* The inspiration with this id, or NULL. */
const inspiration_t *insp_list_get(const insp_list_t *l, int64_t id);

/*
 * Import a file in any of the layouts above.  Returns the number of ideas
 * added (duplicates are not counted), or -1 with "FILE: what" (and the
 * entry or line) in err; on error the list is unchanged.
 */
int insp_list_import(insp_list_t *l, const char *path, char *err,
                     size_t errlen);

/* The list in the release's JSON layout (malloc'd). */
char *insp_list_to_json(const insp_list_t *l);

/* What reader_read did with one file. */
typedef struct reader_report {
    int chunks;     /* pieces of text sent */
    int added;      /* new inspirations */
    int duplicates; /* already in the list */
    int too_long;   /* over 50 words, dropped */
} reader_report_t;

/*
 * Read a paper (plain text or Markdown; PDF is refused with a hint to
 * convert it first) and add the inspirations the model finds, with the
 * file name as their source.  Long texts are cut into pieces of about
 * chunk_chars characters at paragraph breaks; at most max_chunks pieces
 * are read (0: all), each asking for up to per_chunk ideas.  Returns 0,
 * or an LLM_ERR_* / -1 code with a message in err.
 */
int reader_read(agent_env_t *env, const char *path, int chunk_chars,
                int max_chunks, int per_chunk, insp_list_t *l,
                reader_report_t *rep, char *err, size_t errlen);

/*
 * Parse a Reader answer: the texts between <inspiration> tags, squashed.
 * Returns the count and a malloc'd array (text_list_free).
 */
int reader_parse(const char *answer, char ***out);

#endif
