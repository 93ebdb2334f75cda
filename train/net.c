#include "net.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss_supervised.h"
#include "ops.h"

/* ------------------------------------------------------------------ config */

int netcfg_tokens(const NetCfg *c)
{
    return (c->in_z / c->pz) * (c->in_y / c->py) * (c->in_x / c->px);
}

int netcfg_patch(const NetCfg *c) { return c->in_c * c->pz * c->py * c->px; }

int netcfg_check(const NetCfg *c, FvErr *e)
{
#define NEED(cond, ...)                               \
    do {                                              \
        if (!(cond))                                  \
            return err_set(e, FV_EUSAGE, __VA_ARGS__); \
    } while (0)
    NEED(c->in_c >= 1 && c->in_c <= NET_MAX_CHANNELS, "data.hu_window: 1 to %d windows",
         NET_MAX_CHANNELS);
    NEED(c->in_z > 0 && c->in_y > 0 && c->in_x > 0 && c->in_z <= 4096 && c->in_y <= 4096 &&
             c->in_x <= 4096, "model.input: sizes must be in 1..4096");
    NEED(c->pz > 0 && c->py > 0 && c->px > 0 && c->in_z % c->pz == 0 && c->in_y % c->py == 0 &&
             c->in_x % c->px == 0, "model.patch (%d, %d, %d) must divide model.input (%d, %d, %d)",
         c->pz, c->py, c->px, c->in_z, c->in_y, c->in_x);
    NEED(netcfg_tokens(c) <= 65536, "model: %d tokens per study is more than 65536",
         netcfg_tokens(c));
    NEED(c->width > 0 && c->width <= 8192, "model.width must be in 1..8192");
    NEED(c->heads > 0 && c->width % c->heads == 0, "model.heads must divide model.width");
    NEED(c->depth > 0 && c->depth <= NET_MAX_DEPTH, "model.depth must be in 1..%d", NET_MAX_DEPTH);
    NEED(c->mlp > 0 && c->mlp <= 65536, "model.mlp must be in 1..65536");
    NEED(c->n_keep > 0 && c->n_keep <= NET_MAX_KEEP, "model.keep: 1 to %d blocks", NET_MAX_KEEP);
    for (int i = 0; i < c->n_keep; i++)
        NEED(c->keep[i] >= 1 && c->keep[i] <= c->depth && (i == 0 || c->keep[i] > c->keep[i - 1]),
             "model.keep: block numbers must rise and lie in 1..model.depth");
    NEED(c->pool_heads > 0 && c->width % c->pool_heads == 0,
         "model.pool_heads must divide model.width");
    NEED(c->embed > 0 && c->embed <= 8192, "model.embed must be in 1..8192");
    NEED(c->t_width > 0 && c->t_width <= 8192, "model.text_width must be in 1..8192");
    NEED(c->t_heads > 0 && c->t_width % c->t_heads == 0,
         "model.text_heads must divide model.text_width");
    NEED(c->t_depth > 0 && c->t_depth <= NET_MAX_DEPTH, "model.text_depth must be in 1..%d",
         NET_MAX_DEPTH);
    NEED(c->t_mlp > 0 && c->t_mlp <= 65536, "model.text_mlp must be in 1..65536");
    NEED(c->t_max_len >= 2 && c->t_max_len <= 4096, "model.text_max_len must be in 2..4096");
    NEED(c->vocab > 4 && c->vocab <= (1 << 24), "vocabulary size %d out of range", c->vocab);
    NEED(c->t_mean == 0 || c->t_mean == 1, "model.text_pool must be cls or mean");
    NEED(c->hist == 0 || c->hist == 1, "model.anat_hist must be on or off");
    NEED(c->loss == LOSS_GLOBAL || (c->n_anat > 0 && c->n_anat <= 1024),
         "model: %d anatomies (1..1024 needed by the fine losses)", c->n_anat);
    NEED(c->loss != LOSS_SUPERVISED || (c->n_tasks > 0 && c->n_tasks <= 4096),
         "model: %d tasks (1..4096 needed by the supervised loss)", c->n_tasks);
    NEED(c->temp_init >= 0.001f && c->temp_init <= 0.5f, "model.temperature must be in [0.001, 0.5]");
#undef NEED
    return 0;
}

static const struct {
    const char *key;
    size_t off;
} cfg_ints[] = {
#define I(k, m) {k, offsetof(NetCfg, m)}
    I("in_c", in_c), I("in_z", in_z), I("in_y", in_y), I("in_x", in_x), I("patch_z", pz),
    I("patch_y", py), I("patch_x", px), I("width", width), I("depth", depth), I("heads", heads),
    I("mlp", mlp),    I("pool_heads", pool_heads), I("embed", embed), I("text_width", t_width),
    I("text_depth", t_depth), I("text_heads", t_heads), I("text_mlp", t_mlp),
    I("text_max_len", t_max_len), I("text_mean", t_mean), I("hist", hist), I("vocab", vocab), I("n_anat", n_anat),
    I("n_tasks", n_tasks),
#undef I
};
enum { N_CFG_INTS = sizeof cfg_ints / sizeof cfg_ints[0] };

void netcfg_to_json(const NetCfg *c, JsonW *w)
{
    jw_obj(w);
    jw_key(w, "loss");
    jw_str(w, loss_mode_name(c->loss));
    for (int i = 0; i < N_CFG_INTS; i++) {
        jw_key(w, cfg_ints[i].key);
        jw_int(w, *(const int *)((const char *)c + cfg_ints[i].off));
    }
    jw_key(w, "keep");
    jw_arr(w);
    for (int i = 0; i < c->n_keep; i++)
        jw_int(w, c->keep[i]);
    jw_arr_end(w);
    jw_key(w, "temperature");
    jw_num(w, c->temp_init);
    jw_obj_end(w);
}

int netcfg_from_json(NetCfg *c, const JsonValue *obj, FvErr *e)
{
    memset(c, 0, sizeof *c);
    if (!obj || obj->type != JSON_OBJ)
        return err_set(e, FV_EFORMAT, "model config: not a JSON object");
    if (loss_mode_parse(json_get_str(obj, "loss", ""), &c->loss))
        return err_set(e, FV_EFORMAT, "model config: unknown loss '%s'",
                       json_get_str(obj, "loss", ""));
    for (int i = 0; i < N_CFG_INTS; i++) {
        const JsonValue *v = json_get(obj, cfg_ints[i].key);
        /* checkpoints from before input channels had one, and no density summary */
        if (!v && cfg_ints[i].off == offsetof(NetCfg, in_c)) {
            c->in_c = 1;
            continue;
        }
        if (!v && (cfg_ints[i].off == offsetof(NetCfg, hist) ||
                   cfg_ints[i].off == offsetof(NetCfg, n_tasks)))
            continue;
        if (!v || v->type != JSON_NUM || !v->is_int || v->i < 0 || v->i > (1 << 26))
            return err_set(e, FV_EFORMAT, "model config: '%s' missing or not an integer in range",
                           cfg_ints[i].key);
        *(int *)((char *)c + cfg_ints[i].off) = (int)v->i;
    }
    const JsonValue *k = json_get(obj, "keep");
    if (!k || k->type != JSON_ARR || k->len < 1 || k->len > NET_MAX_KEEP)
        return err_set(e, FV_EFORMAT, "model config: 'keep' must list 1 to %d blocks", NET_MAX_KEEP);
    c->n_keep = (int)k->len;
    for (int i = 0; i < c->n_keep; i++) {
        if (k->items[i].type != JSON_NUM || !k->items[i].is_int || k->items[i].i < 1 ||
            k->items[i].i > NET_MAX_DEPTH)
            return err_set(e, FV_EFORMAT, "model config: 'keep' item %d is not a block number", i);
        c->keep[i] = (int)k->items[i].i;
    }
    c->temp_init = (float)json_get_num(obj, "temperature", 0.07);
    return netcfg_check(c, e);
}

/* --------------------------------------------------------- parameter table */

typedef struct TableBuilder {
    ParamInfo *info;
    int n, cap;
    size_t floats;
    int failed;
} TableBuilder;

static void add_param(TableBuilder *t, const char *name, size_t field, int decay, int init,
                      int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    if (t->failed)
        return;
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 64;
        ParamInfo *p = realloc(t->info, (size_t)nc * sizeof *p);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->info = p;
        t->cap = nc;
    }
    ParamInfo *p = &t->info[t->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->shape[2] = d2;
    p->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1) * (size_t)(ndim > 2 ? d2 : 1);
    /* 16-float alignment keeps every tensor on a 64-byte boundary */
    p->off = t->floats;
    t->floats += (p->numel + 15) & ~(size_t)15;
    p->decay = decay;
    p->init = init;
    p->field = field;
}

#define F(member) offsetof(NetW, member)

static void add_block(TableBuilder *t, const char *prefix, int l, size_t base, int c, int hm)
{
    char nm[48];
#define BP(suffix, member, decay, init, ndim, a, b)                                          \
    snprintf(nm, sizeof nm, "%s.blocks.%d.%s", prefix, l, suffix);                           \
    add_param(t, nm, base + offsetof(BlockW, member), decay, init, ndim, a, b, 0)
    BP("ln1.weight", ln1_w, 0, NET_INIT_ONE, 1, c, 0);
    BP("ln1.bias", ln1_b, 0, NET_INIT_ZERO, 1, c, 0);
    BP("attn.qkv.weight", qkv_w, 1, NET_INIT_NORMAL, 2, 3 * c, c);
    BP("attn.qkv.bias", qkv_b, 0, NET_INIT_ZERO, 1, 3 * c, 0);
    BP("attn.proj.weight", proj_w, 1, NET_INIT_NORMAL, 2, c, c);
    BP("attn.proj.bias", proj_b, 0, NET_INIT_ZERO, 1, c, 0);
    BP("ln2.weight", ln2_w, 0, NET_INIT_ONE, 1, c, 0);
    BP("ln2.bias", ln2_b, 0, NET_INIT_ZERO, 1, c, 0);
    BP("mlp.fc1.weight", fc1_w, 1, NET_INIT_NORMAL, 2, hm, c);
    BP("mlp.fc1.bias", fc1_b, 0, NET_INIT_ZERO, 1, hm, 0);
    BP("mlp.fc2.weight", fc2_w, 1, NET_INIT_NORMAL, 2, c, hm);
    BP("mlp.fc2.bias", fc2_b, 0, NET_INIT_ZERO, 1, c, 0);
#undef BP
}

static int build_table(Net *n, FvErr *e)
{
    const NetCfg *c = &n->cfg;
    int C = c->width, T = netcfg_tokens(c), P = netcfg_patch(c), D = c->embed, A = c->n_anat;
    int Ct = c->t_width;
    TableBuilder t = {0};
    add_param(&t, "vis.patch.weight", F(patch_w), 1, NET_INIT_NORMAL, 2, C, P, 0);
    add_param(&t, "vis.patch.bias", F(patch_b), 0, NET_INIT_ZERO, 1, C, 0, 0);
    add_param(&t, "vis.pos", F(vpos), 0, NET_INIT_NORMAL, 2, T, C, 0);
    for (int l = 0; l < c->depth; l++)
        add_block(&t, "vis", l, F(vb) + (size_t)l * sizeof(BlockW), C, c->mlp);
    add_param(&t, "vis.ln_f.weight", F(vln_w), 0, NET_INIT_ONE, 1, C, 0, 0);
    add_param(&t, "vis.ln_f.bias", F(vln_b), 0, NET_INIT_ZERO, 1, C, 0, 0);
    if (c->hist) {
        add_param(&t, "vis.hist.weight", F(hist_w), 1, NET_INIT_NORMAL, 2, C, NET_HIST_DIM, 0);
        add_param(&t, "vis.hist.bias", F(hist_b), 0, NET_INIT_ZERO, 1, C, 0, 0);
    }
    if (c->loss == LOSS_GLOBAL) {
        add_param(&t, "vis.proj.weight", F(gproj_w), 1, NET_INIT_NORMAL, 2, D, C, 0);
        add_param(&t, "vis.proj.bias", F(gproj_b), 0, NET_INIT_ZERO, 1, D, 0, 0);
    } else {
        add_param(&t, "pool.query", F(query), 0, NET_INIT_ZERO, 2, A, C, 0);
        add_param(&t, "pool.q.weight", F(pq_w), 1, NET_INIT_NORMAL, 2, C, C, 0);
        add_param(&t, "pool.q.bias", F(pq_b), 0, NET_INIT_ZERO, 1, C, 0, 0);
        add_param(&t, "pool.k.weight", F(pk_w), 1, NET_INIT_NORMAL, 2, C, C, 0);
        add_param(&t, "pool.k.bias", F(pk_b), 0, NET_INIT_ZERO, 1, C, 0, 0);
        add_param(&t, "pool.v.weight", F(pv_w), 1, NET_INIT_NORMAL, 2, C, C, 0);
        add_param(&t, "pool.v.bias", F(pv_b), 0, NET_INIT_ZERO, 1, C, 0, 0);
        add_param(&t, "pool.out.weight", F(po_w), 1, NET_INIT_NORMAL, 2, C, C, 0);
        add_param(&t, "pool.out.bias", F(po_b), 0, NET_INIT_ZERO, 1, C, 0, 0);
        add_param(&t, "anat.proj.weight", F(aproj_w), 1, NET_INIT_NORMAL, 3, A, D, C);
        add_param(&t, "anat.proj.bias", F(aproj_b), 0, NET_INIT_ZERO, 2, A, D, 0);
    }
    add_param(&t, "txt.tok", F(tok), 0, NET_INIT_NORMAL, 2, c->vocab, Ct, 0);
    add_param(&t, "txt.pos", F(tpos), 0, NET_INIT_NORMAL, 2, c->t_max_len, Ct, 0);
    for (int l = 0; l < c->t_depth; l++)
        add_block(&t, "txt", l, F(tb) + (size_t)l * sizeof(BlockW), Ct, c->t_mlp);
    add_param(&t, "txt.ln_f.weight", F(tln_w), 0, NET_INIT_ONE, 1, Ct, 0, 0);
    add_param(&t, "txt.ln_f.bias", F(tln_b), 0, NET_INIT_ZERO, 1, Ct, 0, 0);
    add_param(&t, "txt.proj.weight", F(tproj_w), 1, NET_INIT_NORMAL, 2, D, Ct, 0);
    add_param(&t, "txt.proj.bias", F(tproj_b), 0, NET_INIT_ZERO, 1, D, 0, 0);
    add_param(&t, "temp", F(temp), 0, NET_INIT_TEMP, 1, 1, 0, 0);
    if (c->loss == LOSS_SUPERVISED) {
        add_param(&t, "sup.weight", F(sup_w), 1, NET_INIT_NORMAL, 2, c->n_tasks, D, 0);
        add_param(&t, "sup.bias", F(sup_b), 0, NET_INIT_ZERO, 1, c->n_tasks, 0, 0);
    }
    if (t.failed) {
        free(t.info);
        return err_set(e, FV_ENOMEM, "model: out of memory building the parameter table");
    }
    n->info = t.info;
    n->n_params = t.n;
    n->n_floats = t.floats;
    return 0;
}

#undef F

static void bind_views(NetW *w, float *base, const ParamInfo *info, int np)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < np; i++) {
        float **view = (float **)((char *)w + info[i].field);
        *view = base + info[i].off;
    }
}

const ParamInfo *net_param(const Net *n, const char *name)
{
    for (int i = 0; i < n->n_params; i++)
        if (strcmp(n->info[i].name, name) == 0)
            return &n->info[i];
    return NULL;
}

/* ------------------------------------------------------------- activations */

typedef struct BlockActs {
    float *ln1, *m1, *r1;      /* (N, C), (N), (N) */
    float *qkv;                /* (N, 3C) */
    float *probs;              /* attention probabilities */
    float *att;                /* (N, C) before the output projection */
    float *xmid;               /* (N, C) residual after attention */
    float *ln2, *m2, *r2;
    float *fc1, *gelu;         /* (N, Hm) */
} BlockActs;

/* One tower's gradient scratch, reused by every block. */
typedef struct BlockGrads {
    float *dres;               /* (N, C) gradient of the residual stream */
    float *dln;                /* (N, C) */
    float *dqkv;               /* (N, 3C) */
    float *datt;               /* (N, C) */
    float *dfc, *dgelu;        /* (N, Hm) */
} BlockGrads;

struct NetActs {
    /* vision, N = B T */
    float *patches;            /* (B T, P) */
    float *vx;                 /* (depth + 1, B T, C): embedding, then each block's output */
    BlockActs vb[NET_MAX_DEPTH];
    float *kept, *kmean, *krstd; /* (B, M, C), (B M), (B M): final norm of kept depths */
    /* fine modes */
    float *qp;                 /* (A, C) projected queries */
    float *pk, *pv;            /* (B M, C) */
    float *pprobs;             /* (R, Hp, M) */
    float *pooled, *pooled_o;  /* (R, C) */
    /* global mode */
    float *gmean;              /* (B, C) */
    /* both: the rows entering the projection, in group order: pooled_o
     * rows (fine) or study means (global) */
    float *pog;                /* (R, C) */
    float *hrow, *hout;        /* (R, NET_HIST_DIM), (R, C): density summaries of the rows in
                                * group order and their linear map (cfg.hist) */
    /* both: image features in group order */
    float *feat, *fn, *fnorm;  /* (R, D), (R, D), (R) */
    float *slog, *dslog;       /* (R, K) supervised logits in group order, their gradient */
    /* text, N = packed tokens */
    float *tx;                 /* (t_depth + 1, N, Ct) */
    BlockActs tb[NET_MAX_DEPTH];
    float *tcls_in, *tcls, *tcm, *tcr; /* (U, Ct), (U, Ct), (U), (U) */
    float *tfeat, *tfn, *tnorm;        /* (U, D), (U, D), (U) */
    /* loss */
    float *logits;             /* per group (n_g, n_g), groups one after another */
    size_t *loff;              /* (R + 1) offsets of each group's logits */
    float *tgt;                /* (B, B) */
    float *gtxt, *dimg, *dtxt; /* (B, D) */
    float *lscratch;
    /* gradients */
    float *dfn, *dfeat;        /* (R, D) */
    float *dpog, *dpooled_o, *dpooled; /* (R, C) */
    float *dqp;                /* (A, C) */
    float *dpk, *dpv, *dkept;  /* (B M, C) */
    float *dgmean;             /* (B, C) */
    BlockGrads vg;
    float *dtfn, *dtfeat;      /* (U, D) */
    float *dtcls, *dtcls_in;   /* (U, Ct) */
    BlockGrads tg;
    float *att_scratch;        /* (max(T, L))^2 */
    float *pool_scratch;
    /* ints */
    int *voff;                 /* (B + 1): study b is tokens [b T, (b + 1) T) */
    int *grp_of_row;           /* (R) scratch */
    int *gtid;                 /* (B) text of each row of a group */
    uint8_t *gabn;             /* (B) status of each row of a group */
    uint64_t *gdis;            /* (B, dis_words) disease sets of a group */
    float *mem;
    int *imem;
};

typedef struct Cursor {
    float *base;
    size_t n;
} Cursor;

static float *take(Cursor *c, size_t n)
{
    float *p = c->base ? c->base + c->n : NULL;
    c->n += (n + 15) & ~(size_t)15;
    return p;
}

static void layout_block(Cursor *c, BlockActs *a, size_t n, int ch, int hm, size_t probs)
{
    a->ln1 = take(c, n * ch);
    a->m1 = take(c, n);
    a->r1 = take(c, n);
    a->qkv = take(c, n * 3 * ch);
    a->probs = take(c, probs);
    a->att = take(c, n * ch);
    a->xmid = take(c, n * ch);
    a->ln2 = take(c, n * ch);
    a->m2 = take(c, n);
    a->r2 = take(c, n);
    a->fc1 = take(c, n * hm);
    a->gelu = take(c, n * hm);
}

static void layout_grads(Cursor *c, BlockGrads *g, size_t n, int ch, int hm)
{
    g->dres = take(c, n * ch);
    g->dln = take(c, n * ch);
    g->dqkv = take(c, n * 3 * ch);
    g->datt = take(c, n * ch);
    g->dfc = take(c, n * hm);
    g->dgelu = take(c, n * hm);
}

static int kept_depths(const NetCfg *c) { return c->loss == LOSS_GLOBAL ? 1 : c->n_keep; }

/* Lays the activations out from c->base (NULL: only counts). */
static void layout_acts(Cursor *cur, NetActs *a, const NetCfg *c, const NetCap *cap, int training)
{
    size_t B = (size_t)cap->studies, T = (size_t)netcfg_tokens(c), C = (size_t)c->width;
    size_t R = (size_t)cap->rows, U = (size_t)cap->texts, Nt = (size_t)cap->text_tokens;
    size_t D = (size_t)c->embed, Ct = (size_t)c->t_width, A = (size_t)c->n_anat;
    size_t M = (size_t)kept_depths(c) * T, Nv = B * T;
    size_t L = (size_t)c->t_max_len;
    a->patches = take(cur, Nv * (size_t)netcfg_patch(c));
    a->vx = take(cur, (size_t)(c->depth + 1) * Nv * C);
    for (int l = 0; l < c->depth; l++)
        layout_block(cur, &a->vb[l], Nv, (int)C, c->mlp, B * (size_t)c->heads * T * T);
    a->kept = take(cur, B * M * C);
    a->kmean = take(cur, B * M);
    a->krstd = take(cur, B * M);
    if (c->loss != LOSS_GLOBAL) {
        a->qp = take(cur, A * C);
        a->pk = take(cur, B * M * C);
        a->pv = take(cur, B * M * C);
        a->pprobs = take(cur, R * (size_t)c->pool_heads * M);
        a->pooled = take(cur, R * C);
        a->pooled_o = take(cur, R * C);
    } else {
        a->gmean = take(cur, B * C);
    }
    a->pog = take(cur, R * C);
    if (c->hist) {
        a->hrow = take(cur, R * NET_HIST_DIM);
        a->hout = take(cur, R * C);
    }
    a->feat = take(cur, R * D);
    a->fn = take(cur, R * D);
    a->fnorm = take(cur, R);
    if (c->loss == LOSS_SUPERVISED)
        a->slog = take(cur, R * (size_t)c->n_tasks);
    a->tx = take(cur, (size_t)(c->t_depth + 1) * Nt * Ct);
    /* sum over texts of len^2 <= L * sum of len */
    for (int l = 0; l < c->t_depth; l++)
        layout_block(cur, &a->tb[l], Nt, (int)Ct, c->t_mlp, (size_t)c->t_heads * L * Nt);
    a->tcls_in = take(cur, U * Ct);
    a->tcls = take(cur, U * Ct);
    a->tcm = take(cur, U);
    a->tcr = take(cur, U);
    a->tfeat = take(cur, U * D);
    a->tfn = take(cur, U * D);
    a->tnorm = take(cur, U);
    /* every group has at most B rows: sum of n_g^2 <= B R */
    a->logits = take(cur, B * R);
    a->tgt = take(cur, B * B);
    a->gtxt = take(cur, B * D);
    a->dimg = take(cur, B * D);
    a->dtxt = take(cur, B * D);
    a->lscratch = take(cur, contrast_scratch_size((int)B));
    size_t att = T > L ? T : L;
    a->att_scratch = take(cur, att * att);
    if (c->loss != LOSS_GLOBAL)
        a->pool_scratch = take(cur, attnpool_scratch_size(cap->rows_per_study, (int)M, (int)C));
    if (!training)
        return;
    a->dfn = take(cur, R * D);
    a->dfeat = take(cur, R * D);
    if (c->loss == LOSS_SUPERVISED)
        a->dslog = take(cur, R * (size_t)c->n_tasks);
    a->dpog = take(cur, R * C);
    if (c->loss != LOSS_GLOBAL) {
        a->dpooled_o = take(cur, R * C);
        a->dpooled = take(cur, R * C);
        a->dqp = take(cur, A * C);
        a->dpk = take(cur, B * M * C);
        a->dpv = take(cur, B * M * C);
    } else {
        a->dgmean = take(cur, B * C);
    }
    a->dkept = take(cur, B * M * C);
    layout_grads(cur, &a->vg, Nv, (int)C, c->mlp);
    a->dtfn = take(cur, U * D);
    a->dtfeat = take(cur, U * D);
    a->dtcls = take(cur, U * Ct);
    a->dtcls_in = take(cur, U * Ct);
    layout_grads(cur, &a->tg, Nt, (int)Ct, c->t_mlp);
}

/* ---------------------------------------------------------- alloc and init */

int net_alloc(Net *n, const NetCfg *cfg, const NetCap *cap, int training, FvErr *e)
{
    memset(n, 0, sizeof *n);
    n->cfg = *cfg;
    n->cap = *cap;
    if (netcfg_check(cfg, e))
        return -1;
    if (cap->studies < 1 || cap->rows < 1 || cap->texts < 1 || cap->text_tokens < 1 ||
        cap->rows_per_study < 1 || cap->studies > 1 << 16 || cap->rows > 1 << 24 ||
        cap->texts > 1 << 24 || cap->text_tokens > 1 << 26)
        return err_set(e, FV_EUSAGE, "model: batch capacity out of range (%d studies, %d rows, "
                       "%d texts, %d tokens)", cap->studies, cap->rows, cap->texts,
                       cap->text_tokens);
    if (build_table(n, e))
        return -1;
    size_t copies = training ? 4 : 1;
    n->mem = aligned_alloc(64, copies * n->n_floats * sizeof(float));
    n->act = calloc(1, sizeof *n->act);
    if (!n->mem || !n->act) {
        net_free(n);
        return err_set(e, FV_ENOMEM, "model: out of memory for %zu parameters", n->n_floats);
    }
    memset(n->mem, 0, copies * n->n_floats * sizeof(float));
    n->params = n->mem;
    bind_views(&n->w, n->params, n->info, n->n_params);
    if (training) {
        n->grads = n->mem + n->n_floats;
        n->adam_m = n->mem + 2 * n->n_floats;
        n->adam_v = n->mem + 3 * n->n_floats;
        bind_views(&n->g, n->grads, n->info, n->n_params);
    }
    Cursor cur = {NULL, 0};
    layout_acts(&cur, n->act, cfg, cap, training);
    size_t nact = cur.n;
    NetActs *a = n->act;
    a->mem = aligned_alloc(64, nact * sizeof(float));
    a->imem = calloc(2 * (size_t)cap->studies + 1 + (size_t)cap->rows + 1, sizeof(int));
    a->loff = calloc((size_t)cap->rows + 1, sizeof(size_t));
    a->gabn = calloc((size_t)cap->studies, 1);
    a->gdis = calloc((size_t)cap->studies * (size_t)(cap->dis_words ? cap->dis_words : 1),
                     sizeof(uint64_t));
    if (!a->mem || !a->imem || !a->loff || !a->gabn || !a->gdis) {
        net_free(n);
        return err_set(e, FV_ENOMEM, "model: out of memory for %zu activation floats", nact);
    }
    memset(a->mem, 0, nact * sizeof(float));
    cur = (Cursor){a->mem, 0};
    layout_acts(&cur, a, cfg, cap, training);
    a->voff = a->imem;
    a->grp_of_row = a->imem + cap->studies + 1;
    a->gtid = a->grp_of_row + cap->rows + 1;
    int T = netcfg_tokens(cfg);
    for (int b = 0; b <= cap->studies; b++)
        a->voff[b] = b * T;
    return 0;
}

void net_free(Net *n)
{
    if (n->act) {
        free(n->act->mem);
        free(n->act->imem);
        free(n->act->loff);
        free(n->act->gabn);
        free(n->act->gdis);
        free(n->act);
    }
    free(n->mem);
    free(n->info);
    memset(n, 0, sizeof *n);
}

void net_init(Net *n, Rng *r)
{
    for (int i = 0; i < n->n_params; i++) {
        const ParamInfo *p = &n->info[i];
        float *x = n->params + p->off;
        for (size_t k = 0; k < p->numel; k++) {
            switch (p->init) {
            case NET_INIT_NORMAL: x[k] = (float)(0.02 * rng_normal(r)); break;
            case NET_INIT_ONE: x[k] = 1.0f; break;
            case NET_INIT_TEMP: x[k] = n->cfg.temp_init; break;
            default: x[k] = 0.0f; break;
            }
        }
    }
}

/* ------------------------------------------------------------ batch checks */

int net_batch_check(const Net *n, const NetBatch *b, FvErr *e)
{
    const NetCap *c = &n->cap;
    if (b->nb < 1 || b->nb > c->studies)
        return err_set(e, FV_EINTERNAL, "batch: %d studies, capacity %d", b->nb, c->studies);
    if (b->nr < 0 || b->nr > c->rows)
        return err_set(e, FV_EINTERNAL, "batch: %d rows, capacity %d", b->nr, c->rows);
    if (b->nt < 0 || b->nt > c->texts)
        return err_set(e, FV_EINTERNAL, "batch: %d texts, capacity %d", b->nt, c->texts);
    if (b->nt && b->toff[b->nt] > c->text_tokens)
        return err_set(e, FV_EINTERNAL, "batch: %d text tokens, capacity %d", b->toff[b->nt],
                       c->text_tokens);
    for (int s = 0; s < b->nt; s++) {
        int len = b->toff[s + 1] - b->toff[s];
        if (len < 1 || len > n->cfg.t_max_len)
            return err_set(e, FV_EINTERNAL, "batch: text %d has %d tokens", s, len);
    }
    /* the density summaries: one per model anatomy (by index) and the whole crop's */
    if (n->cfg.hist && (!b->hist || b->hist_n < (n->cfg.loss == LOSS_GLOBAL ? 1 : n->cfg.n_anat + 1)))
        return err_set(e, FV_EINTERNAL, "batch: the model wants density summaries for %d "
                       "anatomies and the crop, the batch has %d", n->cfg.n_anat,
                       b->hist ? b->hist_n : 0);
    for (int i = 0; i < (b->nt ? b->toff[b->nt] : 0); i++)
        if (b->tids[i] < 0 || b->tids[i] >= n->cfg.vocab)
            return err_set(e, FV_EINTERNAL, "batch: token id %d out of range", b->tids[i]);
    int per = 0;
    for (int r = 0; r < b->nr; r++) {
        if (b->rb[r] < 0 || b->rb[r] >= b->nb || (r && b->rb[r] < b->rb[r - 1]))
            return err_set(e, FV_EINTERNAL, "batch: row %d has study %d out of order", r, b->rb[r]);
        per = r && b->rb[r] == b->rb[r - 1] ? per + 1 : 1;
        if (per > c->rows_per_study)
            return err_set(e, FV_EINTERNAL, "batch: more than %d rows for one study",
                           c->rows_per_study);
        if (n->cfg.loss != LOSS_GLOBAL && (b->ra[r] < 0 || b->ra[r] >= n->cfg.n_anat))
            return err_set(e, FV_EINTERNAL, "batch: row %d anatomy %d out of range", r, b->ra[r]);
        if (b->rtext && (b->rtext[r] < 0 || b->rtext[r] >= b->nt))
            return err_set(e, FV_EINTERNAL, "batch: row %d text %d out of range", r, b->rtext[r]);
    }
    for (int g = 0; g < b->ng; g++) {
        int ng = b->goff[g + 1] - b->goff[g];
        if (ng < 1 || ng > b->nb)
            return err_set(e, FV_EINTERNAL, "batch: group %d has %d rows", g, ng);
        for (int i = b->goff[g]; i < b->goff[g + 1]; i++)
            if (b->grow[i] < 0 || b->grow[i] >= b->nr)
                return err_set(e, FV_EINTERNAL, "batch: group %d lists row %d of %d", g,
                               b->grow[i], b->nr);
    }
    if (b->rdis && b->dis_words > n->cap.dis_words)
        return err_set(e, FV_EINTERNAL, "batch: %d disease words, capacity %d", b->dis_words,
                       n->cap.dis_words);
    if (n->cfg.loss == LOSS_SUPERVISED && b->nr && !b->rlab)
        return err_set(e, FV_EINTERNAL, "batch: the supervised model wants each row's labels");
    if (b->ng && b->goff[b->ng] > b->nr)
        return err_set(e, FV_EINTERNAL, "batch: groups list %d rows of %d", b->goff[b->ng], b->nr);
    return 0;
}

/* ----------------------------------------------------------------- towers */

static void block_forward(const BlockW *w, BlockActs *a, const float *xin, float *xout,
                          const int *off, int nseq, int n, int c, int heads, int hm)
{
    layernorm_forward(a->ln1, a->m1, a->r1, xin, w->ln1_w, w->ln1_b, n, c);
    linear_forward(a->qkv, a->ln1, w->qkv_w, w->qkv_b, n, c, 3 * c);
    attention_forward(a->att, a->probs, a->qkv, off, nseq, c, heads);
    linear_forward(a->xmid, a->att, w->proj_w, w->proj_b, n, c, c);
    vec_acc(a->xmid, xin, (size_t)n * c);
    layernorm_forward(a->ln2, a->m2, a->r2, a->xmid, w->ln2_w, w->ln2_b, n, c);
    linear_forward(a->fc1, a->ln2, w->fc1_w, w->fc1_b, n, c, hm);
    gelu_forward(a->gelu, a->fc1, (size_t)n * hm);
    linear_forward(xout, a->gelu, w->fc2_w, w->fc2_b, n, hm, c);
    vec_acc(xout, a->xmid, (size_t)n * c);
}

/* g->dres holds d xout on entry and d xin on return. */
static void block_backward(const BlockW *w, BlockW *dw, const BlockActs *a, BlockGrads *g,
                           const float *xin, const int *off, int nseq, int n, int c, int heads,
                           int hm, float *scratch)
{
    linear_backward(g->dgelu, dw->fc2_w, dw->fc2_b, g->dres, a->gelu, w->fc2_w, n, hm, c, 0);
    gelu_backward(g->dfc, g->dgelu, a->fc1, a->gelu, (size_t)n * hm);
    linear_backward(g->dln, dw->fc1_w, dw->fc1_b, g->dfc, a->ln2, w->fc1_w, n, c, hm, 0);
    layernorm_backward(g->dres, dw->ln2_w, dw->ln2_b, g->dln, a->xmid, a->m2, a->r2, w->ln2_w, n,
                       c, 1);
    linear_backward(g->datt, dw->proj_w, dw->proj_b, g->dres, a->att, w->proj_w, n, c, c, 0);
    attention_backward(g->dqkv, g->datt, a->probs, a->qkv, off, nseq, c, heads, scratch);
    linear_backward(g->dln, dw->qkv_w, dw->qkv_b, g->dqkv, a->ln1, w->qkv_w, n, c, 3 * c, 0);
    layernorm_backward(g->dres, dw->ln1_w, dw->ln1_b, g->dln, xin, a->m1, a->r1, w->ln1_w, n, c,
                       1);
}

static void vision_forward(Net *n, const NetBatch *b)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    int B = b->nb, T = netcfg_tokens(c), C = c->width, Nv = B * T;
    patch_embed_forward(a->vx, a->patches, b->img, n->w.patch_w, n->w.patch_b, B, c->in_c,
                        c->in_z, c->in_y, c->in_x, c->pz, c->py, c->px, C);
    for (int s = 0; s < B; s++)
        vec_acc(a->vx + (size_t)s * T * C, n->w.vpos, (size_t)T * C);
    for (int l = 0; l < c->depth; l++)
        block_forward(&n->w.vb[l], &a->vb[l], a->vx + (size_t)l * Nv * C,
                      a->vx + (size_t)(l + 1) * Nv * C, a->voff, B, Nv, C, c->heads, c->mlp);
    /* the kept depths through the shared final norm, laid out (B, M, C)
     * with M = n_keep T: each study's pooled keys are contiguous */
    int nk = kept_depths(c), M = nk * T;
    for (int k = 0; k < nk; k++) {
        int blk = c->loss == LOSS_GLOBAL ? c->depth : c->keep[k];
        const float *x = a->vx + (size_t)blk * Nv * C;
        for (int s = 0; s < B; s++) {
            size_t row = (size_t)s * M + (size_t)k * T;
            layernorm_forward(a->kept + row * C, a->kmean + row, a->krstd + row,
                              x + (size_t)s * T * C, n->w.vln_w, n->w.vln_b, T, C);
        }
    }
}

/* a->dkept holds d kept; runs the vision tower backward to the patch embedding. */
static void vision_backward(Net *n, const NetBatch *b)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    BlockGrads *g = &a->vg;
    int B = b->nb, T = netcfg_tokens(c), C = c->width, Nv = B * T;
    int nk = kept_depths(c), M = nk * T;
    memset(g->dres, 0, (size_t)Nv * C * sizeof(float));
    for (int l = c->depth; l >= 1; l--) {
        /* the final norm of each kept depth feeds d x[l] */
        for (int k = 0; k < nk; k++) {
            int blk = c->loss == LOSS_GLOBAL ? c->depth : c->keep[k];
            if (blk != l)
                continue;
            const float *x = a->vx + (size_t)l * Nv * C;
            for (int s = 0; s < B; s++) {
                size_t row = (size_t)s * M + (size_t)k * T;
                layernorm_backward(g->dres + (size_t)s * T * C, n->g.vln_w, n->g.vln_b,
                                   a->dkept + row * C, x + (size_t)s * T * C, a->kmean + row,
                                   a->krstd + row, n->w.vln_w, T, C, 1);
            }
        }
        block_backward(&n->w.vb[l - 1], &n->g.vb[l - 1], &a->vb[l - 1], g,
                       a->vx + (size_t)(l - 1) * Nv * C, a->voff, B, Nv, C, c->heads, c->mlp,
                       a->att_scratch);
    }
    for (int s = 0; s < B; s++)
        vec_acc(n->g.vpos, g->dres + (size_t)s * T * C, (size_t)T * C);
    patch_embed_backward(n->g.patch_w, n->g.patch_b, g->dres, a->patches, Nv,
                         netcfg_patch(c), C);
}

static void text_forward(Net *n, const NetBatch *b)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    int U = b->nt, Ct = c->t_width, N = U ? b->toff[U] : 0;
    if (!U)
        return;
    for (int s = 0; s < U; s++)
        for (int i = b->toff[s]; i < b->toff[s + 1]; i++)
            vec_add(a->tx + (size_t)i * Ct, n->w.tok + (size_t)b->tids[i] * Ct,
                    n->w.tpos + (size_t)(i - b->toff[s]) * Ct, (size_t)Ct);
    for (int l = 0; l < c->t_depth; l++)
        block_forward(&n->w.tb[l], &a->tb[l], a->tx + (size_t)l * N * Ct,
                      a->tx + (size_t)(l + 1) * N * Ct, b->toff, U, N, Ct, c->t_heads, c->t_mlp);
    const float *xl = a->tx + (size_t)c->t_depth * N * Ct;
    for (int s = 0; s < U; s++) {
        float *d = a->tcls_in + (size_t)s * Ct;
        if (!c->t_mean) {
            memcpy(d, xl + (size_t)b->toff[s] * Ct, (size_t)Ct * sizeof(float));
            continue;
        }
        int len = b->toff[s + 1] - b->toff[s];
        memset(d, 0, (size_t)Ct * sizeof(float));
        for (int i = b->toff[s]; i < b->toff[s + 1]; i++)
            vec_acc(d, xl + (size_t)i * Ct, (size_t)Ct);
        for (int k = 0; k < Ct; k++)
            d[k] /= (float)len;
    }
    layernorm_forward(a->tcls, a->tcm, a->tcr, a->tcls_in, n->w.tln_w, n->w.tln_b, U, Ct);
    linear_forward(a->tfeat, a->tcls, n->w.tproj_w, n->w.tproj_b, U, Ct, c->embed);
    l2norm_forward(a->tfn, a->tnorm, a->tfeat, U, c->embed);
}

/* a->dtfn holds d text features. */
static void text_backward(Net *n, const NetBatch *b)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    BlockGrads *g = &a->tg;
    int U = b->nt, Ct = c->t_width, N = U ? b->toff[U] : 0;
    if (!U)
        return;
    l2norm_backward(a->dtfeat, a->dtfn, a->tfn, a->tnorm, U, c->embed);
    linear_backward(a->dtcls, n->g.tproj_w, n->g.tproj_b, a->dtfeat, a->tcls, n->w.tproj_w, U, Ct,
                    c->embed, 0);
    layernorm_backward(a->dtcls_in, n->g.tln_w, n->g.tln_b, a->dtcls, a->tcls_in, a->tcm, a->tcr,
                       n->w.tln_w, U, Ct, 0);
    memset(g->dres, 0, (size_t)N * Ct * sizeof(float));
    for (int s = 0; s < U; s++) {
        const float *d = a->dtcls_in + (size_t)s * Ct;
        if (!c->t_mean) {
            memcpy(g->dres + (size_t)b->toff[s] * Ct, d, (size_t)Ct * sizeof(float));
            continue;
        }
        float inv = 1.0f / (float)(b->toff[s + 1] - b->toff[s]);
        for (int i = b->toff[s]; i < b->toff[s + 1]; i++)
            for (int k = 0; k < Ct; k++)
                g->dres[(size_t)i * Ct + k] = d[k] * inv;
    }
    for (int l = c->t_depth; l >= 1; l--)
        block_backward(&n->w.tb[l - 1], &n->g.tb[l - 1], &a->tb[l - 1], g,
                       a->tx + (size_t)(l - 1) * N * Ct, b->toff, U, N, Ct, c->t_heads, c->t_mlp,
                       a->att_scratch);
    for (int s = 0; s < U; s++)
        for (int i = b->toff[s]; i < b->toff[s + 1]; i++) {
            vec_acc(n->g.tok + (size_t)b->tids[i] * Ct, g->dres + (size_t)i * Ct, (size_t)Ct);
            vec_acc(n->g.tpos + (size_t)(i - b->toff[s]) * Ct, g->dres + (size_t)i * Ct,
                    (size_t)Ct);
        }
}

/* ------------------------------------------------------------ image heads */

/* cfg.hist: adds W h + b to a->pog, h the density summary of each row
 * (global: the study's whole crop). */
static void hist_forward(Net *n, const NetBatch *b, const int *order, int nr)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    if (!c->hist)
        return;
    int C = c->width;
    for (int i = 0; i < nr; i++) {
        int r = order[i];
        int s = b->rb[r];
        int k = c->loss == LOSS_GLOBAL ? b->hist_n - 1 : b->ra[r];
        memcpy(a->hrow + (size_t)i * NET_HIST_DIM,
               b->hist + ((size_t)s * b->hist_n + k) * NET_HIST_DIM, NET_HIST_DIM * sizeof(float));
    }
    linear_forward(a->hout, a->hrow, n->w.hist_w, n->w.hist_b, nr, NET_HIST_DIM, C);
    vec_acc(a->pog, a->hout, (size_t)nr * C);
}

/* Image features of the rows listed by order[0..nr) (pooled row indices),
 * into a->feat / a->fn in that order. */
static void heads_forward(Net *n, const NetBatch *b, const int *order, int nr)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    int B = b->nb, T = netcfg_tokens(c), C = c->width, D = c->embed;
    if (c->loss == LOSS_GLOBAL) {
        for (int s = 0; s < B; s++) {
            float *m = a->gmean + (size_t)s * C;
            memset(m, 0, (size_t)C * sizeof *m);
            for (int t = 0; t < T; t++)
                vec_acc(m, a->kept + ((size_t)s * T + t) * C, (size_t)C);
            for (int k = 0; k < C; k++)
                m[k] /= (float)T;
        }
        /* rows are studies; order picks them */
        for (int i = 0; i < nr; i++)
            memcpy(a->pog + (size_t)i * C, a->gmean + (size_t)b->rb[order[i]] * C,
                   (size_t)C * sizeof(float));
        hist_forward(n, b, order, nr);
        linear_forward(a->feat, a->pog, n->w.gproj_w, n->w.gproj_b, nr, C, D);
        l2norm_forward(a->fn, a->fnorm, a->feat, nr, D);
        return;
    }
    int M = c->n_keep * T;
    linear_forward(a->qp, n->w.query, n->w.pq_w, n->w.pq_b, c->n_anat, C, C);
    linear_forward(a->pk, a->kept, n->w.pk_w, n->w.pk_b, B * M, C, C);
    linear_forward(a->pv, a->kept, n->w.pv_w, n->w.pv_b, B * M, C, C);
    attnpool_forward(a->pooled, a->pprobs, a->qp, a->pk, a->pv, b->tokbias, b->rb, b->ra, b->nr,
                     c->n_anat, M, T, C, c->pool_heads, a->pool_scratch);
    linear_forward(a->pooled_o, a->pooled, n->w.po_w, n->w.po_b, b->nr, C, C);
    for (int i = 0; i < nr; i++)
        memcpy(a->pog + (size_t)i * C, a->pooled_o + (size_t)order[i] * C,
               (size_t)C * sizeof(float));
    hist_forward(n, b, order, nr);
    /* per-anatomy projection over runs of rows of one anatomy */
    for (int i0 = 0; i0 < nr;) {
        int an = b->ra[order[i0]], i1 = i0;
        while (i1 < nr && b->ra[order[i1]] == an)
            i1++;
        linear_forward(a->feat + (size_t)i0 * D, a->pog + (size_t)i0 * C,
                       n->w.aproj_w + (size_t)an * D * C, n->w.aproj_b + (size_t)an * D, i1 - i0,
                       C, D);
        i0 = i1;
    }
    l2norm_forward(a->fn, a->fnorm, a->feat, nr, D);
}

/* a->dfn holds d fn (group order); runs the heads backward into a->dkept. */
static void heads_backward(Net *n, const NetBatch *b, const int *order, int nr)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    int B = b->nb, T = netcfg_tokens(c), C = c->width, D = c->embed;
    l2norm_backward(a->dfeat, a->dfn, a->fn, a->fnorm, nr, D);
    if (c->loss == LOSS_GLOBAL) {
        linear_backward(a->dpog, n->g.gproj_w, n->g.gproj_b, a->dfeat, a->pog, n->w.gproj_w, nr,
                        C, D, 0);
        if (c->hist)
            linear_backward(NULL, n->g.hist_w, n->g.hist_b, a->dpog, a->hrow, n->w.hist_w, nr,
                            NET_HIST_DIM, C, 0);
        memset(a->dgmean, 0, (size_t)B * C * sizeof(float));
        for (int i = 0; i < nr; i++)
            vec_acc(a->dgmean + (size_t)b->rb[order[i]] * C, a->dpog + (size_t)i * C, (size_t)C);
        for (int s = 0; s < B; s++)
            for (int t = 0; t < T; t++) {
                float *d = a->dkept + ((size_t)s * T + t) * C;
                for (int k = 0; k < C; k++)
                    d[k] = a->dgmean[(size_t)s * C + k] / (float)T;
            }
        return;
    }
    int M = c->n_keep * T;
    for (int i0 = 0; i0 < nr;) {
        int an = b->ra[order[i0]], i1 = i0;
        while (i1 < nr && b->ra[order[i1]] == an)
            i1++;
        linear_backward(a->dpog + (size_t)i0 * C, n->g.aproj_w + (size_t)an * D * C,
                        n->g.aproj_b + (size_t)an * D, a->dfeat + (size_t)i0 * D,
                        a->pog + (size_t)i0 * C, n->w.aproj_w + (size_t)an * D * C, i1 - i0, C, D,
                        0);
        i0 = i1;
    }
    if (c->hist)
        linear_backward(NULL, n->g.hist_w, n->g.hist_b, a->dpog, a->hrow, n->w.hist_w, nr,
                        NET_HIST_DIM, C, 0);
    /* rows outside every group get no gradient */
    memset(a->dpooled_o, 0, (size_t)b->nr * C * sizeof(float));
    for (int i = 0; i < nr; i++)
        vec_acc(a->dpooled_o + (size_t)order[i] * C, a->dpog + (size_t)i * C, (size_t)C);
    linear_backward(a->dpooled, n->g.po_w, n->g.po_b, a->dpooled_o, a->pooled, n->w.po_w, b->nr, C,
                    C, 0);
    memset(a->dqp, 0, (size_t)c->n_anat * C * sizeof(float));
    memset(a->dpk, 0, (size_t)B * M * C * sizeof(float));
    memset(a->dpv, 0, (size_t)B * M * C * sizeof(float));
    attnpool_backward(a->dqp, a->dpk, a->dpv, a->dpooled, a->pprobs, a->qp, a->pk, a->pv, b->rb,
                      b->ra, b->nr, M, C, c->pool_heads, a->pool_scratch);
    linear_backward(n->g.query, n->g.pq_w, n->g.pq_b, a->dqp, n->w.query, n->w.pq_w, c->n_anat, C,
                    C, 1);
    linear_backward(a->dkept, n->g.pk_w, n->g.pk_b, a->dpk, a->kept, n->w.pk_w, B * M, C, C, 0);
    linear_backward(a->dkept, n->g.pv_w, n->g.pv_b, a->dpv, a->kept, n->w.pv_w, B * M, C, C, 1);
}

/* ------------------------------------------------------------------- step */

/* The supervised step after the heads (a->fn holds the rows' features in
 * group order): logits, the mean cross-entropy over the labelled entries,
 * and backward through the head, the pooling and the vision tower. */
static float sup_step(Net *n, const NetBatch *b, int nr, int backward)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    int D = c->embed, K = c->n_tasks;
    for (int g = 0; g <= b->ng; g++)
        a->loff[g] = 0;
    /* z = (W f) / tau + b: the contrastive losses' scale on cosine-like
     * logits; unit features and 0.02-scale weights alone start every logit
     * near 0, and the head would need thousands of steps to grow */
    float tau = n->w.temp[0];
    linear_forward(a->slog, a->fn, n->w.sup_w, NULL, nr, D, K);
    for (int i = 0; i < nr; i++)
        for (int k = 0; k < K; k++)
            a->slog[(size_t)i * K + k] = a->slog[(size_t)i * K + k] / tau + n->w.sup_b[k];
    size_t nl = 0;
    for (int i = 0; i < nr; i++) {
        const int8_t *y = b->rlab + (size_t)b->grow[i] * K;
        for (int k = 0; k < K; k++)
            nl += y[k] >= 0;
    }
    if (!nl)
        return 0.0f;
    /* sup_bce averages one row's entries; weigh each row by its labels */
    double loss = 0.0;
    for (int i = 0; i < nr; i++) {
        const int8_t *y = b->rlab + (size_t)b->grow[i] * K;
        size_t ni = 0;
        for (int k = 0; k < K; k++)
            ni += y[k] >= 0;
        float *d = backward ? a->dslog + (size_t)i * K : NULL;
        loss += (double)sup_bce(d, a->slog + (size_t)i * K, y, (size_t)K) * (double)ni;
        if (d)
            for (int k = 0; k < K; k++)
                d[k] *= (float)((double)ni / (double)nl);
    }
    if (!backward)
        return (float)(loss / (double)nl);
    /* db = dz; d(W f) = dz / tau; dtau = -sum dz (W f) / tau^2, with W f = (z - b) tau */
    double dtau = 0.0;
    for (int i = 0; i < nr; i++)
        for (int k = 0; k < K; k++) {
            size_t q = (size_t)i * K + k;
            double u = ((double)a->slog[q] - n->w.sup_b[k]) * tau;
            n->g.sup_b[k] += a->dslog[q];
            dtau -= (double)a->dslog[q] * u / ((double)tau * tau);
            a->dslog[q] /= tau;
        }
    n->g.temp[0] += (float)dtau;
    linear_backward(a->dfn, n->g.sup_w, NULL, a->dslog, a->fn, n->w.sup_w, nr, D, K, 0);
    heads_backward(n, b, b->grow, nr);
    vision_backward(n, b);
    return (float)(loss / (double)nl);
}

float net_step(Net *n, const NetBatch *b, int backward)
{
    const NetCfg *c = &n->cfg;
    NetActs *a = n->act;
    int D = c->embed;
    int nr = b->ng ? b->goff[b->ng] : 0;
    if (!nr) {
        /* nothing to contrast: no loss term, no gradient */
        a->loff[0] = 0;
        return 0.0f;
    }
    vision_forward(n, b);
    heads_forward(n, b, b->grow, nr);
    if (c->loss == LOSS_SUPERVISED)
        return sup_step(n, b, nr, backward);
    text_forward(n, b);
    float tau = n->w.temp[0];
    double loss = 0.0;
    float dtau = 0.0f;
    if (backward)
        memset(a->dtfn, 0, (size_t)b->nt * D * sizeof(float));
    size_t lo = 0;
    for (int g = 0; g < b->ng; g++) {
        int g0 = b->goff[g], ng = b->goff[g + 1] - g0;
        /* targets from the rows' status, text and diseases */
        for (int i = 0; i < ng; i++) {
            int r = b->grow[g0 + i];
            a->gabn[i] = b->rabn ? b->rabn[r] : 0;
            a->gtid[i] = b->rtext[r];
            memcpy(a->gtxt + (size_t)i * D, a->tfn + (size_t)b->rtext[r] * D,
                   (size_t)D * sizeof(float));
            if (b->rdis)
                memcpy(a->gdis + (size_t)i * b->dis_words, b->rdis + (size_t)r * b->dis_words,
                       (size_t)b->dis_words * sizeof(uint64_t));
        }
        loss_targets(a->tgt, c->loss, ng, a->gabn, a->gtid, a->gdis, b->rdis ? b->dis_words : 0);
        float dt;
        loss += contrast_loss(a->dimg, a->dtxt, &dt, a->fn + (size_t)g0 * D, a->gtxt, a->tgt, ng,
                              D, tau, a->lscratch);
        memcpy(a->logits + lo, a->lscratch, (size_t)ng * ng * sizeof(float));
        a->loff[g] = lo;
        lo += (size_t)ng * ng;
        if (!backward)
            continue;
        dtau += dt;
        memcpy(a->dfn + (size_t)g0 * D, a->dimg, (size_t)ng * D * sizeof(float));
        for (int i = 0; i < ng; i++)
            vec_acc(a->dtfn + (size_t)a->gtid[i] * D, a->dtxt + (size_t)i * D, (size_t)D);
    }
    a->loff[b->ng] = lo;
    if (!backward)
        return (float)loss;
    n->g.temp[0] += dtau;
    text_backward(n, b);
    heads_backward(n, b, b->grow, nr);
    vision_backward(n, b);
    return (float)loss;
}

/* ------------------------------------------------ data-parallel pieces */

void net_forward_rows(Net *n, const NetBatch *b, const int *order, int nr)
{
    vision_forward(n, b);
    heads_forward(n, b, order, nr);
    text_forward(n, b);
}

float *net_feature_grads(Net *n) { return n->act->dfn; }
float *net_text_grads(Net *n) { return n->act->dtfn; }

void net_backward_rows(Net *n, const NetBatch *b, const int *order, int nr, NetPartDone done,
                       void *ctx)
{
    text_backward(n, b);
    if (done)
        done(ctx, NET_PART_TEXT);
    heads_backward(n, b, order, nr);
    if (done)
        done(ctx, NET_PART_HEADS);
    vision_backward(n, b);
    if (done)
        done(ctx, NET_PART_VISION);
}

void net_part_range(const Net *n, int part, size_t *lo, size_t *hi)
{
    /* build_table lays the parameters out as the vision tower (up to its
     * final norm), the image heads (density summary, pooling, projections),
     * the text tower, the temperature */
    size_t heads = 0, text = n->n_floats;
    for (int i = 0; i < n->n_params; i++) {
        const ParamInfo *p = &n->info[i];
        if (!strcmp(p->name, "vis.ln_f.bias"))
            heads = p->off + p->numel;
        if (!strncmp(p->name, "txt.", 4) && p->off < text)
            text = p->off;
    }
    *lo = part == NET_PART_VISION ? 0 : part == NET_PART_HEADS ? heads : text;
    *hi = part == NET_PART_VISION ? heads : part == NET_PART_HEADS ? text : n->n_floats;
}

const float *net_image_features(const Net *n) { return n->act->fn; }
const float *net_text_features(const Net *n) { return n->act->tfn; }
const float *net_group_logits(const Net *n, int g) { return n->act->logits + n->act->loff[g]; }

void net_encode(Net *n, const NetBatch *b, float *out, float *tout)
{
    const NetCfg *c = &n->cfg;
    if (out && b->nr) {
        /* rows in their own order */
        int *order = n->act->grp_of_row;
        for (int r = 0; r < b->nr; r++)
            order[r] = r;
        vision_forward(n, b);
        heads_forward(n, b, order, b->nr);
        memcpy(out, n->act->fn, (size_t)b->nr * c->embed * sizeof(float));
    }
    if (tout && b->nt) {
        text_forward(n, b);
        memcpy(tout, n->act->tfn, (size_t)b->nt * c->embed * sizeof(float));
    }
}
