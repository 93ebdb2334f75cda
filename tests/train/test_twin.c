/* The whole tiny network against its PyTorch twin (tests/train/twin.py).
 *
 * `test_twin --dump DIR` writes the inputs: weights (the seeded
 * initialisation, then perturbed so no bias, gain or query sits at a value
 * that could hide a bug) and one batch that exercises every rule of the
 * losses; twin.py computes the loss, the logits, the features and every
 * parameter's gradient from them in float64 and writes the expected
 * outputs. Both are committed under tests/train/fixtures, so this test
 * needs no torch: it runs the float32 C network on the inputs and compares.
 * Regenerate with: tests/train/twin.py fixtures build/tests/train/test_twin
 * The python suite (test_twin_live.sh) redoes it live in a temporary folder
 * and runs this test against that (FVLM_TWIN_DIR). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fvlm_config.h"
#include "json.h"
#include "loss.h"
#include "net.h"
#include "rng.h"
#include "safetensors.h"
#include "test.h"

#define TOL 1e-4

static NetCfg twin_cfg(LossMode mode)
{
    NetCfg c = {
        .loss = mode, .in_c = 2, .in_z = 8, .in_y = 16, .in_x = 16, .pz = 4, .py = 8, .px = 8,
        .width = 16, .depth = 2, .heads = 2, .mlp = 32, .keep = {1, 2}, .n_keep = 2,
        .pool_heads = 2, .embed = 8, .t_width = 16, .t_depth = 2, .t_heads = 2, .t_mlp = 32,
        .t_max_len = 12, .vocab = 30, .n_anat = 3, .temp_init = 0.07f,
        /* the global model pools its texts by [CLS], the fine ones by the mean */
        .t_mean = mode != LOSS_GLOBAL,
    };
    return c;
}

/* ------------------------------------------------------------------ batch */

enum { TB = 4, TA = 3, TT = 8, TR = 9, TU = 8, TW = 2 };

/* rows grouped by study: (study, anatomy) */
static const int f_rb[TR] = {0, 0, 1, 1, 2, 2, 2, 3, 3};
static const int f_ra[TR] = {0, 1, 0, 2, 0, 1, 2, 0, 2};
/* texts: rows 0 and 2 are normal with different texts; row 8 repeats row
 * 3's text */
static const int f_rtext[TR] = {0, 3, 7, 5, 1, 4, 6, 2, 5};
static const uint8_t f_rabn[TR] = {0, 0, 0, 1, 1, 1, 1, 1, 1};
static const uint64_t f_rdis[TR * TW] = {
    0, 0,  0, 0,  0, 0,  0x6, 0,  0x1, 0,  0, 0,  0x4, 0,  0x1, 1ull << 1,  0x6, 0,
};
/* groups: anatomy 0, 1, 2 */
static const int f_goff[] = {0, 4, 6, 9};
static const int f_grow[] = {0, 2, 4, 7, 1, 5, 3, 6, 8};
static const int text_len[TU] = {5, 12, 3, 4, 9, 7, 6, 2};

static const int g_rb[TB] = {0, 1, 2, 3};
static const int g_rtext[TB] = {0, 1, 2, 3};
static const int g_goff[] = {0, 4};
static const int g_grow[] = {0, 1, 2, 3};

typedef struct TwinData {
    float img[TB * 2 * 8 * 16 * 16]; /* two input channels */
    float tokbias[TB * TA * TT];
    int toff[TU + 1];
    int tids[TU * 12];
} TwinData;

static void make_data(TwinData *d, Rng *r)
{
    for (size_t i = 0; i < sizeof d->img / sizeof *d->img; i++)
        d->img[i] = rng_uniformf(r);
    /* log-coverage biases: about 40 % of tokens hold an anatomy, with shares
     * in (0.05, 1] */
    for (int i = 0; i < TB * TA * TT; i++)
        d->tokbias[i] = rng_uniform(r) < 0.4 ? logf(0.05f + 0.95f * rng_uniformf(r)) : -INFINITY;
    /* every row's anatomy holds at least one token */
    for (int k = 0; k < TR; k++)
        d->tokbias[(f_rb[k] * TA + f_ra[k]) * TT + (k % TT)] = -0.25f;
    d->toff[0] = 0;
    for (int s = 0; s < TU; s++) {
        int *t = d->tids + d->toff[s];
        t[0] = 2;
        for (int i = 1; i < text_len[s] - 1; i++)
            t[i] = 4 + (int)rng_below(r, 26);
        t[text_len[s] - 1] = 3;
        d->toff[s + 1] = d->toff[s] + text_len[s];
    }
}

static NetBatch make_batch(const TwinData *d, LossMode mode)
{
    NetBatch b = {.nb = TB, .img = d->img, .tokbias = d->tokbias, .toff = d->toff, .tids = d->tids};
    if (mode == LOSS_GLOBAL) {
        b.nr = TB;
        b.rb = g_rb;
        b.rtext = g_rtext;
        b.ng = 1;
        b.goff = g_goff;
        b.grow = g_grow;
        b.nt = 4;
    } else {
        b.nr = TR;
        b.rb = f_rb;
        b.ra = f_ra;
        b.rtext = f_rtext;
        b.rabn = f_rabn;
        b.rdis = f_rdis;
        b.dis_words = TW;
        b.ng = 3;
        b.goff = f_goff;
        b.grow = f_grow;
        b.nt = TU;
    }
    return b;
}

static NetCap twin_cap(void)
{
    return (NetCap){.studies = TB, .rows = TR, .rows_per_study = TA, .texts = TU,
                    .text_tokens = TU * 12, .dis_words = TW};
}

/* ------------------------------------------------------------------- dump */

static int add_i32(StWriter *w, const char *name, const int *p, int64_t n, FvErr *e)
{
    return st_writer_add(w, name, ST_I32, 1, &n, p, e);
}

static int dump_one(const char *dir, LossMode mode, FvErr *e)
{
    NetCfg cfg = twin_cfg(mode);
    NetCap cap = twin_cap();
    Net n;
    if (net_alloc(&n, &cfg, &cap, 0, e))
        return -1;
    Rng r;
    rng_seed(&r, 77, 0);
    net_init(&n, &r);
    /* move every parameter off its initial value */
    for (size_t i = 0; i < n.n_floats; i++)
        n.params[i] += (float)(0.1 * rng_normal(&r));
    n.w.temp[0] = 0.1f;
    static TwinData d;
    make_data(&d, &r);
    NetBatch b = make_batch(&d, mode);
    StWriter w;
    st_writer_init(&w);
    int rc = 0;
    for (int i = 0; i < n.n_params && !rc; i++)
        rc = st_writer_add(&w, n.info[i].name, ST_F32, n.info[i].ndim, n.info[i].shape,
                           n.params + n.info[i].off, e);
    int64_t ishape[5] = {TB, cfg.in_c, cfg.in_z, cfg.in_y, cfg.in_x}, mshape[3] = {TB, TA, TT};
    int64_t nr = b.nr, dshape[2] = {TR, TW};
    rc = rc || st_writer_add(&w, "batch.img", ST_F32, 5, ishape, d.img, e);
    rc = rc || st_writer_add(&w, "batch.tokbias", ST_F32, 3, mshape, d.tokbias, e);
    rc = rc || add_i32(&w, "batch.rb", b.rb, b.nr, e);
    rc = rc || add_i32(&w, "batch.rtext", b.rtext, b.nr, e);
    rc = rc || add_i32(&w, "batch.goff", b.goff, b.ng + 1, e);
    rc = rc || add_i32(&w, "batch.grow", b.grow, b.goff[b.ng], e);
    rc = rc || add_i32(&w, "batch.toff", b.toff, b.nt + 1, e);
    rc = rc || add_i32(&w, "batch.tids", b.tids, b.toff[b.nt], e);
    if (mode != LOSS_GLOBAL) {
        rc = rc || add_i32(&w, "batch.ra", b.ra, b.nr, e);
        rc = rc || st_writer_add(&w, "batch.rabn", ST_U8, 1, &nr, b.rabn, e);
        rc = rc || st_writer_add(&w, "batch.rdis", ST_U64, 2, dshape, b.rdis, e);
    }
    Buf js = {0};
    JsonW jw;
    jw_init(&jw, &js, 0);
    netcfg_to_json(&cfg, &jw);
    rc = rc || st_writer_meta(&w, "fvlm.net", js.data, e);
    char path[4096];
    snprintf(path, sizeof path, "%s/twin_%s_in.safetensors", dir,
             mode == LOSS_GLOBAL ? "global" : "fine");
    rc = rc || st_write(&w, path, e);
    buf_free(&js);
    st_writer_free(&w);
    net_free(&n);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- compare */

static const float *tensor_f32(const StFile *f, const char *name, int64_t numel)
{
    const StTensor *t = st_get(f, name);
    if (!t || t->dtype != ST_F32 || t->nbytes != (size_t)numel * 4) {
        CHECK(0, "%s: tensor %s missing or of the wrong size", f->path, name);
        return NULL;
    }
    return t->data;
}

static const double *tensor_f64(const StFile *f, const char *name, int64_t numel)
{
    const StTensor *t = st_get(f, name);
    if (!t || t->dtype != ST_F64 || t->nbytes != (size_t)numel * 8) {
        CHECK(0, "%s: tensor %s missing or of the wrong size", f->path, name);
        return NULL;
    }
    return t->data;
}

/* max |c - e| / max |e|, the difference relative to the tensor's scale.
 * The floor 1e-4 covers tensors whose true gradient vanishes (the key bias
 * of an attention: softmax ignores a shift shared by all keys), where the
 * twin's float64 gives 1e-18 and float32 rounding 1e-9. */
static double rel(const float *c, const double *e64, const float *e32, size_t n)
{
    double mx = 0.0, sc = 1e-4;
    for (size_t i = 0; i < n; i++) {
        double ev = e64 ? e64[i] : (double)e32[i];
        double d = fabs((double)c[i] - ev);
        mx = d > mx ? d : mx;
        sc = fabs(ev) > sc ? fabs(ev) : sc;
    }
    return mx / sc;
}

static void compare_mode(LossMode mode)
{
    /* FVLM_TWIN_DIR: fixtures just written by twin.py (the python suite) */
    const char *dir = getenv("FVLM_TWIN_DIR");
    char in[4096], out[4096], def[4096];
    snprintf(def, sizeof def, "%s/tests/train/fixtures", FVLM_SOURCE_ROOT);
    if (!dir)
        dir = def;
    snprintf(in, sizeof in, "%.4000s/twin_%s_in.safetensors", dir,
             mode == LOSS_GLOBAL ? "global" : "fine");
    snprintf(out, sizeof out, "%.4000s/twin_%s_out.safetensors", dir, loss_mode_name(mode));
    FvErr e = {0};
    StFile *fi = NULL, *fo = NULL;
    CHECK_OK(st_open(&fi, in, &e), &e);
    CHECK_OK(st_open(&fo, out, &e), &e);
    if (!fi || !fo) {
        st_close(&fi);
        st_close(&fo);
        return;
    }
    NetCfg cfg = twin_cfg(mode);
    NetCap cap = twin_cap();
    Net n;
    CHECK_OK(net_alloc(&n, &cfg, &cap, 1, &e), &e);
    for (int i = 0; i < n.n_params; i++) {
        const float *p = tensor_f32(fi, n.info[i].name, (int64_t)n.info[i].numel);
        if (p)
            memcpy(n.params + n.info[i].off, p, n.info[i].numel * sizeof(float));
    }
    static TwinData d;
    const float *img = tensor_f32(fi, "batch.img", (int64_t)(sizeof d.img / sizeof *d.img));
    const StTensor *tm = st_get(fi, "batch.tokbias");
    const StTensor *tt = st_get(fi, "batch.tids"), *to = st_get(fi, "batch.toff");
    int ok = img && tm && tt && to && tm->nbytes == sizeof d.tokbias &&
             to->nbytes <= sizeof d.toff && tt->nbytes <= sizeof d.tids;
    CHECK(ok, "%s: batch tensors missing or of the wrong size", in);
    if (!ok) {
        net_free(&n);
        st_close(&fi);
        st_close(&fo);
        return;
    }
    memcpy(d.img, img, sizeof d.img);
    memcpy(d.tokbias, tm->data, sizeof d.tokbias);
    memcpy(d.toff, to->data, to->nbytes);
    memcpy(d.tids, tt->data, tt->nbytes);
    NetBatch b = make_batch(&d, mode);
    CHECK_OK(net_batch_check(&n, &b, &e), &e);
    memset(n.grads, 0, n.n_floats * sizeof(float));
    float loss = net_step(&n, &b, 1);

    const char *mname = loss_mode_name(mode);
    const double *el = tensor_f64(fo, "loss", 1);
    if (el)
        CHECK(fabs(loss - el[0]) <= TOL * fabs(el[0]), "%s: loss %.9g, twin %.9g", mname, loss,
              el[0]);
    for (int g = 0; g < b.ng; g++) {
        char nm[32];
        int ng = b.goff[g + 1] - b.goff[g];
        snprintf(nm, sizeof nm, "logits.%d", g);
        const double *lg = tensor_f64(fo, nm, (int64_t)ng * ng);
        if (lg)
            CHECK(rel(net_group_logits(&n, g), lg, NULL, (size_t)ng * ng) < TOL,
                  "%s: logits of group %d differ from the twin by %g", mname, g,
                  rel(net_group_logits(&n, g), lg, NULL, (size_t)ng * ng));
    }
    int nrows = b.goff[b.ng];
    const double *fimg = tensor_f64(fo, "img_feat", (int64_t)nrows * cfg.embed);
    const double *ftxt = tensor_f64(fo, "txt_feat", (int64_t)b.nt * cfg.embed);
    if (fimg)
        CHECK(rel(net_image_features(&n), fimg, NULL, (size_t)nrows * cfg.embed) < TOL,
              "%s: image features differ", mname);
    if (ftxt)
        CHECK(rel(net_text_features(&n), ftxt, NULL, (size_t)b.nt * cfg.embed) < TOL,
              "%s: text features differ", mname);
    int checked = 0;
    double worst = 0.0;
    const char *worst_name = "";
    for (int i = 0; i < n.n_params; i++) {
        char nm[80];
        snprintf(nm, sizeof nm, "grad.%s", n.info[i].name);
        const float *eg = tensor_f32(fo, nm, (int64_t)n.info[i].numel);
        if (!eg)
            continue;
        double r = rel(n.grads + n.info[i].off, NULL, eg, n.info[i].numel);
        if (getenv("TWIN_VERBOSE")) {
            double mc = 0, me = 0;
            for (size_t k = 0; k < n.info[i].numel; k++) {
                mc = fmax(mc, fabs(n.grads[n.info[i].off + k]));
                me = fmax(me, fabs(eg[k]));
            }
            printf("  %-32s rel %.3g  max|c| %.3g  max|twin| %.3g\n", n.info[i].name, r, mc, me);
        }
        CHECK(r < TOL, "%s: gradient of %s differs from the twin by %g (relative)", mname,
              n.info[i].name, r);
        if (r > worst) {
            worst = r;
            worst_name = n.info[i].name;
        }
        checked++;
    }
    CHECK_EQ_INT(checked, n.n_params);
    printf("%s: loss %.7f (twin %.7f), %d gradients, worst relative difference %.2g (%s)\n", mname,
           loss, el ? el[0] : 0.0, checked, worst, worst_name);
    net_free(&n);
    st_close(&fi);
    st_close(&fo);
}

/* model.anat_hist (not in the twin): the gradients of the density summary's
 * linear map, and of a weight downstream of it, against central finite
 * differences of the whole network's loss. */
static void check_hist_gradients(LossMode mode)
{
    FvErr e = {0};
    NetCfg cfg = twin_cfg(mode);
    cfg.hist = 1;
    NetCap cap = twin_cap();
    Net n;
    CHECK_OK(net_alloc(&n, &cfg, &cap, 1, &e), &e);
    Rng r;
    rng_seed(&r, 7, 0);
    net_init(&n, &r);
    static TwinData d;
    make_data(&d, &r);
    static float hist[TB * (TA + 1) * NET_HIST_DIM];
    for (size_t i = 0; i < sizeof hist / sizeof *hist; i++)
        hist[i] = 2.0f * rng_uniformf(&r);
    /* larger weights than the initialisation, so the summary moves the loss */
    const ParamInfo *hw = net_param(&n, "vis.hist.weight"), *hb = net_param(&n, "vis.hist.bias");
    const ParamInfo *pw = net_param(&n, mode == LOSS_GLOBAL ? "vis.proj.weight" : "anat.proj.weight");
    CHECK(hw && hb && pw, "density summary parameters missing");
    if (!hw || !hb || !pw) {
        net_free(&n);
        return;
    }
    for (size_t k = 0; k < hw->numel; k++)
        n.params[hw->off + k] = 0.3f * (2.0f * rng_uniformf(&r) - 1.0f);
    NetBatch b = make_batch(&d, mode);
    CHECK(net_batch_check(&n, &b, &e) == -1 && strstr(e.msg, "density summaries"),
          "a batch without the density summaries passes the check: %s", e.msg);
    b.hist = hist;
    b.hist_n = TA + 1;
    CHECK_OK(net_batch_check(&n, &b, &e), &e);
    memset(n.grads, 0, n.n_floats * sizeof(float));
    net_step(&n, &b, 1);
    const ParamInfo *which[3] = {hw, hb, pw};
    double worst = 0.0;
    for (int w = 0; w < 3; w++)
        for (int t = 0; t < 6; t++) {
            size_t at = which[w]->off + (size_t)(t * 7919) % which[w]->numel;
            float keep = n.params[at];
            const float h = 2e-3f;
            n.params[at] = keep + h;
            double lp = net_step(&n, &b, 0);
            n.params[at] = keep - h;
            double lm = net_step(&n, &b, 0);
            n.params[at] = keep;
            double fd = (lp - lm) / (2.0 * h), an = n.grads[at];
            double err = fabs(fd - an) / fmax(1e-2, fabs(fd) + fabs(an));
            worst = fmax(worst, err);
            CHECK(err < 2e-2, "%s: d loss / d %s[%zu]: analytic %.6g, finite differences %.6g",
                  loss_mode_name(mode), which[w]->name, at - which[w]->off, an, fd);
        }
    printf("%s with the density summary: worst relative gradient error %.2g\n",
           loss_mode_name(mode), worst);
    /* the summary changes the features: a zero summary gives other ones */
    float before[TR * 8];
    memcpy(before, net_image_features(&n), sizeof before);
    static float zero[sizeof hist / sizeof *hist];
    b.hist = zero;
    net_step(&n, &b, 0);
    CHECK(memcmp(before, net_image_features(&n), (size_t)b.goff[b.ng] * cfg.embed * sizeof(float)),
          "the density summary does not reach the features");
    net_free(&n);
}

static void test_density_summary_gradients_match_finite_differences(void)
{
    check_hist_gradients(LOSS_FINE_FN_DISEASE);
    check_hist_gradients(LOSS_GLOBAL);
}

static void test_global_model_matches_pytorch_twin(void) { compare_mode(LOSS_GLOBAL); }
static void test_fine_model_matches_pytorch_twin(void) { compare_mode(LOSS_FINE); }
static void test_fine_fn_model_matches_pytorch_twin(void) { compare_mode(LOSS_FINE_FN); }
static void test_fine_fn_disease_model_matches_pytorch_twin(void)
{
    compare_mode(LOSS_FINE_FN_DISEASE);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) {
        FvErr e = {0};
        if (dump_one(argv[2], LOSS_FINE, &e) || dump_one(argv[2], LOSS_GLOBAL, &e)) {
            fprintf(stderr, "test_twin: %s\n", e.msg);
            return 1;
        }
        return 0;
    }
    RUN(test_global_model_matches_pytorch_twin);
    RUN(test_fine_model_matches_pytorch_twin);
    RUN(test_fine_fn_model_matches_pytorch_twin);
    RUN(test_fine_fn_disease_model_matches_pytorch_twin);
    RUN(test_density_summary_gradients_match_finite_differences);
    return test_finish();
}
