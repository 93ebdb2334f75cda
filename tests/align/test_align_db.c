/* The align stage over a corpus database built by hand: links, statuses,
 * regions, flags and samples as rows; bad masks recorded and skipped; what
 * annotators set survives a re-run; re-runs are idempotent; and the fvlm
 * binary's align, show and export on the same database. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "align.h"
#include "anatomy_meta.h"
#include "buf.h"
#include "db.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "json.h"
#include "ontology.h"
#include "run.h"
#include "safetensors.h"
#include "test.h"
#include "testdb.h"

static Ontology *O;
static AnatomyMetaTable META;
static char DIR_[256], DBPATH[300];

enum { NZ = 20, NY = 30, NX = 40 };

static void fill(uint8_t *m, int v, int z0, int z1, int y0, int y1, int x0, int x1)
{
    for (int z = z0; z < z1; z++)
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                m[(z * NY + y) * NX + x] = (uint8_t)v;
}

static void exec_ok(Db *db, const char *sql)
{
    FvErr e = {0};
    if (db_exec(db, sql, &e)) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        exit(2);
    }
}

/* Three studies: 1 with a mask and a report, 2 with a report and no mask,
 * 3 with a mask whose shape does not match its volume. */
static void build_fixture(void)
{
    FvErr e = {0};
    snprintf(DIR_, sizeof DIR_, "/tmp/fvlm-align-test.%ld", (long)getpid());
    snprintf(DBPATH, sizeof DBPATH, "%s/corpus.db", DIR_);
    char tdir[400];
    snprintf(tdir, sizeof tdir, "%s.tensors", DBPATH);
    if (fs_mkdir_p(tdir, &e)) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        exit(2);
    }
    static uint8_t m1[NZ * NY * NX], m3[10 * 10 * 10];
    fill(m1, 10, 2, 12, 3, 20, 3, 18);    /* lung, left upper lobe */
    fill(m1, 14, 2, 14, 3, 20, 22, 37);   /* lung, right lower lobe */
    fill(m1, 51, 8, 14, 20, 27, 15, 25);  /* heart */
    fill(m1, 5, 14, 20, 5, 25, 20, 39);   /* liver, to the top slice (not whole) */
    StWriter w;
    st_writer_init(&w);
    int64_t s1[3] = {NZ, NY, NX}, s3[3] = {10, 10, 10};
    char path[500];
    snprintf(path, sizeof path, "%s/masks-0.safetensors", tdir);
    if (st_writer_add(&w, "m1", ST_U8, 3, s1, m1, &e) || st_writer_add(&w, "m3", ST_U8, 3, s3, m3, &e) ||
        st_write(&w, path, &e)) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        exit(2);
    }
    st_writer_free(&w);

    Db *db;
    if (db_open(&db, DBPATH, 0, &e)) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        exit(2);
    }
    exec_ok(db,
        "INSERT INTO studies (id, study_key, split) VALUES (1, 'key1', 'train'), (2, 'key2', 'valid'),"
        " (3, 'key3', 'train');"
        "INSERT INTO reports (id, study_id, sha256, source, format, language, encoding, text) VALUES"
        " (1, 1, 'r1', 'r1.txt', 'txt', 'en', 'utf-8', 'x'),"
        " (2, 2, 'r2', 'r2.txt', 'txt', 'zh', 'utf-8', 'x'),"
        " (3, 3, 'r3', 'r3.txt', 'txt', 'en', 'utf-8', 'x');"
        "INSERT INTO sentences (id, report_id, study_id, idx, section, start, end, text, norm) VALUES"
        " (10, 1, 1, 0, 'findings', 0, 1, 'Heart size is normal.', ''),"
        " (11, 1, 1, 1, 'findings', 0, 1, 'A 6 mm nodule in the right lower lobe.', ''),"
        " (12, 1, 1, 2, 'findings', 0, 1, 'It is stable.', ''),"
        " (13, 1, 1, 3, 'findings', 0, 1, 'Upper abdominal organs are normal.', ''),"
        " (14, 1, 1, 4, 'impression', 0, 1, 'Right lower lobe nodule.', ''),"
        " (15, 1, 1, 5, 'impression', 0, 1, 'Hiatal hernia.', ''),"
        " (16, 1, 1, 6, 'other', 0, 1, 'Dictated by the resident.', ''),"
        " (17, 1, 1, 7, 'findings', 100, 195, 'In the evaluation of both lungs in the parenchyma"
        " window; Calibration of the trachea is normal.', ''),"
        " (18, 1, 1, 8, 'findings', 200, 253, 'The appearance may be secondary to cardiac pathology.', ''),"
        " (20, 2, 2, 0, 'findings', 0, 1, '肝脏未见异常。', ''),"
        " (30, 3, 3, 0, 'impression', 0, 1, 'Lung nodule.', '');"
        "INSERT INTO mentions (sentence_id, anatomy, start, end, term, rule) VALUES"
        " (10, 'heart', 0, 5, 'heart', 't'), (11, 'lung', 0, 5, 'lobe', 't'),"
        " (13, 'group:upper_abdomen', 0, 5, 'upper abdominal organs', 't'),"
        " (14, 'lung', 0, 5, 'lobe', 't'), (20, 'liver', 0, 5, '肝脏', 't'),"
        " (30, 'lung', 0, 4, 'lung', 't'), (30, 'no_such_organ', 0, 4, 'x', 't'),"
        /* a mention in a technique lead-in, one after a cause cue */
        " (17, 'lung', 121, 131, 'both lungs', 't'), (17, 'trachea', 177, 184, 'trachea', 't'),"
        " (18, 'heart', 235, 242, 'cardiac', 't');"
        "INSERT INTO findings (sentence_id, study_id, task, anatomy, polarity, start, end, term, rule)"
        " VALUES (11, 1, 'lung_nodule', 'lung', 1, 0, 1, 'nodule', 't'),"
        " (14, 1, 'lung_nodule', 'lung', 1, 0, 1, 'nodule', 't'),"
        " (15, 1, 'hiatal_hernia', 'esophagus', 1, 0, 1, 'hiatal hernia', 't'),"
        " (30, 3, 'lung_nodule', 'lung', 1, 0, 1, 'nodule', 't'),"
        " (17, 1, 'tracheal_stenosis', 'trachea', 0, 177, 194, 'trachea is normal', 't');"
        "INSERT INTO labels (study_id, task, value, source) VALUES (1, 'lung_nodule', 1, 'parsed'),"
        " (1, 'hiatal_hernia', 1, 'parsed'), (1, 'emphysema', 0, 'parsed');"
        "INSERT INTO volumes (id, study_id, sha256, source, src_dims, src_spacing, src_affine,"
        " src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor) VALUES"
        " (1, 1, 'v1', 'v1', '[]', '[]', '[]', 'RAS', 'int16', 20, 30, 40, 3, 1, 1, '[]', 'v.st', 'v1'),"
        " (3, 3, 'v3', 'v3', '[]', '[]', '[]', 'RAS', 'int16', 20, 30, 40, 3, 1, 1, '[]', 'v.st', 'v3');"
        "INSERT INTO masks (study_id, volume_id, sha256, source, shard, tensor) VALUES"
        " (1, 1, 'm1', 'm1', 'masks-0.safetensors', 'm1'),"
        " (3, 3, 'm3', 'm3', 'masks-0.safetensors', 'm3');"
        /* Hostile masks: a shard that is not safetensors, a name that climbs out. */
        "INSERT INTO studies (id, study_key, split) VALUES (4, 'key4', 'test'), (5, 'key5', 'test');"
        "INSERT INTO volumes (id, study_id, sha256, source, src_dims, src_spacing, src_affine,"
        " src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor) VALUES"
        " (4, 4, 'v4', 'v4', '[]', '[]', '[]', 'RAS', 'int16', 20, 30, 40, 3, 1, 1, '[]', 'v.st', 'v4'),"
        " (5, 5, 'v5', 'v5', '[]', '[]', '[]', 'RAS', 'int16', 20, 30, 40, 3, 1, 1, '[]', 'v.st', 'v5');"
        "INSERT INTO masks (study_id, volume_id, sha256, source, shard, tensor) VALUES"
        " (4, 4, 'm4', 'm4', 'garbage.safetensors', 'm'),"
        " (5, 5, 'm5', 'm5', '../../etc/passwd', 'm');");
    db_close(&db);
    char garbage[500];
    snprintf(garbage, sizeof garbage, "%s/garbage.safetensors", tdir);
    if (fs_write_atomic(garbage, "\xff\xff\xff\xff\xff\xff\xff\x7fnot a header", 20, &e)) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        exit(2);
    }
}

static int run_align(Db *db, AlignCounts *c)
{
    FvErr e = {0};
    Config cfg;
    config_init(&cfg);
    AlignOptions opt;
    Run run;
    char *argv[] = {"align"};
    int rc = align_options_from_config(O, &cfg, &opt, &e);
    if (rc == 0)
        rc = run_begin(&run, db, "align", 1, argv, NULL, -1, &e);
    memset(c, 0, sizeof *c);
    if (rc == 0)
        rc = align_run(db, &run, O, &META, &opt, c, &e);
    if (rc == 0)
        rc = run_finish(&run, "ok", NULL, &e);
    if (rc)
        fprintf(stderr, "align_run: %s\n", e.msg);
    align_options_free(&opt);
    config_free(&cfg);
    return rc;
}

static void test_align_writes_links_statuses_regions_flags_samples(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, DBPATH, DB_MUST_EXIST, &e), &e);
    AlignCounts c;
    CHECK_EQ_INT(run_align(db, &c), 0);
    CHECK_EQ_INT(c.aligned, 5);
    CHECK_EQ_INT(c.failed, 3);
    CHECK_EQ_INT(c.no_mask, 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM flags WHERE study_id IN (4, 5) AND kind = 'mask_error'"), 2);
    const char *climb = sql_str(db, "SELECT detail FROM flags WHERE study_id = 5 AND kind = 'mask_error'");
    CHECK(strstr(climb, "is not a file under"), "shard name climbing out: '%s'", climb);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM errors WHERE member LIKE '%study 4)'"), 1);

    CHECK_STR(sql_str(db, "SELECT group_concat(anatomy || ':' || method) FROM links WHERE sentence_id = 12"),
              "lung:continuation");
    CHECK_STR(sql_str(db, "SELECT group_concat(anatomy || ':' || method) FROM links WHERE sentence_id = 13"),
              "liver:group");
    CHECK_STR(sql_str(db, "SELECT group_concat(anatomy || ':' || method) FROM links WHERE sentence_id = 16"),
              ":none");
    /* The lung of a technique lead-in is not the sentence's; a cause is not
     * what the sentence describes: it continues the sentence before. */
    CHECK_STR(sql_str(db, "SELECT group_concat(anatomy || ':' || method) FROM links WHERE sentence_id = 17"),
              "trachea:mention");
    CHECK_STR(sql_str(db, "SELECT group_concat(anatomy || ':' || method) FROM links WHERE sentence_id = 18"),
              "trachea:continuation");
    /* every link says why: the mention's term, offsets and rule; the
     * sentence a continuation continues */
    CHECK_STR(sql_str(db, "SELECT term || ' ' || start || '-' || end || ' ' || rule || ' '"
                          " || ifnull(continues, 'null') FROM links WHERE sentence_id = 17"),
              "trachea 177-184 t null");
    CHECK_STR(sql_str(db, "SELECT rule || ' ' || continues || ' ' || ifnull(term, 'null')"
                          " FROM links WHERE sentence_id = 18"),
              "continuation.weak 17 null");
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM links WHERE rule IS NULL"), 0);
    CHECK(sql_int(db, "SELECT count(DISTINCT confidence) FROM links WHERE method = 'mention'") >= 1 &&
              sql_int(db, "SELECT count(*) FROM links WHERE confidence < 0 OR confidence > 1") == 0,
          "link confidences outside [0, 1]");
    CHECK_STR(sql_str(db, "SELECT status FROM anatomy_status WHERE study_id = 1 AND anatomy = 'lung'"),
              "abnormal");
    CHECK_STR(sql_str(db, "SELECT text FROM anatomy_status WHERE study_id = 1 AND anatomy = 'lung'"),
              "Right lower lobe nodule. A 6 mm nodule in the right lower lobe. It is stable.");
    CHECK_STR(sql_str(db, "SELECT text FROM anatomy_status WHERE study_id = 1 AND anatomy = 'heart'"),
              "Heart shows no significant abnormalities.");
    CHECK_STR(sql_str(db, "SELECT status FROM anatomy_status WHERE study_id = 1 AND anatomy = 'esophagus'"),
              "abnormal");
    CHECK_STR(sql_str(db, "SELECT status FROM anatomy_status WHERE study_id = 1 AND anatomy = 'spleen'"),
              "unmentioned");
    CHECK_STR(sql_str(db, "SELECT text FROM anatomy_status WHERE study_id = 2 AND anatomy = 'liver'"),
              "肝未见明显异常。");
    CHECK_STR(sql_str(db, "SELECT diseases FROM anatomy_status WHERE study_id = 1 AND anatomy = 'lung'"),
              "[\"lung_nodule\"]");

    CHECK_EQ_INT(sql_int(db, "SELECT voxels FROM regions WHERE study_id = 1 AND anatomy = 'lung'"),
                 10 * 17 * 15 + 12 * 17 * 15);
    CHECK_EQ_INT(sql_int(db, "SELECT whole FROM regions WHERE study_id = 1 AND anatomy = 'lung'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT whole FROM regions WHERE study_id = 1 AND anatomy = 'liver'"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT z0 FROM regions WHERE study_id = 1 AND anatomy = '_union'"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM regions WHERE study_id IN (2, 3)"), 0);

    CHECK_STR(sql_str(db, "SELECT group_concat(anatomy || ':' || status || ':' || whole, ' ') FROM"
                        " (SELECT * FROM samples WHERE study_id = 1 ORDER BY anatomy)"),
              "body:normal:0 heart:normal:1 liver:normal:0 lung:abnormal:1 lymph_node:normal:1"
              " peritoneum:normal:0");
    CHECK_STR(sql_str(db, "SELECT split FROM samples WHERE study_id = 1 LIMIT 1"), "train");
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM samples WHERE study_id IN (2, 3)"), 0);

    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM flags WHERE study_id = 1 AND anatomy = 'esophagus'"
                           " AND kind = 'abnormal_without_mask'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM flags WHERE study_id = 1 AND anatomy = 'lung'"
                           " AND kind = 'implausible_volume'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM flags WHERE study_id = 2 AND kind = 'no_mask'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM flags WHERE study_id = 3 AND kind = 'mask_error'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM flags WHERE study_id = 3 AND kind = 'unknown_id'"), 1);
    const char *why = sql_str(db, "SELECT reason FROM errors WHERE member LIKE 'm3%'");
    CHECK(strstr(why, "mask shape (10, 10, 10) differs from the volume grid (20, 30, 40)"),
          "error row for the bad mask reads '%s'", why);
    /* The bad mask does not stop the study's text side. */
    CHECK_STR(sql_str(db, "SELECT status FROM anatomy_status WHERE study_id = 3 AND anatomy = 'lung'"),
              "abnormal");
    db_close(&db);
}

static void test_rerun_keeps_annotators_values_and_is_idempotent(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, DBPATH, DB_MUST_EXIST, &e), &e);
    exec_ok(db,
        "UPDATE links SET accepted = 0 WHERE sentence_id = 12 AND anatomy = 'lung';"
        "INSERT INTO links (sentence_id, anatomy, method, confidence, source) VALUES"
        " (13, 'kidney', 'audit', 1.0, 'audit');"
        "UPDATE anatomy_status SET source = 'audit', status = 'abnormal', text = 'Cardiomegaly.',"
        " diseases = '[\"cardiomegaly\"]' WHERE study_id = 1 AND anatomy = 'heart';");
    AlignCounts c;
    CHECK_EQ_INT(run_align(db, &c), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT accepted FROM links WHERE sentence_id = 12 AND anatomy = 'lung'"), 0);
    CHECK_STR(sql_str(db, "SELECT source FROM links WHERE sentence_id = 13 AND anatomy = 'kidney'"), "audit");
    /* The rejected continuation no longer feeds the lung's text. */
    CHECK_STR(sql_str(db, "SELECT text FROM anatomy_status WHERE study_id = 1 AND anatomy = 'lung'"),
              "Right lower lobe nodule. A 6 mm nodule in the right lower lobe.");
    /* The rejected sentence now links to nothing: recorded. */
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM links WHERE sentence_id = 12 AND anatomy = ''"), 1);
    CHECK_STR(sql_str(db, "SELECT text FROM anatomy_status WHERE study_id = 1 AND anatomy = 'heart'"),
              "Cardiomegaly.");
    CHECK_STR(sql_str(db, "SELECT status || ' ' || text || ' ' || diseases FROM samples"
                        " WHERE study_id = 1 AND anatomy = 'heart'"),
              "abnormal Cardiomegaly. [\"cardiomegaly\"]");
    CHECK_STR(sql_str(db, "SELECT findings_text FROM anatomy_status WHERE study_id = 1 AND anatomy = 'kidney'"),
              "Upper abdominal organs are normal.");

    const char *tables[] = {"links", "anatomy_status", "regions", "flags", "samples"};
    int64_t before[5];
    for (int i = 0; i < 5; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
        before[i] = sql_int(db, sql);
    }
    CHECK_EQ_INT(run_align(db, &c), 0);
    for (int i = 0; i < 5; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
        CHECK(sql_int(db, sql) == before[i], "%s: %lld rows after a re-run, %lld before", tables[i],
              (long long)sql_int(db, sql), (long long)before[i]);
    }
    CHECK_EQ_INT(sql_int(db, "SELECT count(DISTINCT run_id) FROM samples"), 1);
    db_close(&db);
}

static JsonValue *read_json(const char *path)
{
    char *text;
    size_t len;
    FvErr e = {0};
    JsonValue *v = NULL;
    if (fs_read_file(path, 1 << 26, &text, &len, &e)) {
        CHECK(0, "reading %s: %s", path, e.msg);
        return NULL;
    }
    if (json_parse(text, len, &v, &e))
        CHECK(0, "%s is not JSON: %s", path, e.msg);
    free(text);
    return v;
}

static void test_cli_align_show_export(void)
{
    const char *bin = getenv("FVLM_BIN");
    if (!bin) {
        printf("FVLM_BIN not set: CLI checks skipped\n");
        return;
    }
    Buf out = {0};
    CHECK_EQ_INT(test_sh_output(&out, "'%s' align --quiet --json --db '%s' --study 1 --set align.status_rule=findings",
             bin, DBPATH), 0);
    CHECK(out.data && strstr(out.data, "\"aligned\":1"), "align --json prints %s", out.data);
    /* The run records the effective configuration. */
    Db *db;
    FvErr e = {0};
    CHECK_OK(db_open(&db, DBPATH, DB_MUST_EXIST, &e), &e);
    const char *cfg = sql_str(db, "SELECT config FROM runs ORDER BY id DESC LIMIT 1");
    CHECK(strstr(cfg, "\"align.status_rule\":\"findings\"") && strstr(cfg, "align.samples"),
          "run config is %s", cfg);
    db_close(&db);

    CHECK_EQ_INT(test_sh_output(&out, "'%s' align --db '%s' --set align.status_rule=sometimes 2>&1", bin, DBPATH), 2);
    CHECK(out.data && strstr(out.data, "align.status_rule"), "bad rule message: %s", out.data);
    CHECK_EQ_INT(test_sh_output(&out, "'%s' align --db '%s' --study 99 2>&1", bin, DBPATH), 1);
    CHECK(out.data && strstr(out.data, "study 99 does not exist"), "missing study message: %s", out.data);
    CHECK_EQ_INT(test_sh_output(&out, "'%s' align --quiet --db '%s'", bin, DBPATH), 0);

    CHECK_EQ_INT(test_sh_output(&out, "'%s' show --db '%s' 1", bin, DBPATH), 0);
    CHECK(out.data && strstr(out.data, "lung (肺)  abnormal") && strstr(out.data, "Right lower lobe nodule.") &&
              strstr(out.data, "abnormal_without_mask") && strstr(out.data, "lung_nodule = present") &&
              strstr(out.data, "REJECTED") && strstr(out.data, "Dictated by the resident."),
          "show prints:\n%s", out.data);
    CHECK_EQ_INT(test_sh_output(&out, "'%s' show --db '%s' --json 1", bin, DBPATH), 0);
    JsonValue *v = NULL;
    CHECK(out.data && json_parse(out.data, out.len, &v, &e) == 0, "show --json: %s", e.msg);
    if (v) {
        const JsonValue *an = json_get(v, "anatomies");
        CHECK(an && an->type == JSON_ARR && an->len >= 4, "show --json has no anatomies array");
        json_free(&v);
    }
    CHECK_EQ_INT(test_sh_output(&out, "'%s' show --db '%s' 42 2>&1", bin, DBPATH), 1);

    char outdir[400], path[500];
    snprintf(outdir, sizeof outdir, "%s/export", DIR_);
    CHECK_EQ_INT(test_sh_output(&out, "'%s' export --db '%s' --format fvlm --out '%s'", bin, DBPATH, outdir), 0);
    snprintf(path, sizeof path, "%s/desc_info.json", outdir);
    JsonValue *desc = read_json(path);
    snprintf(path, sizeof path, "%s/conc_info.json", outdir);
    JsonValue *conc = read_json(path);
    if (desc && conc) {
        const JsonValue *s1 = json_get(desc, "key1");
        CHECK_STR(json_get_str(s1, "lung", NULL), "A 6 mm nodule in the right lower lobe.");
        CHECK_STR(json_get_str(s1, "heart", NULL), "Heart size is normal.");
        CHECK(json_get(s1, "spleen") == NULL, "an anatomy without text is exported");
        CHECK_STR(json_get_str(json_get(conc, "key1"), "esophagus", NULL), "Hiatal hernia.");
        CHECK(json_get(conc, "key2") && json_get(conc, "key2")->len == 0,
              "study 2 (no impression) is not an empty object in conc_info.json");
        CHECK_EQ_INT(desc->len, 3);
    }
    json_free(&desc);
    json_free(&conc);

    CHECK_EQ_INT(test_sh_output(&out, "'%s' export --db '%s' --format jsonl --split train --out '%s'", bin,
             DBPATH, outdir), 0);
    snprintf(path, sizeof path, "%s/anatomies.jsonl", outdir);
    char *text;
    size_t len;
    int lines = 0, lung_ok = 0, bad = 0;
    if (fs_read_file(path, 1 << 26, &text, &len, &e) == 0) {
        for (char *p = text, *nl; p < text + len; p = nl + 1) {
            nl = memchr(p, '\n', (size_t)(text + len - p));
            if (!nl)
                nl = text + len;
            JsonValue *line = NULL;
            if (json_parse(p, (size_t)(nl - p), &line, &e)) {
                bad++;
                continue;
            }
            lines++;
            if (!strcmp(json_get_str(line, "split", ""), "valid"))
                bad++;
            if (!strcmp(json_get_str(line, "anatomy", ""), "lung") &&
                json_get_int(line, "study_id", 0) == 1) {
                const JsonValue *r = json_get(line, "region");
                const JsonValue *s = json_get(line, "sentences");
                lung_ok = r && json_get_int(r, "voxels", 0) == 10 * 17 * 15 + 12 * 17 * 15 && s &&
                          s->type == JSON_ARR && s->len == 3 &&
                          !strcmp(json_get_str(line, "status", ""), "abnormal");
            }
            json_free(&line);
        }
        free(text);
    }
    CHECK(lines > 3 && bad == 0, "anatomies.jsonl: %d lines, %d bad or from another split", lines, bad);
    CHECK(lung_ok, "anatomies.jsonl: study 1 lung line lacks its region, 3 sentences or status");
    CHECK_EQ_INT(test_sh_output(&out, "'%s' export --db '%s' --format csv --out '%s' 2>/dev/null", bin, DBPATH,
             outdir), 2);
    buf_free(&out);
}

int main(void)
{
    FvErr e = {0};
    if (onto_load(&O, &e) || anatomy_meta_load(O, &META, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return 1;
    }
    build_fixture();
    RUN(test_align_writes_links_statuses_regions_flags_samples);
    RUN(test_rerun_keeps_annotators_values_and_is_idempotent);
    RUN(test_cli_align_show_export);
    test_remove(DIR_);
    anatomy_meta_free(&META);
    onto_free(&O);
    return test_finish();
}
