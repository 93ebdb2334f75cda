#include "dpstep.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loss.h"
#include "ops.h"

struct DpStep {
    const TrainSet *set;
    Dist *dist;
    int B, R, D, A, words;     /* global batch, rows, embedding, anatomies, disease words */
    int *counts, *displs;      /* (size) */
    int *row0;                 /* (size + 1) global rows of rank r: [row0[r], row0[r + 1]) */
    int *at;                   /* (size) scratch */
    /* the global batch's candidates, then rows (batch_groups, in place) */
    int *send;                 /* (3 R) this rank's candidates: study position, anatomy, sample */
    int *all;                  /* (3 R) every rank's */
    int *grb, *gra, *gcs;      /* (R) */
    int *anat_n, *anat_abn;    /* (A) */
    int *goff, *grow;          /* (A + 2), (R) */
    int *gtext;                /* (R) corpus text of each row, in group order */
    uint8_t *gabn;             /* (R) in group order */
    uint64_t *gdis;            /* (R, words) in group order */
    /* this rank's rows (indices into its share's studies) and texts */
    int *lrb, *lra, *lrtext, *lorder, *lpos; /* (R) */
    uint8_t *lrabn;            /* (R) */
    uint64_t *lrdis;           /* (R, words) */
    int *ltoff, *ltids;        /* (R + 1), (tokens) */
    int *luniq;                /* (R) local text -> corpus text */
    int *llocal;               /* (n_text) corpus text -> local text, -1 */
    /* features */
    float *fsend;              /* (R, 2 D) this rank's rows: image feature, text feature */
    float *fall;               /* (R, 2 D) every rank's, rank order */
    float *img, *txt;          /* (R, D) group order */
    float *dimg, *dtxt;        /* (R, D) group order */
    float *tgt, *scratch;      /* (B, B), contrast_scratch_size(B) */
    double loss_s;             /* seconds in the global batch's loss, every step */
};

double dp_loss_seconds(const DpStep *dp) { return dp->loss_s; }

void dp_free(DpStep **pp)
{
    DpStep *p = *pp;
    if (!p)
        return;
    void *bufs[] = {p->counts, p->displs, p->row0, p->at, p->send, p->all, p->grb, p->gra,
                    p->gcs, p->anat_n, p->anat_abn, p->goff, p->grow, p->gtext, p->gabn, p->gdis,
                    p->lrb, p->lra, p->lrtext, p->lorder, p->lpos, p->lrabn, p->lrdis, p->ltoff,
                    p->ltids, p->luniq, p->llocal, p->fsend, p->fall, p->img, p->txt, p->dimg,
                    p->dtxt, p->tgt, p->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(p);
    *pp = NULL;
}

int dp_alloc(DpStep **out, const TrainSet *c, const Net *n, int batch, Dist *d, FvErr *e)
{
    *out = NULL;
    DpStep *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(e, FV_ENOMEM, "data-parallel step: out of memory");
    NetCap cap = trainset_capacity(c, batch);
    p->set = c;
    p->dist = d;
    p->B = batch;
    p->R = cap.rows;
    p->D = n->cfg.embed;
    p->A = c->n_anat ? c->n_anat : 1;
    p->words = c->dis_words;
    size_t R = (size_t)p->R, S = (size_t)d->size, D = (size_t)p->D, W = (size_t)p->words;
    size_t A = (size_t)p->A, B = (size_t)batch;
    int tokens = cap.text_tokens;
    p->counts = malloc(S * sizeof(int));
    p->displs = malloc(S * sizeof(int));
    p->row0 = malloc((S + 1) * sizeof(int));
    p->at = malloc(S * sizeof(int));
    p->send = malloc(3 * R * sizeof(int));
    p->all = malloc(3 * R * sizeof(int));
    p->grb = malloc(R * sizeof(int));
    p->gra = malloc(R * sizeof(int));
    p->gcs = malloc(R * sizeof(int));
    p->anat_n = malloc(A * sizeof(int));
    p->anat_abn = malloc(A * sizeof(int));
    p->goff = malloc((A + 2) * sizeof(int));
    p->grow = malloc(R * sizeof(int));
    p->gtext = malloc(R * sizeof(int));
    p->gabn = malloc(R);
    p->gdis = malloc((R * W + 1) * sizeof(uint64_t));
    p->lrb = malloc(R * sizeof(int));
    p->lra = malloc(R * sizeof(int));
    p->lrtext = malloc(R * sizeof(int));
    p->lorder = malloc(R * sizeof(int));
    p->lpos = malloc(R * sizeof(int));
    p->lrabn = malloc(R);
    p->lrdis = malloc((R * W + 1) * sizeof(uint64_t));
    p->ltoff = malloc((R + 1) * sizeof(int));
    p->ltids = malloc((size_t)tokens * sizeof(int));
    p->luniq = malloc(R * sizeof(int));
    p->llocal = malloc(((size_t)c->n_text + 1) * sizeof(int));
    p->fsend = malloc(R * 2 * D * sizeof(float));
    p->fall = malloc(R * 2 * D * sizeof(float));
    p->img = malloc(R * D * sizeof(float));
    p->txt = malloc(R * D * sizeof(float));
    p->dimg = malloc(R * D * sizeof(float));
    p->dtxt = malloc(R * D * sizeof(float));
    p->tgt = malloc(B * B * sizeof(float));
    p->scratch = malloc(contrast_scratch_size(batch) * sizeof(float));
    if (!p->counts || !p->displs || !p->row0 || !p->at || !p->send || !p->all || !p->grb ||
        !p->gra || !p->gcs || !p->anat_n || !p->anat_abn || !p->goff || !p->grow || !p->gtext ||
        !p->gabn || !p->gdis || !p->lrb || !p->lra || !p->lrtext || !p->lorder || !p->lpos ||
        !p->lrabn || !p->lrdis || !p->ltoff || !p->ltids || !p->luniq || !p->llocal ||
        !p->fsend || !p->fall || !p->img || !p->txt || !p->dimg || !p->dtxt || !p->tgt ||
        !p->scratch) {
        dp_free(&p);
        return err_set(e, FV_ENOMEM, "data-parallel step: out of memory");
    }
    for (int i = 0; i <= c->n_text; i++)
        p->llocal[i] = -1;
    *out = p;
    return 0;
}

/* Starts summing a part's parameter gradients across ranks as soon as the
 * backward pass has finished it. */
typedef struct SumCtx {
    DpStep *dp;
    Net *n;
    int failed;
    FvErr *e;
} SumCtx;

static void part_done(void *ctx, int part)
{
    SumCtx *s = ctx;
    size_t lo, hi;
    net_part_range(s->n, part, &lo, &hi);
    if (!s->failed && dist_sum_start(s->dp->dist, s->n->grads + lo, hi - lo, s->e))
        s->failed = 1;
}

/* Every rank's candidates, grouped as one process would group the whole
 * batch; the ranks' row ranges. Returns the rows, *ng the groups. */
static int global_rows(DpStep *p, const PipeJob *j, int *ng, FvErr *e)
{
    Dist *d = p->dist;
    const BatchBuf *bb = j->bb;
    for (int k = 0; k < j->nc; k++) {
        p->send[3 * k] = j->lo + bb->rb[k];
        p->send[3 * k + 1] = bb->ra[k];
        p->send[3 * k + 2] = bb->cand_s[k];
    }
    if (dist_gather_int(d, 3 * j->nc, p->counts, e))
        return -1;
    int total = 0;
    for (int r = 0; r < d->size; r++)
        total += p->counts[r];
    if (total > 3 * p->R)
        return err_set(e, FV_EINTERNAL, "data-parallel step: %d candidate rows, capacity %d",
                       total / 3, p->R);
    if (dist_gather_ints(d, p->send, 3 * j->nc, p->all, p->counts, p->displs, e))
        return -1;
    int nc = total / 3;
    for (int k = 0; k < nc; k++) {
        p->grb[k] = p->all[3 * k];
        p->gra[k] = p->all[3 * k + 1];
        p->gcs[k] = p->all[3 * k + 2];
    }
    int nr = batch_groups(p->set, p->grb, p->gra, p->gcs, nc, p->anat_n, p->anat_abn, p->goff,
                          p->grow, ng);
    /* rows are in study order and shares are contiguous: each rank's rows
     * are one run */
    int q = 0;
    for (int r = 0; r < d->size; r++) {
        int lo, hi;
        pipe_share(j->n, r, d->size, &lo, &hi);
        p->row0[r] = q;
        while (q < nr && p->grb[q] < hi)
            q++;
    }
    p->row0[d->size] = nr;
    return nr;
}

/* This rank's rows as a batch of its studies: rows, texts (each once), and
 * the order of its rows in the global group order (lorder: local row,
 * lpos: position in group order). Returns the local rows. */
static int local_batch(DpStep *p, const PipeJob *j, int nr, NetBatch *lb)
{
    const TrainSet *c = p->set;
    int r0 = p->row0[p->dist->rank], r1 = p->row0[p->dist->rank + 1], nl = r1 - r0;
    int nt = 0;
    p->ltoff[0] = 0;
    for (int i = 0; i < nl; i++) {
        int q = r0 + i, s = p->gcs[q];
        int text = s >= 0 ? c->sm[s].text : -1 - s;
        p->lrb[i] = p->grb[q] - j->lo;
        p->lra[i] = p->gra[q];
        if (p->llocal[text] < 0) {
            p->llocal[text] = nt;
            p->luniq[nt] = text;
            int len = c->tok_off[text + 1] - c->tok_off[text];
            memcpy(p->ltids + p->ltoff[nt], c->tok_ids + c->tok_off[text],
                   (size_t)len * sizeof(int));
            p->ltoff[nt + 1] = p->ltoff[nt] + len;
            nt++;
        }
        p->lrtext[i] = p->llocal[text];
        p->lrabn[i] = s >= 0 ? c->sm[s].abnormal : 0;
        if (s >= 0)
            memcpy(p->lrdis + (size_t)i * p->words, c->dis + (size_t)s * p->words,
                   (size_t)p->words * sizeof(uint64_t));
        else
            memset(p->lrdis + (size_t)i * p->words, 0, (size_t)p->words * sizeof(uint64_t));
    }
    for (int s = 0; s < nt; s++)
        p->llocal[p->luniq[s]] = -1;
    int m = 0;
    for (int k = 0; k < nr; k++) {
        int q = p->grow[k];
        if (q >= r0 && q < r1) {
            p->lorder[m] = q - r0;
            p->lpos[m] = k;
            m++;
        }
    }
    const BatchBuf *bb = j->bb;
    *lb = (NetBatch){
        .nb = j->hi - j->lo, .img = bb->img, .tokbias = bb->tokbias, .hist = bb->hist,
        .hist_n = c->n_anat + 1, .nr = nl, .rb = p->lrb, .ra = p->lra, .rtext = p->lrtext,
        .rabn = p->lrabn, .rdis = p->lrdis, .dis_words = p->words, .ng = 0, .nt = nt,
        .toff = p->ltoff, .tids = p->ltids,
    };
    return nl;
}

int dp_step(DpStep *p, Net *n, const PipeJob *j, int backward, float *loss_out, int *ng_out,
            int *pairs, FvErr *e)
{
    Dist *d = p->dist;
    const TrainSet *c = p->set;
    int D = p->D, ng;
    *loss_out = 0.0f;
    *ng_out = 0;
    *pairs = 0;
    int nr = global_rows(p, j, &ng, e);
    if (nr < 0)
        return -1;
    *pairs = nr;
    if (!ng)
        return 0; /* nothing to contrast anywhere: no loss, no gradient, on every rank */
    /* 2. this rank's features */
    NetBatch lb;
    int nl = local_batch(p, j, nr, &lb);
    if (nl) {
        net_forward_rows(n, &lb, p->lorder, nl);
        const float *fn = net_image_features(n), *tfn = net_text_features(n);
        for (int m = 0; m < nl; m++) {
            memcpy(p->fsend + (size_t)m * 2 * D, fn + (size_t)m * D, (size_t)D * sizeof(float));
            memcpy(p->fsend + ((size_t)m * 2 + 1) * D, tfn + (size_t)lb.rtext[p->lorder[m]] * D,
                   (size_t)D * sizeof(float));
        }
    }
    /* 3. every row's features, in group order */
    for (int r = 0; r < d->size; r++)
        p->counts[r] = 2 * D * (p->row0[r + 1] - p->row0[r]);
    if (dist_gather_floats(d, p->fsend, 2 * D * nl, p->fall, p->counts, p->displs, e))
        return -1;
    for (int r = 0; r < d->size; r++)
        p->at[r] = p->displs[r];
    for (int k = 0, r = 0; k < nr; k++) {
        int q = p->grow[k];
        r = 0;
        while (q >= p->row0[r + 1])
            r++;
        memcpy(p->img + (size_t)k * D, p->fall + p->at[r], (size_t)D * sizeof(float));
        memcpy(p->txt + (size_t)k * D, p->fall + p->at[r] + D, (size_t)D * sizeof(float));
        p->at[r] += 2 * D;
        int s = p->gcs[q];
        p->gtext[k] = s >= 0 ? c->sm[s].text : -1 - s;
        p->gabn[k] = s >= 0 ? c->sm[s].abnormal : 0;
        if (s >= 0)
            memcpy(p->gdis + (size_t)k * p->words, c->dis + (size_t)s * p->words,
                   (size_t)p->words * sizeof(uint64_t));
        else
            memset(p->gdis + (size_t)k * p->words, 0, (size_t)p->words * sizeof(uint64_t));
    }
    /* the loss of each group, as net_step computes it; the groups are
     * shared out among the ranks (group g on rank g mod N), and the sums
     * below give every rank every group's gradients: each value comes from
     * one rank and zeros from the others, so it arrives exact */
    double t0 = now_seconds();
    float tau = n->w.temp[0], dtau = 0.0f;
    double loss = 0.0;
    if (backward) {
        memset(p->dimg, 0, (size_t)nr * D * sizeof(float));
        memset(p->dtxt, 0, (size_t)nr * D * sizeof(float));
    }
    for (int g = d->rank; g < ng; g += d->size) {
        int g0 = p->goff[g], k = p->goff[g + 1] - g0;
        loss_targets(p->tgt, n->cfg.loss, k, p->gabn + g0, p->gtext + g0,
                     p->gdis + (size_t)g0 * p->words, p->words);
        float dt;
        loss += contrast_loss(p->dimg + (size_t)g0 * D, p->dtxt + (size_t)g0 * D, &dt,
                              p->img + (size_t)g0 * D, p->txt + (size_t)g0 * D, p->tgt, k, D, tau,
                              p->scratch);
        dtau += dt;
    }
    p->loss_s += now_seconds() - t0;
    double sums[2] = {loss, dtau};
    if (dist_sum_doubles(d, sums, backward ? 2 : 1, e) ||
        (backward && (dist_sum_floats(d, p->dimg, (size_t)nr * D, e) ||
                      dist_sum_floats(d, p->dtxt, (size_t)nr * D, e))))
        return -1;
    loss = sums[0];
    dtau = (float)sums[1];
    *loss_out = (float)loss;
    *ng_out = ng;
    if (!backward)
        return 0;
    /* 4. this rank's rows backward; the sums start tower by tower */
    if (d->rank == 0)
        n->g.temp[0] += dtau;
    SumCtx sc = {p, n, 0, e};
    if (nl) {
        float *dfn = net_feature_grads(n), *dtfn = net_text_grads(n);
        memset(dtfn, 0, (size_t)lb.nt * D * sizeof(float));
        for (int m = 0; m < nl; m++) {
            memcpy(dfn + (size_t)m * D, p->dimg + (size_t)p->lpos[m] * D,
                   (size_t)D * sizeof(float));
            vec_acc(dtfn + (size_t)lb.rtext[p->lorder[m]] * D, p->dtxt + (size_t)p->lpos[m] * D,
                    (size_t)D);
        }
        net_backward_rows(n, &lb, p->lorder, nl, part_done, &sc);
    } else {
        /* no rows here: zero gradients, but the same sums as every rank */
        part_done(&sc, NET_PART_TEXT);
        part_done(&sc, NET_PART_HEADS);
        part_done(&sc, NET_PART_VISION);
    }
    if (sc.failed)
        return -1;
    return dist_sum_wait(d, e);
}
