/* Unit tests of lib/: vol (orientation, reorientation, resampling), ontology. */
#include <stdint.h>
#include <string.h>

#include "fvlm_config.h"
#include "ontology.h"
#include "test.h"
#include "vol.h"

static void fill_index(Vol *v)
{
    int16_t *d = v->data;
    for (int64_t z = 0; z < v->nz; z++)
        for (int64_t y = 0; y < v->ny; y++)
            for (int64_t x = 0; x < v->nx; x++)
                d[(z * v->ny + y) * v->nx + x] = (int16_t)(x + 10 * y + 100 * z);
}

static void test_vol_alloc_checks_limit_before_allocating(void)
{
    Vol v;
    FvErr e = {0};
    CHECK(vol_alloc(&v, VOL_I16, 1 << 20, 1 << 20, 1 << 20, 1000000, &e) == -1 &&
              e.code == FV_ELIMIT,
          "huge volume not refused by the limit: %s", e.msg);
    CHECK(vol_alloc(&v, VOL_I16, -1, 2, 2, 100, &e) == -1 && e.code == FV_EFORMAT,
          "negative dimension accepted");
    CHECK(vol_alloc(&v, VOL_I16, INT64_MAX / 2, 4, 4, INT64_MAX, &e) == -1,
          "overflowing product accepted");
}

static void test_orientation_codes_follow_nibabel(void)
{
    double ras[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    double lps[4][4] = {{-0.7, 0, 0, 0}, {0, -0.7, 0, 0}, {0, 0, 3, 0}, {0, 0, 0, 1}};
    double sag[4][4] = {{0, 0, -1, 0}, {1, 0, 0, 0}, {0, -1, 0, 0}, {0, 0, 0, 1}};
    char c[4];
    vol_orient_code(ras, c);
    CHECK_STR(c, "RAS");
    vol_orient_code(lps, c);
    CHECK_STR(c, "LPS");
    vol_orient_code(sag, c);
    CHECK_STR(c, "AIL");
    CHECK_NEAR(vol_obliquity(lps), 0, 1e-9);
    double obl[4][4] = {{cos(0.1), -sin(0.1), 0, 0}, {sin(0.1), cos(0.1), 0, 0}, {0, 0, 1, 0},
                        {0, 0, 0, 1}};
    CHECK_NEAR(vol_obliquity(obl), 0.1 * 180 / M_PI, 1e-6);
}

/* Reorienting an LPS volume must keep every voxel's world position. */
static void test_reorient_keeps_world_positions(void)
{
    Vol v;
    FvErr e = {0};
    CHECK_OK(vol_alloc(&v, VOL_I16, 4, 3, 2, 1000, &e), &e);
    fill_index(&v);
    double a[4][4] = {{0, -0.8, 0, 50}, {-0.6, 0, 0, 20}, {0, 0, -2.5, 100}, {0, 0, 0, 1}};
    memcpy(v.affine, a, sizeof a);
    /* Remember world position -> value. */
    double wpos[24][3];
    int16_t wval[24];
    int k = 0;
    for (int z = 0; z < 2; z++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++, k++) {
                for (int r = 0; r < 3; r++)
                    wpos[k][r] = a[r][0] * x + a[r][1] * y + a[r][2] * z + a[r][3];
                wval[k] = (int16_t)vol_get(&v, x, y, z);
            }
    CHECK_OK(vol_reorient_canonical(&v, &e), &e);
    char code[4];
    vol_orient_code(v.affine, code);
    CHECK_STR(code, "RAS");
    CHECK(v.nx == 3 && v.ny == 4 && v.nz == 2, "dims %lld %lld %lld", (long long)v.nx,
          (long long)v.ny, (long long)v.nz);
    double inv[4][4];
    CHECK(mat4_inverse(v.affine, inv) == 0, "singular affine");
    int bad = 0;
    for (k = 0; k < 24; k++) {
        double idx[3];
        for (int r = 0; r < 3; r++)
            idx[r] = inv[r][0] * wpos[k][0] + inv[r][1] * wpos[k][1] + inv[r][2] * wpos[k][2] +
                     inv[r][3];
        int x = (int)lround(idx[0]), y = (int)lround(idx[1]), z = (int)lround(idx[2]);
        if (x < 0 || y < 0 || z < 0 || x >= v.nx || y >= v.ny || z >= v.nz ||
            (int16_t)vol_get(&v, x, y, z) != wval[k])
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    vol_free(&v);
}

static void test_resample_linear_is_exact_on_ramps(void)
{
    Vol v, r;
    FvErr e = {0};
    CHECK_OK(vol_alloc(&v, VOL_F32, 8, 6, 4, 1000, &e), &e);
    float *d = v.data;
    for (int z = 0; z < 4; z++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 8; x++)
                d[(z * 6 + y) * 8 + x] = (float)(2 * x + 3 * y + 5 * z);
    v.affine[0][0] = 1;
    v.affine[1][1] = 1;
    v.affine[2][2] = 2;
    double sp[3] = {2, 1.5, 4};
    CHECK_OK(vol_resample(&v, sp, 0, 1000, &r, &e), &e);
    CHECK(r.nx == 4 && r.ny == 4 && r.nz == 2, "dims %lld %lld %lld", (long long)r.nx,
          (long long)r.ny, (long long)r.nz);
    /* Output voxel (1,1,1) centre: source x = 1*2 + 0.5 = 2.5, y = 1*1.5+0.25, z = 1*2+0.5. */
    CHECK_NEAR(vol_get(&r, 1, 1, 1), 2 * 2.5 + 3 * 1.75 + 5 * 2.5, 1e-4);
    double rs[3];
    vol_spacing(&r, rs);
    CHECK_NEAR(rs[0], 2, 1e-12);
    CHECK_NEAR(rs[2], 4, 1e-12);
    /* The world position of an output centre equals that of the source point. */
    CHECK_NEAR(r.affine[0][3], 0.5, 1e-12);
    vol_free(&r);
    /* Nearest keeps label values. */
    Vol m, mr;
    CHECK_OK(vol_alloc(&m, VOL_U8, 5, 5, 5, 1000, &e), &e);
    ((uint8_t *)m.data)[62] = 51;
    double sp2[3] = {0.5, 0.5, 0.5};
    CHECK_OK(vol_resample(&m, sp2, 1, 10000, &mr, &e), &e);
    int n51 = 0, other = 0;
    for (int64_t i = 0; i < vol_count(&mr); i++) {
        uint8_t x = ((uint8_t *)mr.data)[i];
        n51 += x == 51;
        other += x != 0 && x != 51;
    }
    CHECK_EQ_INT(n51, 8);
    CHECK_EQ_INT(other, 0);
    vol_free(&m);
    vol_free(&mr);
    vol_free(&v);
}

static void test_resample_gives_the_same_bytes_on_any_thread_count(void)
{
    /* an int16 CT and a float volume, large enough for several slabs */
    const VolType types[2] = {VOL_I16, VOL_F32};
    for (int t = 0; t < 2; t++) {
        Vol v = {0};
        FvErr e = {0};
        CHECK_OK(vol_alloc(&v, types[t], 96, 80, 37, 1 << 22, &e), &e);
        uint32_t x = 12345;
        for (int64_t i = 0; i < vol_count(&v); i++) {
            x = x * 1664525u + 1013904223u;
            float val = (float)(x >> 16) / 65536.0f * 3000.0f - 1024.0f;
            if (types[t] == VOL_I16)
                ((int16_t *)v.data)[i] = (int16_t)val;
            else
                ((float *)v.data)[i] = val;
        }
        v.affine[0][0] = 0.7;
        v.affine[1][1] = 0.7;
        v.affine[2][2] = 2.5;
        double sp[3] = {1, 1, 3};
        Vol one = {0}, many = {0};
        vol_set_threads(1);
        CHECK_OK(vol_resample(&v, sp, 0, 1 << 22, &one, &e), &e);
        for (int n = 2; n <= 5; n++) {
            vol_set_threads(n);
            CHECK_OK(vol_resample(&v, sp, 0, 1 << 22, &many, &e), &e);
            size_t bytes = (size_t)vol_count(&one) * vol_type_size(one.type);
            CHECK(vol_count(&many) == vol_count(&one) && memcmp(one.data, many.data, bytes) == 0,
                  "%s volume resampled on %d threads differs from 1 thread",
                  t ? "float" : "int16", n);
            vol_free(&many);
        }
        vol_set_threads(1);
        vol_free(&one);
        vol_free(&v);
    }
}

static void test_ontology_loads_and_meets_the_issue(void)
{
    Ontology *o;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    if (!o)
        return;
    int main_with_tasks = 0;
    for (int a = 0; a < o->n_anat; a++) {
        int n = 0;
        for (int f = 0; f < o->n_find; f++)
            n += o->find[f].anatomy == a;
        main_with_tasks += n > 0;
        CHECK(!o->anat[a].main || n > 0, "main anatomy %s has no task", o->anat[a].id);
    }
    CHECK(main_with_tasks >= 15, "only %d anatomies carry tasks", main_with_tasks);
    CHECK(o->n_find >= 54, "only %d tasks", o->n_find);
    int ctrate = 0, fvlm16 = 0;
    for (int f = 0; f < o->n_find; f++) {
        ctrate += o->find[f].ctrate_label != NULL;
        fvlm16 += o->find[f].fvlm16;
    }
    CHECK_EQ_INT(ctrate, 18);
    CHECK_EQ_INT(fvlm16, 16);
    /* fVLM's merge: lung = 10-14, heart = 51 + 61, esophagus 15, aorta 52. */
    int lung = onto_anatomy(o, "lung"), heart = onto_anatomy(o, "heart");
    for (int id = 10; id <= 14; id++)
        CHECK_EQ_INT(o->ts_to_anat[id], lung);
    CHECK_EQ_INT(o->ts_to_anat[51], heart);
    CHECK_EQ_INT(o->ts_to_anat[61], heart);
    CHECK_EQ_INT(o->ts_to_anat[15], onto_anatomy(o, "esophagus"));
    CHECK_EQ_INT(o->ts_to_anat[52], onto_anatomy(o, "aorta"));
    /* Every TotalSegmentator id of the 117 belongs to some anatomy. */
    for (int id = 1; id <= 117; id++)
        CHECK(o->ts_to_anat[id] >= 0, "TotalSegmentator id %d is in no anatomy", id);
    CHECK_EQ_INT(o->find[onto_finding(o, "pleural_effusion")].anatomy, lung);
    CHECK_EQ_INT(o->find[onto_finding(o, "hiatal_hernia")].anatomy, onto_anatomy(o, "esophagus"));
    CHECK(onto_in_group(o, onto_anatomy(o, "liver"), onto_group(o, "upper_abdomen")),
          "liver is not in upper_abdomen");
    onto_free(&o);
}

static void test_ontology_errors_name_file_and_line(void)
{
    const char *groups = "id\ten\tzh\ten_synonyms\tzh_synonyms\ng\tG\t组\t-\t-\n";
    const char *anat_hdr = "id\ten\tzh\tregion\tmain\tts_ids\tregion_of\tgroups\ten_synonyms\t"
                           "zh_synonyms\n";
    const char *find_hdr = "id\tanatomy\ten\tzh\tctrate_label\tfvlm16\tprevalence\ten_synonyms\t"
                           "zh_synonyms\n";
    char anat[1024], find[1024];
    struct {
        const char *anat_rows, *find_rows, *expect;
    } cases[] = {
        {"lung\tlung\t肺\tchest\t1\t10-14\t-\tg\t-\t-\n", "x\tliver\tX\t叉\t-\t0\t0.1\t-\t-\n",
         "unknown anatomy 'liver'"},
        {"lung\tlung\t肺\tchest\t1\t10-14\t-\tg\t-\t-\nlung\tl\t肺\tchest\t1\t-\t-\tg\t-\t-\n", "",
         "duplicate anatomy id 'lung'"},
        {"lung\t\t肺\tchest\t1\t10-14\t-\tg\t-\t-\n", "", "empty en"},
        {"lung\tlung\t肺\tchest\t1\t10-14\t-\tg\t-\t-\n",
         "x\tlung\tX\t叉\t-\t0\t0.1\t-\t-\nx\tlung\tY\t叉\t-\t0\t0.1\t-\t-\n", "duplicate task id"},
        {"lung\tlung\t肺\tchest\t1\t10-14\t-\tnope\t-\t-\n", "", "unknown group 'nope'"},
        {"a\ta\t甲\tchest\t1\t10-14\t-\tg\t-\t-\nb\tb\t乙\tchest\t1\t14\t-\tg\t-\t-\n", "",
         "id 14 is already in 'a'"},
        {"lung\tlung\t肺\tchest\t1\t300\t-\tg\t-\t-\n", "", "outside 1-255"},
        {"lung\tlung\t肺\tchest\t1\t10\t-\tg\t-\t-\n", "x\tlung\tX\t叉\t-\t0\t1.5\t-\t-\n",
         "prevalence"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(anat, sizeof anat, "%s%s", anat_hdr, cases[i].anat_rows);
        snprintf(find, sizeof find, "%s%s", find_hdr, cases[i].find_rows);
        Ontology *o = NULL;
        FvErr e = {0};
        CHECK(onto_parse(&o, anat, groups, find, &e) == -1 && o == NULL, "case %zu accepted", i);
        CHECK(strstr(e.msg, cases[i].expect) != NULL, "case %zu: message '%s' lacks '%s'", i,
              e.msg, cases[i].expect);
        CHECK(strstr(e.msg, ".tsv:") != NULL, "case %zu: no file:line in '%s'", i, e.msg);
    }
}

int main(void)
{
    RUN(test_vol_alloc_checks_limit_before_allocating);
    RUN(test_orientation_codes_follow_nibabel);
    RUN(test_reorient_keeps_world_positions);
    RUN(test_resample_linear_is_exact_on_ramps);
    RUN(test_resample_gives_the_same_bytes_on_any_thread_count);
    RUN(test_ontology_loads_and_meets_the_issue);
    RUN(test_ontology_errors_name_file_and_line);
    return test_finish();
}
