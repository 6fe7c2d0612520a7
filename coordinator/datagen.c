/*
 * datagen.c - the generated data set (see datagen.h).
 */
#include "datagen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rng.h"
#include "text.h"

#define SIDE 32
#define PLANE (SIDE * SIDE)
#define RECORD (1 + 3 * PLANE)

static double s_unit(uint64_t *st)
{
    return (double)(engine_rng_next(st) >> 11) / 9007199254740992.0;
}

/*
 * One image of class c into rec (label byte, then R, G, B planes).  The
 * classes overlap on purpose: orientations jitter by up to half the gap
 * between classes, the tint is weak and shares the picture with a random
 * colour cast, and a blob of another class's tint and heavy pixel noise
 * get in the way, so that accuracy depends on the architecture.
 */
static void s_image(int c, uint64_t *st, unsigned char *rec)
{
    static const double tint[10][3] = {
        {1.0, 0.3, 0.3}, {0.3, 1.0, 0.3}, {0.3, 0.3, 1.0}, {1.0, 1.0, 0.3},
        {1.0, 0.3, 1.0}, {0.3, 1.0, 1.0}, {0.9, 0.6, 0.2}, {0.6, 0.2, 0.9},
        {0.5, 0.5, 0.5}, {0.2, 0.7, 0.5}};
    double angle = c * M_PI / 10 + (s_unit(st) - 0.5) * M_PI / 10;
    double freq = (c % 2 ? 0.8 : 0.55) * (0.8 + 0.4 * s_unit(st));
    double phase = s_unit(st) * 2 * M_PI;
    double contrast = 0.3 + 0.5 * s_unit(st);
    double cast[3] = {s_unit(st), s_unit(st), s_unit(st)};
    double bx = s_unit(st) * SIDE, by = s_unit(st) * SIDE;
    double br = 4 + 6 * s_unit(st);
    int blob = (int)(s_unit(st) * 10);
    double ca = cos(angle), sa = sin(angle);

    rec[0] = (unsigned char)c;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            double g = sin(freq * (x * ca + y * sa) + phase);
            bool in_blob = (x - bx) * (x - bx) + (y - by) * (y - by) < br * br;
            for (int ch = 0; ch < 3; ch++) {
                double w = 0.35 * tint[c][ch] + 0.65 * cast[ch];
                double v = 0.5 + 0.45 * contrast * g * w;
                if (in_blob)
                    v = 0.4 * v + 0.6 * tint[blob][ch];
                v += (s_unit(st) - 0.5) * 0.7;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                rec[1 + ch * PLANE + y * SIDE + x] =
                    (unsigned char)lround(v * 255);
            }
        }
}

static int s_file(const char *dir, const char *name, int n, uint64_t *st,
                  char *err, size_t errlen)
{
    char path[4200];
    unsigned char *buf = malloc((size_t)(n > 0 ? n : 1) * RECORD);

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++)
        s_image(i % 10, st, buf + (size_t)i * RECORD);
    int rc = text_file_write(path, (const char *)buf, (size_t)n * RECORD, err,
                             errlen);
    free(buf);
    return rc;
}

bool datagen_present(const char *dir)
{
    char path[4200];

    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    return access(path, R_OK) == 0;
}

int datagen_cifar10(const char *dir, int n_train, int n_test, uint64_t seed,
                    char *err, size_t errlen)
{
    uint64_t st = engine_rng_mix(seed ^ 0x64617461ULL);
    char name[32], manifest[1024];
    int counts[5];
    text_buf_t m;

    if (n_train < 5 || n_test < 1) {
        snprintf(err, errlen, "%s: at least 5 training and 1 test image", dir);
        return -1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < 5; i++) {
        counts[i] = n_train / 5 + (i < n_train % 5);
        snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        if (s_file(dir, name, counts[i], &st, err, errlen) != 0)
            return -1;
    }
    if (s_file(dir, "test_batch.bin", n_test, &st, err, errlen) != 0)
        return -1;
    text_buf_init(&m);
    text_buf_printf(&m, "{\n  \"note\": \"%s\",\n  \"records\": {\n",
                    DATAGEN_NOTE);
    for (int i = 0; i < 5; i++)
        text_buf_printf(&m, "    \"data_batch_%d.bin\": %d,\n", i + 1,
                        counts[i]);
    text_buf_printf(&m, "    \"test_batch.bin\": %d\n  }\n}\n", n_test);
    snprintf(manifest, sizeof manifest, "%s/nader-data.json", dir);
    char *text = text_buf_take(&m);
    int rc =
        text ? text_file_write(manifest, text, strlen(text), err, errlen) : -1;
    free(text);
    return rc;
}
