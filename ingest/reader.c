#include "reader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "nifti.h"
#include "sha256.h"

typedef struct Node {
    ReadItem it;
    struct Node *next;
} Node;

struct Reader {
    const UnitList *units;
    size_t member_limit, queue_bytes;
    volatile sig_atomic_t *stop;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    Node *head, *tail;
    size_t bytes;            /* member bytes queued */
    int count;
    int done;                /* the producer has pushed its last item */
    int closing;             /* the consumer wants the producer to stop */
    int64_t max_voxels;      /* > 0: inflate .nii.gz members ahead */
    ReaderWanted wanted;
    void *wanted_ctx;
    int go;                  /* reader_inflate_nifti was called or not: start producing */
};

/* Queues an item (taking its contents); waits while the queue is full. */
static void push(Reader *r, ReadItem *it)
{
    Node *n = malloc(sizeof *n);
    pthread_mutex_lock(&r->mu);
    size_t sz = it->m.len + it->inflated_len;
    while (!r->closing && r->count > 0 && r->bytes + sz > r->queue_bytes)
        pthread_cond_wait(&r->not_full, &r->mu);
    if (r->closing || !n) {
        pthread_mutex_unlock(&r->mu);
        reader_item_free(it);
        free(n);
        return;
    }
    n->it = *it;
    n->next = NULL;
    if (r->tail)
        r->tail->next = n;
    else
        r->head = n;
    r->tail = n;
    r->bytes += sz;
    r->count++;
    pthread_cond_signal(&r->not_empty);
    pthread_mutex_unlock(&r->mu);
    memset(it, 0, sizeof *it);
}

/* Copies the names into one owned block. */
static int own_names(ReadItem *it, const char *source, const char *name, const char *member)
{
    size_t a = strlen(source) + 1, b = strlen(name ? name : "") + 1,
           c = strlen(member ? member : "") + 1;
    it->strings = malloc(a + b + c);
    if (!it->strings)
        return -1;
    memcpy(it->strings, source, a);
    memcpy(it->strings + a, name ? name : "", b);
    memcpy(it->strings + a + b, member ? member : "", c);
    it->m.source = it->strings;
    it->m.name = it->strings + a;
    it->m.member = it->strings + a + b;
    return 0;
}

static int stopping(Reader *r)
{
    if (r->stop && *r->stop)
        return 1;
    pthread_mutex_lock(&r->mu);
    int c = r->closing;
    pthread_mutex_unlock(&r->mu);
    return c;
}

static void *produce(void *arg)
{
    Reader *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->go && !r->closing)
        pthread_cond_wait(&r->not_full, &r->mu);
    pthread_mutex_unlock(&r->mu);
    for (int u = 0; u < r->units->n && !stopping(r); u++) {
        const Unit *unit = &r->units->u[u];
        MemberReader *mr = NULL;
        ReadItem it;
        memset(&it, 0, sizeof it);
        it.unit = u;
        if (members_open(&mr, unit, r->member_limit, &it.err)) {
            it.kind = RI_ERROR;
            it.fatal = 1;
            if (own_names(&it, unit->path, "", "") == 0)
                push(r, &it);
            memset(&it, 0, sizeof it);
            it.kind = RI_END;
            it.unit = u;
            push(r, &it);
            continue;
        }
        Member m;
        int fatal, rc;
        while (!stopping(r)) {
            memset(&it, 0, sizeof it);
            it.unit = u;
            rc = members_next(mr, &m, &fatal, &it.err);
            if (rc == 0)
                break;
            it.disk = members_disk_bytes(mr);
            if (rc < 0) {
                it.kind = RI_ERROR;
                it.fatal = fatal;
                if (own_names(&it, m.source ? m.source : unit->path, m.name, m.member) == 0)
                    push(r, &it);
                if (fatal)
                    break;
                continue;
            }
            it.kind = RI_MEMBER;
            it.m.relofs = m.relofs;
            if (own_names(&it, m.source, m.name, m.member)) {
                it.kind = RI_ERROR;
                err_set(&it.err, FV_ENOMEM, "out of memory");
                if (own_names(&it, unit->path, "", "") == 0)
                    push(r, &it);
                continue;
            }
            it.m.len = m.len;
            it.data = members_take(&m);
            it.m.data = it.data;
            it.m.owner = NULL; /* set by the consumer, whose copy it is */
            Sha256 h;
            sha256_init(&h);
            sha256_update(&h, it.data, it.m.len);
            sha256_final(&h, it.sha_raw);
            sha256_to_hex(it.sha_raw, it.sha);
            if (r->max_voxels > 0 && name_ends_with(it.m.name, ".nii.gz") &&
                (!r->wanted || r->wanted(r->wanted_ctx, it.sha))) {
                /* Errors are left for the consumer, which reads the
                 * compressed bytes again and reports them. */
                FvErr ie = {0};
                if (nifti_inflate(it.data, it.m.len, r->max_voxels, &it.inflated,
                                  &it.inflated_len, &ie)) {
                    it.inflated = NULL;
                    it.inflated_len = 0;
                }
            }
            push(r, &it);
        }
        members_close(&mr);
        memset(&it, 0, sizeof it);
        it.kind = RI_END;
        it.unit = u;
        push(r, &it);
    }
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    pthread_cond_broadcast(&r->not_empty);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int reader_start(Reader **out, const UnitList *units, size_t member_limit, size_t queue_bytes,
                 volatile sig_atomic_t *stop, FvErr *e)
{
    Reader *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(e, FV_ENOMEM, "out of memory");
    r->units = units;
    r->member_limit = member_limit;
    r->queue_bytes = queue_bytes;
    r->stop = stop;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->not_empty, NULL);
    pthread_cond_init(&r->not_full, NULL);
    if (pthread_create(&r->thread, NULL, produce, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->not_empty);
        pthread_cond_destroy(&r->not_full);
        free(r);
        return err_set(e, FV_EINTERNAL, "cannot start the reader thread");
    }
    r->started = 1;
    *out = r;
    return 0;
}

void reader_inflate_nifti(Reader *r, int64_t max_voxels, ReaderWanted wanted, void *ctx)
{
    pthread_mutex_lock(&r->mu);
    r->max_voxels = max_voxels;
    r->wanted = wanted;
    r->wanted_ctx = ctx;
    r->go = 1;
    pthread_cond_broadcast(&r->not_full);
    pthread_mutex_unlock(&r->mu);
}

int reader_next(Reader *r, ReadItem *it)
{
    pthread_mutex_lock(&r->mu);
    if (!r->go) {
        r->go = 1;
        pthread_cond_broadcast(&r->not_full);
    }
    while (!r->head && !r->done)
        pthread_cond_wait(&r->not_empty, &r->mu);
    Node *n = r->head;
    if (!n) {
        pthread_mutex_unlock(&r->mu);
        memset(it, 0, sizeof *it);
        return 0;
    }
    r->head = n->next;
    if (!r->head)
        r->tail = NULL;
    r->bytes -= n->it.m.len + n->it.inflated_len;
    r->count--;
    pthread_cond_signal(&r->not_full);
    pthread_mutex_unlock(&r->mu);
    *it = n->it;
    free(n);
    /* The consumer owns the bytes now; members_take clears it->data. */
    it->m.owner = &it->data;
    return 1;
}

void reader_item_free(ReadItem *it)
{
    free(it->strings);
    free(it->data);
    free(it->inflated);
    memset(it, 0, sizeof *it);
}

void reader_close(Reader **pr)
{
    if (!pr || !*pr)
        return;
    Reader *r = *pr;
    pthread_mutex_lock(&r->mu);
    r->closing = 1;
    pthread_cond_broadcast(&r->not_full);
    pthread_mutex_unlock(&r->mu);
    if (r->started)
        pthread_join(r->thread, NULL);
    for (Node *n = r->head, *next; n; n = next) {
        next = n->next;
        reader_item_free(&n->it);
        free(n);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->not_empty);
    pthread_cond_destroy(&r->not_full);
    free(r);
    *pr = NULL;
}
