/*
 * inventory.h - what a worker has: host name, memory, processor threads,
 * backends, devices and the data sets found in its data folder.
 *
 * A data set counts as present when its first file is where docs/data.md
 * looks for it, in the data folder itself or in the sub-folder its
 * archive unpacks to:
 *   data_batch_1.bin (cifar-10-batches-bin/)   -> cifar10, cifar10-valid
 *   train.bin (cifar-100-binary/)              -> cifar100
 *   train_data_batch_1 and val_data (Imagenet16_train/ and
 *   Imagenet16_val/, or ImageNet16/)           -> imagenet16-120
 * Only presence is checked here; the engine checks the files' sizes when
 * it loads them, and a bad file fails that job with a reason.
 *
 * Ownership: inventory_take fills a struct whose strings it owns;
 * inventory_free releases them.
 */
#ifndef NADER_INVENTORY_H
#define NADER_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#define INVENTORY_MAX 16

typedef struct inventory {
    char host[256];
    uint64_t memory_bytes;
    int threads;
    int n_devices;
    char *devices[INVENTORY_MAX];     /* "cpu", "cuda:0" */
    int n_datasets;
    char *datasets[INVENTORY_MAX];
    int n_backends;
    char *backends[4];
} inventory_t;

/*
 * Resolve the --device argument ("cpu", "cuda:N", "all", or a comma
 * list of these) and look at the data folder.  all_datasets: claim every
 * data set (the load-test mode, which trains nothing).  Returns 0, or -1
 * with err naming the problem (e.g. "--device all: no CUDA device").
 */
int inventory_take(inventory_t *inv, const char *devices,
                   const char *data_dir, int all_datasets, char *err,
                   size_t errlen);
void inventory_free(inventory_t *inv);

#endif
