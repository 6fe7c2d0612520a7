/*
 * inventory.c - see inventory.h.
 */
#include "inventory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "backend.h"

static int s_add(char **list, int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(list[i], s) == 0)
            return 0;
    if (*n == INVENTORY_MAX)
        return -1;
    list[*n] = strdup(s);
    if (!list[*n])
        return -1;
    (*n)++;
    return 0;
}

static int s_is_dir(const char *base, const char *name)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", base, name);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether base[/sub]/file exists. */
static int s_has(const char *base, const char *sub, const char *file)
{
    char path[4096];
    struct stat st;

    if (sub)
        snprintf(path, sizeof path, "%s/%s/%s", base, sub, file);
    else
        snprintf(path, sizeof path, "%s/%s", base, file);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int s_devices(inventory_t *inv, const char *spec, char *err,
                     size_t errlen)
{
    char *copy = strdup(spec), *save = NULL, *tok;
    int rc = 0;

    if (!copy)
        return -1;
    for (tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "all") == 0) {
            int n = backend_cuda_count();
            if (n <= 0) {
                snprintf(err, errlen, "--device all: no CUDA device found "
                         "(%s); use --device cpu", backend_cuda_why()
                         ? backend_cuda_why() : "this machine has none");
                rc = -1;
            }
            for (int i = 0; i < n && rc == 0; i++) {
                char name[32];
                snprintf(name, sizeof name, "cuda:%d", i);
                rc = s_add(inv->devices, &inv->n_devices, name);
            }
        } else if (strcmp(tok, "cpu") == 0) {
            rc = s_add(inv->devices, &inv->n_devices, tok);
        } else if (strncmp(tok, "cuda:", 5) == 0 && tok[5]) {
            char *end;
            long i = strtol(tok + 5, &end, 10);
            if (*end || i < 0 || i >= backend_cuda_count()) {
                snprintf(err, errlen, "--device %s: no such CUDA device "
                         "(%d found%s%s)", tok, backend_cuda_count(),
                         backend_cuda_why() ? "; " : "",
                         backend_cuda_why() ? backend_cuda_why() : "");
                rc = -1;
            } else {
                rc = s_add(inv->devices, &inv->n_devices, tok);
            }
        } else {
            snprintf(err, errlen, "--device %s: not cpu, cuda:N or all",
                     tok);
            rc = -1;
        }
    }
    free(copy);
    if (rc == 0 && inv->n_devices == 0) {
        snprintf(err, errlen, "--device: no device given");
        rc = -1;
    }
    return rc;
}

int inventory_take(inventory_t *inv, const char *devices,
                   const char *data_dir, int all_datasets, char *err,
                   size_t errlen)
{
    struct sysinfo si;
    static const char *const all[] = {"cifar10", "cifar10-valid",
                                      "cifar100", "imagenet16-120"};

    memset(inv, 0, sizeof *inv);
    if (gethostname(inv->host, sizeof inv->host - 1) < 0)
        snprintf(inv->host, sizeof inv->host, "unknown");
    if (sysinfo(&si) == 0)
        inv->memory_bytes = (uint64_t)si.totalram * si.mem_unit;
    inv->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s_devices(inv, devices, err, errlen) < 0)
        goto fail;
    /* The backends of the devices asked for: a CPU worker does not open
     * the CUDA library only to say it could. */
    s_add(inv->backends, &inv->n_backends, "cpu");
    for (int i = 0; i < inv->n_devices; i++)
        if (strncmp(inv->devices[i], "cuda", 4) == 0) {
            s_add(inv->backends, &inv->n_backends, "cuda");
            break;
        }
    if (all_datasets) {
        for (int i = 0; i < 4; i++)
            s_add(inv->datasets, &inv->n_datasets, all[i]);
        return 0;
    }
    if (!data_dir || !s_is_dir(data_dir, ".")) {
        snprintf(err, errlen, "--data %s: not a folder", data_dir ? data_dir
                                                                 : "");
        goto fail;
    }
    if (s_has(data_dir, NULL, "data_batch_1.bin") ||
        s_has(data_dir, "cifar-10-batches-bin", "data_batch_1.bin")) {
        s_add(inv->datasets, &inv->n_datasets, "cifar10");
        s_add(inv->datasets, &inv->n_datasets, "cifar10-valid");
    }
    if (s_has(data_dir, NULL, "train.bin") ||
        s_has(data_dir, "cifar-100-binary", "train.bin"))
        s_add(inv->datasets, &inv->n_datasets, "cifar100");
    if ((s_has(data_dir, "Imagenet16_train", "train_data_batch_1") &&
         s_has(data_dir, "Imagenet16_val", "val_data")) ||
        (s_has(data_dir, NULL, "train_data_batch_1") &&
         s_has(data_dir, NULL, "val_data")) ||
        (s_has(data_dir, "ImageNet16", "train_data_batch_1") &&
         s_has(data_dir, "ImageNet16", "val_data")))
        s_add(inv->datasets, &inv->n_datasets, "imagenet16-120");
    return 0;
fail:
    inventory_free(inv);
    return -1;
}

void inventory_free(inventory_t *inv)
{
    for (int i = 0; i < inv->n_devices; i++)
        free(inv->devices[i]);
    for (int i = 0; i < inv->n_datasets; i++)
        free(inv->datasets[i]);
    for (int i = 0; i < inv->n_backends; i++)
        free(inv->backends[i]);
    inv->n_devices = inv->n_datasets = inv->n_backends = 0;
}
