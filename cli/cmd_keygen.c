/*
 * cmd_keygen.c - `nader keygen NAME [--dir DIR]`: make a CURVE key pair
 * for a coordinator, a worker or an admin client: NAME.key (secret, mode
 * 0600) and NAME.pub (public; copy it into the allow-list folder of the
 * other side).  See docs/operations.md.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "keys.h"

int cmd_keygen(int argc, char **argv)
{
    const char *dir = ".", *name = NULL;
    char err[1024];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: nader keygen NAME [--dir DIR]\n\n"
                   "Writes DIR/NAME.key (the key pair: keep it private) "
                   "and DIR/NAME.pub\n(the public key: give it to the "
                   "other side).\n");
            return 0;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] != '-' && !name) {
            name = argv[i];
        } else {
            fprintf(stderr, "usage: nader keygen NAME [--dir DIR]\n");
            return 2;
        }
    }
    if (!name) {
        fprintf(stderr, "usage: nader keygen NAME [--dir DIR]\n");
        return 2;
    }
    if (keys_generate(dir, name, err, sizeof err) < 0) {
        fprintf(stderr, "nader keygen: %s\n", err);
        return 1;
    }
    printf("wrote %s/%s.key (secret) and %s/%s.pub (public)\n", dir, name,
           dir, name);
    return 0;
}
