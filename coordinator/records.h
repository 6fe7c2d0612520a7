/*
 * records.h - JSON views of store records (jansson).
 *
 * Ownership: the json_t values returned are new references owned by the
 * caller (json_decref).  Names returned are static.
 */
#ifndef NADER_RECORDS_H
#define NADER_RECORDS_H

#include <stdbool.h>

#include <jansson.h>

#include "nader.pb-c.h"

/* "queued", "leased", "running", "done", "failed", "cancelled". */
const char *records_state_name(Nader__JobState s);
/* "ok", "failed", "diverged", "cancelled". */
const char *records_status_name(Nader__ResultStatus s);

/* A result as JSON; with per-epoch figures when epochs is true. */
json_t *records_result_json(const Nader__ResultRecord *rr, bool epochs);
json_t *records_job_json(const Nader__JobRecord *j);

#endif
