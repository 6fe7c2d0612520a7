/*
 * report_data.h - a search's designs and results as one JSON object, for
 * `nader report` (cli/report_page.html draws it).
 *
 * Shape: {source, name, dataset, skeleton, designer, generated, llm:
 * {calls, prompt_tokens, completion_tokens, cost} or null, designs:
 * [{hash, name, parent (hash or null), inspiration, iteration, ...}],
 * results: [{job, design (hash), dataset, seed, epochs, status,
 * valid_acc (final, or null), params, width, order, curve: [{epoch,
 * train_loss, train_acc, valid_acc}]}]}.
 */
#ifndef NADER_REPORT_DATA_H
#define NADER_REPORT_DATA_H

#include <stddef.h>

#include <jansson.h>

/*
 * Read dir: a results folder (summary.json, designs.jsonl,
 * results.jsonl) or a coordinator's state folder (read-only; tag, when
 * not NULL, keeps one search's results).  Returns a new reference, or
 * NULL with err naming the file and problem.
 */
json_t *report_data_load(const char *dir, const char *tag, char *err,
                         size_t errlen);

#endif
