/*
 * train_feed.c - the batch prefetcher (see train_feed.h).
 *
 * One thread per feed, two slots.  The thread fills free slots in step
 * order; the trainer takes ready slots in step order and gives them back.
 * A generation counter lets the trainer abandon a sequence (max_steps,
 * cancel, an error) at any point: whatever the thread was filling for the
 * old generation is dropped when it finishes.  The epoch plan arrays are
 * touched by the thread only.
 */
#include "train_feed.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

#define FEED_SLOTS 2

typedef enum slot_state {
    SLOT_FREE,
    SLOT_FILLING,
    SLOT_READY,
    SLOT_IN_USE
} slot_state_t;

/* Device-side batch spec and the tensor built from it. */
typedef struct feed_dev {
    int32_t *index;
    int8_t *shift_x, *shift_y;
    uint8_t *flip;
    float *x;
    int32_t *labels;
} feed_dev_t;

typedef struct feed_slot {
    slot_state_t state;
    feed_batch_t b;
    int32_t *index;           /* host spec */
    int8_t *shift_x, *shift_y;
    uint8_t *flip;
    feed_dev_t dev;           /* build_here feeds: this slot's own */
} feed_slot_t;

struct feed {
    backend_t *be;
    int batch, h, w;
    bool build_here;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;

    feed_seq_t seq;
    int gen;
    bool active, plan_ready;
    int n_steps, produced, consumed;
    int err_rc;
    char err[512];

    int plan_cap;             /* thread only */
    int32_t *plan_index;
    int8_t *plan_sx, *plan_sy;
    uint8_t *plan_flip;

    feed_slot_t slots[FEED_SLOTS];
    feed_dev_t dev;           /* GPU feeds: the fixed buffers */
};

static int s_dev_alloc(backend_t *be, feed_dev_t *d, int batch, int h,
                       int w)
{
    size_t b = (size_t)batch;

    d->index = be->vt->alloc(be, b * sizeof(int32_t));
    d->shift_x = be->vt->alloc(be, b);
    d->shift_y = be->vt->alloc(be, b);
    d->flip = be->vt->alloc(be, b);
    d->x = be->vt->alloc(be, b * 3 * (size_t)h * (size_t)w * sizeof(float));
    d->labels = be->vt->alloc(be, b * sizeof(int32_t));
    return d->index && d->shift_x && d->shift_y && d->flip && d->x &&
                   d->labels
               ? 0
               : -ENOMEM;
}

static void s_dev_free(backend_t *be, feed_dev_t *d)
{
    void *p[6] = {d->index, d->shift_x, d->shift_y, d->flip, d->x,
                  d->labels};

    for (int i = 0; i < 6; i++)
        if (p[i])
            be->vt->free(be, p[i]);
    memset(d, 0, sizeof(*d));
}

/* The epoch plan of the current sequence into the plan arrays. */
static int s_plan(feed_t *f, const feed_seq_t *seq)
{
    if (seq->n_items > f->plan_cap) {
        int cap = seq->n_items;
        int32_t *ix = realloc(f->plan_index, (size_t)cap * sizeof(int32_t));
        if (ix)
            f->plan_index = ix;
        int8_t *sx = realloc(f->plan_sx, (size_t)cap);
        if (sx)
            f->plan_sx = sx;
        int8_t *sy = realloc(f->plan_sy, (size_t)cap);
        if (sy)
            f->plan_sy = sy;
        uint8_t *fl = realloc(f->plan_flip, (size_t)cap);
        if (fl)
            f->plan_flip = fl;
        if (!ix || !sx || !sy || !fl)
            return -ENOMEM;
        f->plan_cap = cap;
    }
    if (seq->shuffle) {
        data_epoch_plan(seq->seed, seq->epoch, seq->n_items, seq->pad,
                        f->plan_index, f->plan_sx, f->plan_sy, f->plan_flip);
        return 0;
    }
    for (int i = 0; i < seq->n_items; i++) {
        f->plan_index[i] = i;
        f->plan_sx[i] = f->plan_sy[i] = 0;
        f->plan_flip[i] = 0;
    }
    return 0;
}

static backend_batch_spec_t s_spec(const feed_seq_t *seq,
                                   const feed_dev_t *d, int n)
{
    backend_batch_spec_t spec = {d->index, d->shift_x, d->shift_y, d->flip,
                                 n, seq->shuffle ? seq->pad : 0,
                                 {seq->mean[0], seq->mean[1], seq->mean[2]},
                                 {seq->std[0], seq->std[1], seq->std[2]}};
    return spec;
}

static int s_upload(backend_t *be, const feed_slot_t *s, const feed_dev_t *d,
                    int n)
{
    size_t m = (size_t)n;

    if (be->vt->upload(be, d->index, s->index, m * sizeof(int32_t)) ||
        be->vt->upload(be, d->shift_x, s->shift_x, m) ||
        be->vt->upload(be, d->shift_y, s->shift_y, m) ||
        be->vt->upload(be, d->flip, s->flip, m))
        return -EIO;
    return 0;
}

/* Fill slot s with step k of seq (the thread's side). */
static int s_fill(feed_t *f, feed_slot_t *s, const feed_seq_t *seq, int k)
{
    int from = k * f->batch;
    int n = seq->n_use - from < f->batch ? seq->n_use - from : f->batch;
    backend_batch_spec_t spec;

    memcpy(s->index, f->plan_index + from, (size_t)n * sizeof(int32_t));
    memcpy(s->shift_x, f->plan_sx + from, (size_t)n);
    memcpy(s->shift_y, f->plan_sy + from, (size_t)n);
    memcpy(s->flip, f->plan_flip + from, (size_t)n);
    s->b.n = n;
    s->b.step = k;
    if (!f->build_here)
        return 0;
    if (s_upload(f->be, s, &s->dev, n))
        return -EIO;
    spec = s_spec(seq, &s->dev, n);
    return f->be->vt->batch(f->be, seq->images, seq->labels, f->h, f->w,
                            &spec, s->dev.x, s->dev.labels)
               ? -EIO
               : 0;
}

static feed_slot_t *s_free_slot(feed_t *f)
{
    for (int i = 0; i < FEED_SLOTS; i++)
        if (f->slots[i].state == SLOT_FREE)
            return &f->slots[i];
    return NULL;
}

static void *s_run(void *arg)
{
    feed_t *f = arg;

    /* the step's own threads have the cores; a batch is a small job */
    omp_set_num_threads(1);
    pthread_mutex_lock(&f->mu);
    for (;;) {
        feed_slot_t *s = NULL;
        while (!f->quit &&
               !(f->active && f->err_rc == 0 && f->produced < f->n_steps &&
                 (s = s_free_slot(f))))
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->quit)
            break;
        int k = f->produced++, gen = f->gen, rc = 0;
        bool need_plan = !f->plan_ready;
        feed_seq_t seq = f->seq;
        f->plan_ready = true;
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&f->mu);

        if (need_plan)
            rc = s_plan(f, &seq);
        if (rc == 0)
            rc = s_fill(f, s, &seq, k);

        pthread_mutex_lock(&f->mu);
        s->state = SLOT_FREE;
        if (gen == f->gen && rc) {
            f->err_rc = rc;
            snprintf(f->err, sizeof(f->err), "preparing batch %d: %s", k,
                     rc == -ENOMEM ? "out of memory" : f->be->err);
        } else if (gen == f->gen) {
            s->state = SLOT_READY;
        }
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int feed_new(backend_t *be, int batch, int h, int w, bool build_here,
             feed_t **out, char *err, size_t errlen)
{
    feed_t *f = calloc(1, sizeof(*f));
    int rc = -ENOMEM;

    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    f->be = be;
    f->batch = batch;
    f->h = h;
    f->w = w;
    f->build_here = build_here;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    for (int i = 0; i < FEED_SLOTS; i++) {
        feed_slot_t *s = &f->slots[i];
        s->b.slot = s;
        s->index = malloc((size_t)batch * sizeof(int32_t));
        s->shift_x = malloc((size_t)batch);
        s->shift_y = malloc((size_t)batch);
        s->flip = malloc((size_t)batch);
        if (!s->index || !s->shift_x || !s->shift_y || !s->flip)
            goto fail;
        if (build_here && s_dev_alloc(be, &s->dev, batch, h, w))
            goto fail;
    }
    if (!build_here && s_dev_alloc(be, &f->dev, batch, h, w))
        goto fail;
    for (int i = 0; i < FEED_SLOTS; i++) {
        feed_dev_t *d = build_here ? &f->slots[i].dev : &f->dev;
        f->slots[i].b.x = d->x;
        f->slots[i].b.labels = d->labels;
    }
    if (pthread_create(&f->thread, NULL, s_run, f) != 0) {
        rc = -EAGAIN;
        goto fail;
    }
    f->started = true;
    *out = f;
    return 0;
fail:
    snprintf(err, errlen, "%s: cannot set up the batch feed (batch %d): %s",
             be->device, batch,
             rc == -EAGAIN ? "no thread" : "out of memory");
    feed_destroy(&f);
    return rc;
}

void feed_destroy(feed_t **pf)
{
    feed_t *f = pf ? *pf : NULL;

    if (!f)
        return;
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        f->quit = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    for (int i = 0; i < FEED_SLOTS; i++) {
        feed_slot_t *s = &f->slots[i];
        free(s->index);
        free(s->shift_x);
        free(s->shift_y);
        free(s->flip);
        s_dev_free(f->be, &s->dev);
    }
    s_dev_free(f->be, &f->dev);
    free(f->plan_index);
    free(f->plan_sx);
    free(f->plan_sy);
    free(f->plan_flip);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    *pf = NULL;
}

int feed_steps(const feed_t *f, int n)
{
    return (n + f->batch - 1) / f->batch;
}

int feed_start(feed_t *f, const feed_seq_t *seq)
{
    pthread_mutex_lock(&f->mu);
    f->seq = *seq;
    f->gen++;
    f->active = true;
    f->plan_ready = false;
    f->n_steps = feed_steps(f, seq->n_use);
    f->produced = f->consumed = 0;
    f->err_rc = 0;
    for (int i = 0; i < FEED_SLOTS; i++)
        if (f->slots[i].state == SLOT_READY)
            f->slots[i].state = SLOT_FREE;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

int feed_next(feed_t *f, feed_batch_t **b, char *err, size_t errlen)
{
    int rc;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (f->err_rc) {
            rc = f->err_rc;
            snprintf(err, errlen, "%s", f->err);
            break;
        }
        if (f->consumed >= f->n_steps) {
            rc = 1;
            break;
        }
        feed_slot_t *s = NULL;
        for (int i = 0; i < FEED_SLOTS; i++)
            if (f->slots[i].state == SLOT_READY &&
                f->slots[i].b.step == f->consumed)
                s = &f->slots[i];
        if (s) {
            s->state = SLOT_IN_USE;
            f->consumed++;
            *b = &s->b;
            rc = 0;
            break;
        }
        pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void feed_release(feed_t *f, feed_batch_t *b)
{
    feed_slot_t *s = b->slot;

    pthread_mutex_lock(&f->mu);
    s->state = SLOT_FREE;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int feed_upload(feed_t *f, const feed_batch_t *b, char *err, size_t errlen)
{
    if (f->build_here)
        return 0;
    if (s_upload(f->be, b->slot, &f->dev, b->n)) {
        snprintf(err, errlen, "uploading batch %d: %s", b->step,
                 f->be->err);
        return -EIO;
    }
    return 0;
}

int feed_build(feed_t *f, const feed_batch_t *b, char *err, size_t errlen)
{
    backend_batch_spec_t spec;

    if (f->build_here)
        return 0;
    spec = s_spec(&f->seq, &f->dev, b->n);
    if (f->be->vt->batch(f->be, f->seq.images, f->seq.labels, f->h, f->w,
                         &spec, f->dev.x, f->dev.labels)) {
        snprintf(err, errlen, "building batch %d: %s", b->step, f->be->err);
        return -EIO;
    }
    return 0;
}
