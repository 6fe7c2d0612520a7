/*
 * keys.h - CURVE key files and allow-lists.
 *
 * nader's daemons and clients authenticate each other with ZeroMQ's
 * CURVE mechanism.  `nader keygen NAME` writes two text files:
 *
 *   NAME.key   both halves, mode 0600:   public-key = "<40 Z85 chars>"
 *                                        secret-key = "<40 Z85 chars>"
 *   NAME.pub   the public half only:     public-key = "<40 Z85 chars>"
 *
 * An allow-list is a folder of such .pub files (a .key file there counts
 * for its public half).  It is re-read when the folder changes, so a
 * worker key can be added or removed without restarting the coordinator.
 *
 * Ownership: keys_list_new returns a list owned by the caller, freed with
 * keys_list_destroy(&l).
 */
#ifndef NADER_KEYS_H
#define NADER_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYS_Z85_LEN 40   /* a 32-byte key in Z85, without the NUL */

/*
 * Make a new key pair and write DIR/NAME.key (0600) and DIR/NAME.pub,
 * making DIR (0700) and its parents when missing.
 * Refuses to overwrite existing files.  Returns 0, or -1 with err set.
 */
int keys_generate(const char *dir, const char *name, char *err,
                  size_t errlen);

/* Read a .key file: both halves in Z85 (41 bytes each with the NUL).
 * Returns 0, or -1 with err naming the file and the problem. */
int keys_load_pair(const char *path, char public_z85[41],
                   char secret_z85[41], char *err, size_t errlen);

/* Read the public half of a .pub or .key file. */
int keys_load_public(const char *path, char public_z85[41], char *err,
                     size_t errlen);

typedef struct keys_list keys_list_t;

/* An allow-list over folder dir (which may be missing or empty: then it
 * allows nobody).  Returns NULL when out of memory. */
keys_list_t *keys_list_new(const char *dir);
void keys_list_destroy(keys_list_t **l);

/*
 * Whether the 32-byte public key is on the list.  Re-reads the folder
 * first when its modification time changed (checked at most once every
 * 500 ms).
 */
bool keys_list_allows(keys_list_t *l, const uint8_t key[32]);

/* Number of keys loaded at the last read. */
int keys_list_count(keys_list_t *l);

#endif
