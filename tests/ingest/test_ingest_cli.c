/* Integration tests of `fvlm ingest`, `fvlm inspect` and `fvlm stats` on
 * the committed fixtures (tests/ingest/fixtures, made by make_fixtures.py)
 * and on archives of every kind built from them with mkarchive:
 *   - every orientation and layout of one study lands as the same tensor;
 *   - every archive format gives the same study;
 *   - no identifying value of the DICOM headers reaches the database;
 *   - every hostile input is one error line and one `errors` row, and the
 *     run goes on;
 *   - a re-run skips known members; kill -9 at any point then the same
 *     command again ends with the database of an uninterrupted run;
 *   - CT-RATE blank headers are rebuilt from metadata.csv. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "deid.h"
#include "fvlm_config.h"
#include "json.h"
#include "test.h"
#include "testdb.h"

static const char *bin, *mkarch;
static const char *test_key = "test-key-0123456";

/* A LIKE pattern's stored form: "%/" (kept) then the de-identified rest,
 * as ingest stores names (deid_path with the tests' key). Rotating static
 * buffers: valid for a few calls. */
static const char *dp(const char *pattern)
{
    static char bufs[8][1024];
    static int k;
    char *out = bufs[k++ % 8];
    const char *rest = pattern;
    size_t pre = 0;
    if (!strncmp(pattern, "%/", 2))
        pre = 2;
    else if (pattern[0] == '%')
        pre = 1;
    rest += pre;
    memcpy(out, pattern, pre);
    /* a trailing "%" (any member) stays a wildcard */
    char body[900];
    snprintf(body, sizeof body, "%s", rest);
    size_t bn = strlen(body);
    int wild = bn > 0 && body[bn - 1] == '%';
    if (wild)
        body[bn - 1] = '\0';
    FvErr e = {0};
    if (deid_path_to(test_key, body, out + pre, sizeof bufs[0] - pre - 1, &e))
        snprintf(out, sizeof bufs[0], "(deid failed: %.200s)", e.msg);
    else if (wild)
        strcat(out, "%");
    return out;
}
static char fx[1024], tmp[256];

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    Buf b = {0};
    char chunk[8192];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, k);
    fclose(f);
    if (n)
        *n = b.len;
    return b.data ? buf_steal(&b) : calloc(1, 1);
}

static int count_lines_with(const char *path, const char *needle)
{
    char *t = read_all(path, NULL);
    int n = 0;
    for (char *p = t; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(t);
    return n;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return 1;
    return 0;
}

/* The corpus content that must not depend on how a run went: every row of
 * the ingest tables without run ids and times. */
static void dump(const char *db, Buf *out)
{
    sql_file_rows(db, "SELECT id, path, member, sha256, size, kind, status, study_id FROM sources ORDER BY id",
         out);
    sql_file_rows(db, "SELECT id, study_key, patient_key, dataset, split FROM studies ORDER BY id", out);
    sql_file_rows(db,
         "SELECT id, study_id, sha256, source, src_dims, src_spacing, src_affine, src_orient, "
         "src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor, hu_min, hu_max, hu_mean, "
         "notes FROM volumes ORDER BY id",
         out);
    sql_file_rows(db, "SELECT * FROM masks ORDER BY id", out);
    sql_file_rows(db,
         "SELECT id, study_id, sha256, source, format, language, encoding, text, n_phi FROM "
         "reports ORDER BY id",
         out);
}

/* Sorted names in the db's tensor folder (and a count of temporary ones). */
static void tensor_files(const char *db, Buf *out, int *ntmp)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s.tensors", db);
    *ntmp = 0;
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[512];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 512) {
        if (de->d_name[0] == '.')
            continue;
        if (strstr(de->d_name, ".tmp."))
            (*ntmp)++;
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    for (int i = 0; i < n; i++) {
        buf_printf(out, "%s\n", names[i]);
        free(names[i]);
    }
}

static int ingest(const char *db, const char *args, const char *errfile)
{
    return test_sh("FVLM_DEID_KEY=test-key-0123456 '%s' ingest --quiet --db '%s' %s 2>'%s'", bin, db,
              args, errfile ? errfile : "/dev/null");
}

/* ---------------------------------------------------------------- tests */

static void test_every_orientation_and_layout_lands_as_the_same_tensor(void)
{
    const char *variants[] = {"nifti_ras", "nifti_lps", "nifti_zflip", "nifti_permuted",
                              "nifti2_big_float", "nifti_scaled_uint16", "nifti_pair",
                              "dicom_explicit", "dicom_implicit", "dicom_bigendian",
                              "dicom_deflated", "dicom_rle"};
    char first[128] = "", db[512], shard[128];
    int n = 0;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/same/%s", fx, variants[i]);
        struct stat st;
        if (stat(path, &st) != 0)
            continue; /* dicom_rle needs pydicom's RLE encoder when generated */
        snprintf(db, sizeof db, "%s/same_%s.db", tmp, variants[i]);
        char args[8192];
        snprintf(args, sizeof args, "'%s'", path);
        int rc = ingest(db, args, NULL);
        CHECK(rc == 0, "%s: exit %d", variants[i], rc);
        Buf b = {0};
        sql_file_rows(db, "SELECT shard FROM volumes", &b);
        snprintf(shard, sizeof shard, "%s", b.data ? b.data : "");
        buf_free(&b);
        CHECK(shard[0], "%s: no volume", variants[i]);
        if (!first[0])
            snprintf(first, sizeof first, "%s", shard);
        CHECK(!strcmp(shard, first), "%s lands as %s, %s as %s", variants[i], shard, variants[0],
              first);
        n++;
    }
    CHECK(n >= 11, "only %d variants found", n);
}

static const char *formats[] = {"tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip", "7z"};

static void test_every_archive_format_gives_the_same_study(void)
{
    char ref[4096] = "";
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        char arch[512], db[512];
        snprintf(arch, sizeof arch, "%s/study1.%s", tmp, formats[i]);
        int rc = test_sh("'%s' %s '%s' '%s/hospital/study1' %s", mkarch, formats[i], arch, fx,
                    i % 2 ? "--reverse" : "");
        CHECK(rc == 0, "mkarchive %s: exit %d", formats[i], rc);
        snprintf(db, sizeof db, "%s/fmt_%zu.db", tmp, i);
        char args[600];
        snprintf(args, sizeof args, "'%s'", arch);
        rc = ingest(db, args, NULL);
        CHECK(rc == 0, "ingest of %s: exit %d", formats[i], rc);
        Buf b = {0};
        sql_file_rows(db,
             "SELECT s.study_key, v.shard, m.shard, m.labels, r.n_phi, r.language FROM studies s "
             "JOIN volumes v ON v.study_id = s.id JOIN masks m ON m.study_id = s.id JOIN "
             "reports r ON r.study_id = s.id",
             &b);
        CHECK(b.len > 0, "%s: study without volume, mask and report", formats[i]);
        if (!ref[0])
            snprintf(ref, sizeof ref, "%s", b.data ? b.data : "");
        CHECK(b.data && !strcmp(b.data, ref), "%s differs:\n%s\nfrom\n%s", formats[i],
              b.data ? b.data : "", ref);
        CHECK(sql_file_int(db, "SELECT count(*) FROM errors") == 0, "%s: errors", formats[i]);
        buf_free(&b);
    }
    /* The DICOM study and its NIfTI version are the same tensor. */
    Buf v = {0}, w = {0};
    char db[512];
    snprintf(db, sizeof db, "%s/fmt_0.db", tmp);
    sql_file_rows(db, "SELECT notes FROM volumes", &v);
    CHECK(v.data && strstr(v.data, "scout") && strstr(v.data, "duplicate") &&
              strstr(v.data, "gap"),
          "notes do not say what was done: %s", v.data ? v.data : "");
    sql_file_rows(db, "SELECT labels FROM masks", &w);
    CHECK(w.data && !strcmp(w.data, "[5,10,51]\n"), "mask labels remapped to %s",
          w.data ? w.data : "");
    buf_free(&v);
    buf_free(&w);
}

static void test_no_phi_from_dicom_headers_reaches_the_database(void)
{
    char db[512];
    snprintf(db, sizeof db, "%s/phi.db", tmp);
    char args[8192];
    snprintf(args, sizeof args, "--set deid.key=a-secret-that-must-not-leak '%s/hospital' '%s/same/dicom_explicit'",
             fx, fx);
    int rc = test_sh("'%s' ingest --quiet --db '%s' %s 2>/dev/null", bin, db, args);
    CHECK(rc == 0, "exit %d", rc);
    Buf all = {0};
    const char *tables[] = {"runs", "errors", "sources", "studies", "volumes", "masks", "reports"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT * FROM %s", tables[i]);
        sql_file_rows(db, sql, &all);
    }
    /* and every shard's header */
    char dir[600];
    snprintf(dir, sizeof dir, "%s.tensors", db);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        size_t n;
        char *t = read_all(p, &n);
        if (t && n > 8) {
            uint64_t hl = 0;
            for (int k = 7; k >= 0; k--)
                hl = hl << 8 | (unsigned char)t[k];
            if (hl < n)
                buf_append(&all, t + 8, (size_t)hl);
        }
        free(t);
    }
    if (d)
        closedir(d);
    buf_putc(&all, '\0');
    const char *phi[] = {"DOE", "JOHN", "PID-8842731", "8842731", "19650304", "1965-03-04",
                         "ACC20210304", "SMITH", "ALICE", "Harbour", "867-5309",
                         "1.2.826.0.1.3680043.8.498.1001", "a-secret-that-must-not-leak"};
    for (size_t i = 0; i < sizeof phi / sizeof phi[0]; i++)
        CHECK(!contains_ci(all.data, phi[i]), "'%s' found in the database", phi[i]);
    CHECK(sql_file_int(db, "SELECT sum(n_phi) FROM reports") >= 5, "placeholders not counted");
    CHECK(sql_file_int(db, "SELECT count(*) FROM studies WHERE patient_key IS NOT NULL") == 1,
          "patient pseudonym missing");
    buf_free(&all);
}

/* Archive and folder names carry accession numbers and patient names:
 * nothing of them reaches the database file (sources, errors, volumes,
 * masks, reports, runs.args), only their keyed hashes. */
static void test_no_archive_or_folder_name_reaches_the_database_file(void)
{
    char dir[512], db[512], args[2400];
    snprintf(dir, sizeof dir, "%s/names", tmp);
    CHECK(test_sh("mkdir -p '%s/Wang_Wu_77001234' && cp -r '%s/hospital/study1/.' "
                  "'%s/Wang_Wu_77001234/' && '%s' tar.gz '%s/CT20231118002.tar.gz' "
                  "'%s/hospital/study1' && '%s' zip '%s/Zhang_San_0042.zip' '%s/same/dicom_explicit'",
                  dir, fx, dir, mkarch, dir, fx, mkarch, dir, fx) == 0,
          "fixtures");
    /* an input that fails names its archive in errors too */
    CHECK(test_sh("printf 'not an archive' > '%s/CT20231119007.zip'", dir) == 0, "junk");
    snprintf(db, sizeof db, "%s/names.db", tmp);
    snprintf(args, sizeof args,
             "'%s/CT20231118002.tar.gz' '%s/Zhang_San_0042.zip' '%s/Wang_Wu_77001234' "
             "'%s/CT20231119007.zip'",
             dir, dir, dir, dir);
    CHECK(ingest(db, args, NULL) == 0, "ingest");
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes") >= 1, "no volume stored");
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors") >= 1, "the junk archive is no error");
    char sql[600];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sources WHERE path LIKE '%s'",
             dp("%/CT20231118002.tar.gz"));
    CHECK(sql_file_int(db, sql) > 0, "sources do not hold the archive's keyed hash (%s)",
          dp("%/CT20231118002.tar.gz"));
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE member LIKE 'dicom/IM00%.dcm'") > 0,
          "generic member names are not kept as they are");
    /* The whole file, every page (and a WAL, if one is left). */
    const char *files[] = {"", "-wal"};
    for (int f = 0; f < 2; f++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", db, files[f]);
        size_t n = 0;
        char *bytes = read_all(p, &n);
        if (!bytes)
            continue;
        const char *ids[] = {"CT20231118002", "CT20231119007", "Zhang_San", "Wang_Wu",
                             "77001234", "ACC20210304", "names/"};
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
            CHECK(!memmem(bytes, n, ids[i], strlen(ids[i])), "'%s' found in %s", ids[i], p);
        free(bytes);
    }
    /* A corpus written before names were de-identified (names as given,
     * no marker): the next ingest rewrites them and rebuilds the file. */
    sqlite3 *h = NULL;
    char legacy[6000];
    snprintf(legacy, sizeof legacy,
             "UPDATE sources SET path = '%s/CT20231118002.tar.gz' WHERE path LIKE '%s'; "
             "UPDATE volumes SET source = '%s/Wang_Wu_77001234:dicom/'; "
             "UPDATE errors SET source = '%s/CT20231119007.zip', reason = 'cannot read "
             "%s/CT20231119007.zip'; "
             "UPDATE runs SET args = '[\"ingest\",\"%s/Zhang_San_0042.zip\"]'; "
             "DELETE FROM meta WHERE key = 'names_deidentified';",
             dir, dp("%/CT20231118002.tar.gz"), dir, dir, dir, dir);
    char *msg = NULL;
    CHECK(sqlite3_open(db, &h) == SQLITE_OK && sqlite3_exec(h, legacy, NULL, NULL, &msg) == SQLITE_OK,
          "legacy names: %s", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(h);
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE path LIKE '%CT20231118002%'") > 0,
          "the legacy names were not written");
    CHECK(ingest(db, args, NULL) == 0, "ingest over a legacy corpus");
    for (int f = 0; f < 2; f++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", db, files[f]);
        size_t n = 0;
        char *bytes = read_all(p, &n);
        if (!bytes)
            continue;
        const char *ids[] = {"CT20231118002", "CT20231119007", "Zhang_San", "Wang_Wu"};
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
            CHECK(!memmem(bytes, n, ids[i], strlen(ids[i])),
                  "'%s' found in %s after the legacy rewrite", ids[i], p);
        free(bytes);
    }
    CHECK(sql_file_int(db, "SELECT value FROM meta WHERE key = 'names_deidentified'") == 1,
          "the corpus is not marked");
}

/* De-identification fails closed: a report or a name that cannot be
 * de-identified (forced with FVLM_TEST_DEID_FAIL) is an error and nothing
 * of it is stored; a run without the fault then stores it. */
static void test_an_item_that_cannot_be_de_identified_is_an_error_and_not_stored(void)
{
    char dir[512], db[512], args[1200], err[600];
    snprintf(dir, sizeof dir, "%s/failclosed", tmp);
    CHECK(test_sh("mkdir -p '%s/study_a' '%s/study_b' && cp '%s/same/nifti_ras/ct.nii.gz' "
                  "'%s/study_a/' && cp '%s/same/nifti_lps/ct.nii.gz' '%s/study_b/' && "
                  "printf 'Findings: QUARANTINE no abnormality.\\n' > '%s/study_a/report.txt'",
                  dir, dir, fx, dir, fx, dir, dir) == 0,
          "fixtures");
    snprintf(db, sizeof db, "%s/failclosed.db", tmp);
    snprintf(err, sizeof err, "%s/failclosed.err", tmp);
    snprintf(args, sizeof args, "'%s'", dir);
    /* the report scrub fails */
    int rc = test_sh("FVLM_TEST_DEID_FAIL=QUARANTINE FVLM_DEID_KEY=%s '%s' ingest --quiet --db "
                     "'%s' %s 2>'%s'",
                     test_key, bin, db, args, err);
    CHECK(rc == 0, "run with a report scrub failure exits %d", rc);
    CHECK(sql_file_int(db, "SELECT count(*) FROM reports") == 0, "the unscrubbed report was stored");
    char sql[700];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM errors WHERE source LIKE '%s' AND reason LIKE "
             "'%%de-identification%%'",
             dp("%/study_a/report.txt"));
    CHECK(sql_file_int(db, sql) == 1, "no error row naming the report");
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE kind = 'report' AND status = "
                           "'failed'") == 1,
          "the report is not recorded as failed");
    CHECK(count_lines_with(err, "study_a/report.txt: de-identification") == 1,
          "the terminal line does not name the report");
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes") == 2, "the volumes were not stored");
    /* a name whose de-identification fails: its items are errors */
    char db2[600];
    snprintf(db2, sizeof db2, "%s/failclosed_name.db", tmp);
    rc = test_sh("FVLM_TEST_DEID_FAIL=study_b FVLM_DEID_KEY=%s '%s' ingest --quiet --db '%s' %s "
                 "2>'%s'",
                 test_key, bin, db2, args, err);
    CHECK(rc == 0, "run with a name scrub failure exits %d", rc);
    CHECK(sql_file_int(db2, "SELECT count(*) FROM volumes") == 1,
          "%lld volumes: the one whose name failed was stored",
          (long long)sql_file_int(db2, "SELECT count(*) FROM volumes"));
    CHECK(sql_file_int(db2, "SELECT count(*) FROM errors WHERE source LIKE '[name withheld%'") >= 1,
          "no error row for the item whose name failed");
    CHECK(count_lines_with(err, "study_b/ct.nii.gz") >= 1, "the terminal line does not name it");
    const char *files[] = {db, db2}, *withheld[] = {"QUARANTINE", "study_b"};
    for (int f = 0; f < 2; f++) {
        size_t n = 0;
        char *bytes = read_all(files[f], &n);
        CHECK(bytes && !memmem(bytes, n, withheld[f], strlen(withheld[f])),
              "%s holds '%s', which could not be de-identified", files[f], withheld[f]);
        free(bytes);
    }
    /* without the fault the same command stores what failed */
    CHECK(ingest(db, args, NULL) == 0 && ingest(db2, args, NULL) == 0, "re-runs");
    CHECK(sql_file_int(db, "SELECT count(*) FROM reports") == 1, "the report is not retried");
    CHECK(sql_file_int(db2, "SELECT count(*) FROM volumes") == 2, "the volume is not retried");
}

/* Every ignored member is named on the log with its reason (one info line
 * each), counted in the run's counts and kept in `sources`. */
static void test_ignored_members_are_named_with_their_reason_and_counted(void)
{
    char dir[512], db[512], err[600];
    snprintf(dir, sizeof dir, "%s/ignored", tmp);
    CHECK(test_sh("mkdir -p '%s/study1' && cp -r '%s/hospital/study1/.' '%s/study1/' && "
                  "printf 'x' > '%s/study1/notes.docx' && printf 'a,b\\n1,2\\n' > "
                  "'%s/labels.csv'",
                  dir, fx, dir, dir, dir) == 0,
          "fixtures");
    snprintf(db, sizeof db, "%s/ignored.db", tmp);
    snprintf(err, sizeof err, "%s/ignored.err", tmp);
    CHECK(test_sh("FVLM_DEID_KEY=%s '%s' ingest --db '%s' '%s' 2>'%s'", test_key, bin, db, dir,
                  err) == 0,
          "ingest");
    const char *lines[] = {"study1/notes.docx: ignored: not a CT volume",
                           "ignored/labels.csv: ignored: a table other than",
                           "study1/dicom/IM0007.dcm: ignored: a duplicate of another slice",
                           "study1/dicom/IM0008.dcm: ignored: a scout/localizer image"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        CHECK(count_lines_with(err, lines[i]) == 1, "no log line '%s'", lines[i]);
    int64_t n = sql_file_int(db, "SELECT count(*) FROM sources WHERE status = 'ignored'");
    CHECK(n == 4, "%lld ignored sources, expected 4", (long long)n);
    CHECK(sql_file_int(db, "SELECT json_extract(counts, '$.ignored') FROM runs") == n,
          "the run's counts do not hold the ignored members");
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE status = 'ignored' AND reason IS "
                           "NOT NULL") == n,
          "ignored sources without their reason");
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE reason = 'a scout/localizer "
                           "image'") == 1,
          "the scout's reason is not kept in sources");
    CHECK(count_lines_with(err, ": ignored: ") == n, "%d ignored lines for %lld ignored members",
          count_lines_with(err, ": ignored: "), (long long)n);
}

/* Mask or CT by content, names only breaking ties: a CT in a totalseg/
 * folder is a CT volume, a label volume in a ct/ folder is a mask. */
static void test_mask_or_ct_is_decided_by_content_not_folder_name(void)
{
    char dir[512], db[512], args[600];
    snprintf(dir, sizeof dir, "%s/bycontent", tmp);
    CHECK(test_sh("mkdir -p '%s/study_x/totalseg' '%s/study_y/ct' && "
                  "cp '%s/same/nifti_ras/ct.nii.gz' '%s/study_x/totalseg/ct.nii.gz' && "
                  "cp '%s/hospital/study1/seg.nii.gz' '%s/study_x/seg.nii.gz' && "
                  "cp '%s/same/nifti_lps/ct.nii.gz' '%s/study_y/image.nii.gz' && "
                  "cp '%s/hospital/study1/seg.nii.gz' '%s/study_y/ct/volume2.nii.gz'",
                  dir, dir, fx, dir, fx, dir, fx, dir, fx, dir) == 0,
          "fixtures");
    snprintf(db, sizeof db, "%s/bycontent.db", tmp);
    snprintf(args, sizeof args, "'%s'", dir);
    CHECK(ingest(db, args, NULL) == 0, "ingest");
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors") == 0, "%lld errors",
          (long long)sql_file_int(db, "SELECT count(*) FROM errors"));
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes") == 2, "the CT in totalseg/ is no volume");
    CHECK(sql_file_int(db, "SELECT count(*) FROM masks m JOIN volumes v ON v.id = m.volume_id") == 2,
          "the mask in ct/ is not attached as a mask");
    char sql[600];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sources WHERE kind = 'mask' AND path LIKE '%s'",
             dp("%/study_y/ct/volume2.nii.gz"));
    CHECK(sql_file_int(db, sql) == 1, "the mask in ct/ is not recorded as a mask");
}

/* A copy of a NIfTI fixture with scl_slope and scl_inter set (float32 at
 * bytes 112 and 116, little-endian like the fixture). */
static int nifti_with_scaling(const char *src, const char *dst, float slope, float inter)
{
    size_t n;
    char *b = read_all(src, &n);
    if (!b || n < 348) {
        free(b);
        return -1;
    }
    memcpy(b + 112, &slope, 4);
    memcpy(b + 116, &inter, 4);
    FILE *f = fopen(dst, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f)
        ok &= fclose(f) == 0;
    free(b);
    return ok ? 0 : -1;
}

/* Scaling that overflows, or leaves no value in the HU clip range, is an
 * error naming why: never a constant volume stored without a word. */
static void test_scaling_that_is_not_hu_is_an_error_not_a_constant_volume(void)
{
    char dir[512], src[1200], a[700], b[700], db[600], args[1600];
    snprintf(dir, sizeof dir, "%s/scaling", tmp);
    CHECK(test_sh("mkdir -p '%s/overflow' '%s/offset'", dir, dir) == 0, "mkdir");
    snprintf(src, sizeof src, "%s/nifti/dtype_int16.nii", fx);
    snprintf(a, sizeof a, "%s/overflow/ct.nii", dir);
    snprintf(b, sizeof b, "%s/offset/ct.nii", dir);
    CHECK(nifti_with_scaling(src, a, 1e38f, 0) == 0 && nifti_with_scaling(src, b, 1, 1e5f) == 0,
          "fixtures");
    snprintf(db, sizeof db, "%s/scaling.db", tmp);
    snprintf(args, sizeof args, "'%s' '%s'", a, b);
    CHECK(ingest(db, args, NULL) == 0, "ingest");
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes") == 0, "a volume was stored");
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors WHERE reason LIKE '%scl_slope = 1e+38%'") ==
              1,
          "the overflow is not one error naming scl_slope");
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors WHERE reason LIKE "
                           "'%outside ingest.hu_clip%one constant%'") == 1,
          "the offset volume is not one error saying it would be constant");
}

/* inspect and ingest say the same of a series of localizer images: both
 * skip it (series_is_scout). */
static void test_inspect_and_ingest_agree_on_a_localizer_series(void)
{
    char dir[512], db[600], out[600], args[600];
    snprintf(dir, sizeof dir, "%s/localizer/study", tmp);
    CHECK(test_sh("mkdir -p '%s' && cp '%s/hospital/study1/dicom/IM0008.dcm' '%s/IM0001.dcm' && "
                  "cp '%s/hospital/study1/dicom/IM0008.dcm' '%s/IM0002.dcm'",
                  dir, fx, dir, fx, dir) == 0,
          "fixtures");
    snprintf(out, sizeof out, "%s/localizer.json", tmp);
    CHECK(test_sh("'%s' inspect '%s' > '%s'", bin, dir, out) == 0, "inspect");
    char *t = read_all(out, NULL);
    CHECK(t && strstr(t, "\"skipped\": \"only scout/localizer images") &&
              !strstr(t, "\"slices_used\""),
          "inspect does not say the series is skipped: %s", t ? t : "");
    free(t);
    snprintf(db, sizeof db, "%s/localizer.db", tmp);
    snprintf(args, sizeof args, "'%s'", dir);
    CHECK(ingest(db, args, NULL) == 0, "ingest");
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes") == 0, "ingest stored the localizers");
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE status = 'ignored'") == 2,
          "ingest did not skip both localizers");
}

/* The corpus as a set of facts, independent of row ids and of which run
 * wrote what: sorted rows, studies named by their keys. */
static void dump_facts(const char *db, Buf *out)
{
    sql_file_rows(db,
                  "SELECT s.path, s.member, s.sha256, s.size, s.kind, s.status, t.study_key "
                  "FROM sources s LEFT JOIN studies t ON t.id = s.study_id ORDER BY 1, 2, 3, 5",
                  out);
    sql_file_rows(db, "SELECT study_key, patient_key, dataset, split FROM studies ORDER BY 1", out);
    sql_file_rows(db,
                  "SELECT t.study_key, v.sha256, v.source, v.src_dims, v.src_affine, v.shard, "
                  "v.hu_min, v.hu_max, v.notes FROM volumes v JOIN studies t ON t.id = "
                  "v.study_id ORDER BY 1",
                  out);
    sql_file_rows(db,
                  "SELECT t.study_key, m.sha256, m.source, m.shard, m.labels, m.resampled FROM "
                  "masks m JOIN studies t ON t.id = m.study_id ORDER BY 1",
                  out);
    sql_file_rows(db,
                  "SELECT t.study_key, r.sha256, r.source, r.format, r.language, r.text, r.n_phi "
                  "FROM reports r JOIN studies t ON t.id = r.study_id ORDER BY 1",
                  out);
}

/* Two `fvlm ingest` on one corpus at once lose nothing: on disjoint and on
 * overlapping inputs the corpus holds the same facts as one run over all
 * of them (three tries each, to give races a chance). */
static void test_two_ingests_at_once_give_the_corpus_of_one_run(void)
{
    char ref[512], all[8000], a[8000], b[8000];
    snprintf(ref, sizeof ref, "%s/par_ref.db", tmp);
    /* (no study comes from two sources: which of two volumes of one study
     * is kept is the order's choice, in one run as in two) */
    snprintf(all, sizeof all, "'%s/hospital' '%s/reports' '%s/ctrate' '%s/perclass' "
                              "'%s/same/nifti_ras' '%s/nifti'",
             fx, fx, fx, fx, fx, fx);
    CHECK(ingest(ref, all, NULL) == 0, "reference run");
    Buf want = {0};
    dump_facts(ref, &want);
    for (int overlap = 0; overlap < 2; overlap++) {
        if (overlap) {
            snprintf(a, sizeof a, "'%s/hospital' '%s/reports' '%s/ctrate' '%s/perclass'", fx, fx,
                     fx, fx);
            snprintf(b, sizeof b, "'%s/ctrate' '%s/perclass' '%s/same/nifti_ras' "
                                  "'%s/nifti' '%s/hospital'",
                     fx, fx, fx, fx, fx);
        } else {
            snprintf(a, sizeof a, "'%s/hospital' '%s/reports' '%s/ctrate'", fx, fx, fx);
            snprintf(b, sizeof b, "'%s/perclass' '%s/same/nifti_ras' '%s/nifti'", fx, fx, fx);
        }
        for (int k = 0; k < 3; k++) {
            char db[600];
            snprintf(db, sizeof db, "%s/par_%d_%d.db", tmp, overlap, k);
            int rc = test_sh("(FVLM_DEID_KEY=%s '%s' ingest --quiet --db '%s' %s 2>/dev/null; "
                             "echo $? > '%s.a') & (FVLM_DEID_KEY=%s '%s' ingest --quiet --db '%s' "
                             "%s 2>/dev/null; echo $? > '%s.b') & wait",
                             test_key, bin, db, a, db, test_key, bin, db, b, db);
            char fa[700], fb[700];
            snprintf(fa, sizeof fa, "%s.a", db);
            snprintf(fb, sizeof fb, "%s.b", db);
            char *ra = read_all(fa, NULL), *rb = read_all(fb, NULL);
            CHECK(rc == 0 && ra && rb && atoi(ra) == 0 && atoi(rb) == 0,
                  "overlap %d try %d: exits %s %s", overlap, k, ra ? ra : "?", rb ? rb : "?");
            free(ra);
            free(rb);
            Buf got = {0};
            dump_facts(db, &got);
            CHECK(got.data && want.data && !strcmp(got.data, want.data),
                  "overlap %d try %d: the corpus differs from one run's", overlap, k);
            if (got.data && want.data && strcmp(got.data, want.data))
                fprintf(stderr, "got:\n%s\nwant:\n%s\n", got.data, want.data);
            buf_free(&got);
        }
    }
    buf_free(&want);
}

/* Multi-frame DICOM (fixtures/multiframe, made by make_multiframe.py):
 * Enhanced CT is a volume of all its frames (per-frame positions, shared
 * or per-frame rescale); RT Dose is one error saying it is not a CT
 * volume. Never one frame kept silently. */
static void test_multiframe_enhanced_ct_is_a_volume_and_rt_dose_an_error(void)
{
    char db[512], args[1200];
    snprintf(db, sizeof db, "%s/multiframe.db", tmp);
    snprintf(args, sizeof args, "'%s/multiframe'", fx);
    CHECK(ingest(db, args, NULL) == 0, "ingest");
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes WHERE src_dims = '[8,6,5]'") == 2,
          "the enhanced CTs are not volumes of 5 frames");
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes") == 2, "%lld volumes",
          (long long)sql_file_int(db, "SELECT count(*) FROM volumes"));
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors WHERE reason LIKE 'not a CT volume "
                           "(modality RTDOSE, SOP class 1.2.840.10008.5.1.4.1.1.481.2%'") == 1,
          "RT Dose is not one error naming its modality and SOP class");
}

static void test_every_bad_input_is_one_error_and_the_run_goes_on(void)
{
    char db[512], err[512], good[512], trunc[512], junk[512], badarch[512];
    snprintf(db, sizeof db, "%s/bad.db", tmp);
    snprintf(err, sizeof err, "%s/bad.err", tmp);
    snprintf(good, sizeof good, "%s/full.tar.gz", tmp);
    snprintf(trunc, sizeof trunc, "%s/cut.tar.gz", tmp);
    snprintf(junk, sizeof junk, "%s/junk.zip", tmp);
    snprintf(badarch, sizeof badarch, "%s/badcases.tar.xz", tmp);
    CHECK(test_sh("'%s' tar.gz '%s' '%s/same/dicom_implicit'", mkarch, good, fx) == 0, "mkarchive");
    size_t n;
    char *t = read_all(good, &n);
    FILE *f = fopen(trunc, "wb");
    if (f && t) {
        fwrite(t, 1, n / 2, f);
        fclose(f);
    }
    free(t);
    f = fopen(junk, "wb");
    if (f) {
        for (int i = 0; i < 5000; i++)
            fputc((i * 7919) & 0xFF, f);
        fclose(f);
    }
    CHECK(test_sh("'%s' tar.xz '%s' '%s/bad'", mkarch, badarch, fx) == 0, "mkarchive bad");
    char args[8192];
    snprintf(args, sizeof args, "--set ingest.max_voxels=1000000 '%s/bad' '%s' '%s' '%s'", fx,
             trunc, junk, badarch);
    int rc = ingest(db, args, err);
    CHECK(rc == 0, "a run with bad items exits %d, expected 0", rc);
    int64_t nerr = sql_file_int(db, "SELECT count(*) FROM errors");
    CHECK(nerr == count_lines_with(err, "fvlm: error:"),
          "%lld errors rows but %d error lines on stderr", (long long)nerr,
          count_lines_with(err, "fvlm: error:"));
    struct {
        const char *source_like, *member_like, *reason;
    } want[] = {
        {"%/bad/negative_dim/ct.nii", "", "dim[2] = -3 is not positive"},
        {"%/bad/absurd_dims/ct.nii", "", "over the limit"},
        {"%/bad/vox_offset_past_end/ct.nii", "", "past the end"},
        {"%/bad/unknown_datatype/ct.nii", "", "unknown datatype 999"},
        {"%/bad/truncated_gzip/ct.nii.gz", "", "truncated gzip stream"},
        {"%/bad/corrupt_gzip/ct.nii.gz", "", "corrupt gzip stream"},
        {"%/bad/dicom_no_pixels/IM0001.dcm", "", "without pixel data"},
        {"%/bad/dicom_truncated/IM0001.dcm", "", "truncated"},
        {"%/bad/series_inconsistent", "dicom/%", "inconsistent series"},
        {"%/bad/over_limit/ct.nii.gz", "", "ingest.max_voxels"},
        {"%/bad/report_unknown_encoding/report.txt", "", "unknown encoding"},
        {"%/cut.tar.gz", "%", "truncated"},
        {"%/junk.zip", "", "archive"},
        {"%/badcases.tar.xz", "negative_dim/ct.nii", "dim[2] = -3"},
        {"%/badcases.tar.xz", "report_unknown_encoding/report.txt", "unknown encoding"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM errors WHERE source LIKE '%s' AND coalesce(member, '') "
                 "LIKE '%s' AND reason LIKE '%%%s%%'",
                 dp(want[i].source_like), dp(want[i].member_like), want[i].reason);
        int64_t k = sql_file_int(db, sql);
        CHECK(k == 1, "%lld errors for %s %s '%s'", (long long)k, want[i].source_like,
              want[i].member_like, want[i].reason);
    }
    /* The terminal line names the real file; the row, its de-identified form. */
    CHECK(count_lines_with(err, "/bad/negative_dim/ct.nii: ") == 1,
          "the error line does not name the file as given");
    /* The good study of the folder and of the archive were stored. */
    char sql[600];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM volumes WHERE source LIKE '%s'",
             dp("%/good_one/ct.nii.gz"));
    CHECK(sql_file_int(db, sql) == 1, "good study in the bad folder not stored");
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE status = 'failed'") > 10, "failed members");
    CHECK(sql_file_int(db, "SELECT status FROM runs") == 0 || 1, "run recorded");
    Buf st = {0};
    sql_file_rows(db, "SELECT status, n_errors FROM runs", &st);
    CHECK(st.data && !strncmp(st.data, "ok|", 3), "run status %s", st.data ? st.data : "");
    buf_free(&st);
    rc = test_sh("FVLM_DEID_KEY=test-key-0123456 '%s' ingest --quiet --strict --db '%s' '%s/bad' "
            "2>/dev/null",
            bin, db, fx);
    CHECK(rc == 1, "--strict with failed items exits %d, expected 1", rc);
}

static void test_a_rerun_skips_known_members_and_adds_nothing(void)
{
    char db[512], args[8192];
    snprintf(db, sizeof db, "%s/rerun.db", tmp);
    snprintf(args, sizeof args, "'%s/hospital' '%s/reports' '%s/ctrate'", fx, fx, fx);
    CHECK(ingest(db, args, NULL) == 0, "first run");
    Buf a = {0}, b = {0};
    dump(db, &a);
    CHECK(ingest(db, args, NULL) == 0, "second run");
    dump(db, &b);
    CHECK(a.data && b.data && !strcmp(a.data, b.data), "second run changed the corpus");
    CHECK(sql_file_int(db, "SELECT json_extract(counts, '$.known') = json_extract(counts, '$.members') "
                 "FROM runs WHERE id = 2") == 1,
          "second run did not skip every member");
    CHECK(sql_file_int(db, "SELECT json_extract(counts, '$.volumes') FROM runs WHERE id = 2") == 0,
          "second run stored volumes again");
    buf_free(&a);
    buf_free(&b);
}

/* A member is its study and its bytes: two studies holding a byte-identical
 * template report and one shared mask file each keep their copy; a re-run
 * skips everything and changes nothing. */
static void test_two_studies_with_identical_report_and_mask_each_keep_their_copy(void)
{
    char dir[512], db[512], args[1200];
    snprintf(dir, sizeof dir, "%s/twins", tmp);
    const char *studies[] = {"nifti_ras", "nifti_lps"};
    for (int i = 0; i < 2; i++)
        CHECK(test_sh("mkdir -p '%s/study_%c' && cp '%s/same/%s/ct.nii.gz' '%s/study_%c/' && "
                      "printf 'Findings: No abnormality.\\nImpression: Normal chest CT.\\n' "
                      "> '%s/study_%c/report.txt' && cp '%s/hospital/study1/seg.nii.gz' "
                      "'%s/study_%c/seg.nii.gz'",
                      dir, 'a' + i, fx, studies[i], dir, 'a' + i, dir, 'a' + i, fx, dir,
                      'a' + i) == 0,
              "copy study %d", i);
    snprintf(db, sizeof db, "%s/twins.db", tmp);
    snprintf(args, sizeof args, "'%s'", dir);
    CHECK(ingest(db, args, NULL) == 0, "first run");
    CHECK(sql_file_int(db, "SELECT count(*) FROM studies") == 2, "two studies");
    CHECK(sql_file_int(db, "SELECT count(*) FROM reports") == 2,
          "%lld reports, expected one per study",
          (long long)sql_file_int(db, "SELECT count(*) FROM reports"));
    CHECK(sql_file_int(db, "SELECT count(*) FROM masks") == 2, "%lld masks, expected one per study",
          (long long)sql_file_int(db, "SELECT count(*) FROM masks"));
    CHECK(sql_file_int(db, "SELECT count(DISTINCT study_id) FROM sources WHERE kind = 'report' "
                           "AND status = 'ok'") == 2,
          "the report's sources do not name both studies");
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors") == 0, "errors in the first run");
    Buf a = {0}, b = {0};
    dump(db, &a);
    CHECK(ingest(db, args, NULL) == 0, "second run");
    dump(db, &b);
    CHECK(a.data && b.data && !strcmp(a.data, b.data), "the second run changed the corpus");
    CHECK(sql_file_int(db, "SELECT json_extract(counts, '$.known') = json_extract(counts, "
                           "'$.members') FROM runs WHERE id = 2") == 1,
          "the second run did not skip every member");
    buf_free(&a);
    buf_free(&b);
}

static void test_kill_9_then_the_same_command_ends_as_an_uninterrupted_run(void)
{
    char ref[512], args[8192];
    snprintf(ref, sizeof ref, "%s/ref.db", tmp);
    snprintf(args, sizeof args, "'%s/hospital' '%s/perclass' '%s/reports' '%s/ctrate' '%s/bad' "
                                "'%s/nifti'",
             fx, fx, fx, fx, fx, fx);
    CHECK(ingest(ref, args, NULL) == 0, "reference run");
    Buf want = {0}, wfiles = {0};
    int ntmp;
    dump(ref, &want);
    tensor_files(ref, &wfiles, &ntmp);
    const char *points[] = {"shard:1", "shard:3", "shard:6", "commit:1", "commit:4", "commit:9",
                            "commit:15"};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        char db[512];
        snprintf(db, sizeof db, "%s/crash%zu.db", tmp, i);
        int rc = test_sh("FVLM_TEST_CRASH=%s FVLM_DEID_KEY=test-key-0123456 '%s' ingest --quiet "
                    "--db '%s' %s 2>/dev/null",
                    points[i], bin, db, args);
        CHECK(rc == 128 + 9, "%s: the run was not killed (exit %d)", points[i], rc);
        rc = ingest(db, args, NULL);
        CHECK(rc == 0, "%s: rerun exit %d", points[i], rc);
        Buf got = {0}, files = {0};
        dump(db, &got);
        tensor_files(db, &files, &ntmp);
        CHECK(got.data && want.data && !strcmp(got.data, want.data),
              "%s: the corpus differs from an uninterrupted run", points[i]);
        CHECK(files.data && wfiles.data && !strcmp(files.data, wfiles.data),
              "%s: tensor files differ (orphans?):\n%s\nexpected\n%s", points[i],
              files.data ? files.data : "", wfiles.data ? wfiles.data : "");
        CHECK(ntmp == 0, "%s: %d temporary files left", points[i], ntmp);
        CHECK(sql_file_int(db, "SELECT count(*) FROM runs WHERE status = 'interrupted'") == 1,
              "%s: the killed run is not marked interrupted", points[i]);
        buf_free(&got);
        buf_free(&files);
    }
    buf_free(&want);
    buf_free(&wfiles);
}

static void test_ctrate_blank_headers_are_rebuilt_from_metadata(void)
{
    char db[512], args[8192], ras[512];
    snprintf(db, sizeof db, "%s/ctrate.db", tmp);
    snprintf(args, sizeof args, "'%s/ctrate'", fx);
    CHECK(ingest(db, args, NULL) == 0, "ingest");
    snprintf(ras, sizeof ras, "%s/same_nifti_ras.db", tmp);
    Buf a = {0}, b = {0};
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT v.shard FROM volumes v JOIN sources s ON s.study_id = v.study_id AND s.status "
             "= 'ok' AND s.kind = 'nifti' WHERE s.path LIKE '%s'",
             dp("%/train_1_a_1.nii.gz"));
    sql_file_rows(db, sql, &a);
    sql_file_rows(ras, "SELECT shard FROM volumes", &b);
    CHECK(a.data && b.data && !strcmp(a.data, b.data),
          "blank-header volume %s is not the phantom's tensor %s", a.data ? a.data : "-",
          b.data ? b.data : "-");
    CHECK(sql_file_int(db, "SELECT count(*) FROM volumes") == 2, "train_1_a and valid_3_b volumes");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM sources WHERE path LIKE '%s' AND status = 'ignored'",
             dp("%/train_1_a_2.nii.gz"));
    CHECK(sql_file_int(db, sql) == 1, "second reconstruction not ignored");
    CHECK(sql_file_int(db, "SELECT count(*) FROM reports WHERE format = 'ctrate_csv'") == 2, "reports");
    CHECK(sql_file_int(db, "SELECT count(*) FROM reports WHERE text LIKE 'Findings: %' AND text LIKE "
                 "'%Impression: %'") == 2,
          "composition");
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors WHERE member = 'row 4'") == 1, "bogus row");
    CHECK(sql_file_int(db, "SELECT count(*) FROM masks") == 1, "mask");
    CHECK(sql_file_int(db, "SELECT count(*) FROM studies WHERE dataset = 'ctrate' AND split = 'valid'") ==
              1,
          "valid split from the name");
    buf_free(&a);
    buf_free(&b);
}

/* CT-RATE volumes and masks are stored as they are met; a mask met before
 * its volume (an archive or folder walked masks/ first) waits for the end
 * of the run instead of failing, so one run attaches it. */
static void test_a_mask_met_before_its_volume_is_attached_in_the_same_run(void)
{
    char arch[512], db[512], args[1100], err[600];
    for (int reverse = 0; reverse < 2; reverse++) {
        /* Sorted, masks/ comes before train/; reversed, after. */
        snprintf(arch, sizeof arch, "%s/ctrate_order_%d.tar", tmp, reverse);
        CHECK(test_sh("'%s' tar '%s' '%s/ctrate' %s", mkarch, arch, fx, reverse ? "--reverse" : "") ==
                  0,
              "mkarchive");
        snprintf(db, sizeof db, "%s/ctrate_order_%d.db", tmp, reverse);
        snprintf(args, sizeof args, "'%s'", arch);
        snprintf(err, sizeof err, "%s/ctrate_order_%d.err", tmp, reverse);
        CHECK(ingest(db, args, err) == 0, "ingest (reverse %d)", reverse);
        CHECK(sql_file_int(db, "SELECT count(*) FROM masks m JOIN volumes v ON v.id = m.volume_id") == 1,
              "reverse %d: the mask is not attached to its volume in one run", reverse);
        CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE kind = 'mask' AND status = 'ok'") == 1,
              "reverse %d: the mask's source is not recorded once as ok", reverse);
        CHECK(sql_file_int(db, "SELECT count(*) FROM errors WHERE reason LIKE '%no CT volume%'") == 0,
              "reverse %d: an error row for a mask that was attached", reverse);
        CHECK(count_lines_with(err, "no CT volume") == 0,
              "reverse %d: an error line for a mask that was attached", reverse);
        CHECK(sql_file_int(db, "SELECT json_extract(counts, '$.members') FROM runs WHERE id = 1") == 7,
              "reverse %d: members counted twice", reverse);
        CHECK(ingest(db, args, NULL) == 0, "second run");
        CHECK(sql_file_int(db, "SELECT json_extract(counts, '$.known') = json_extract(counts, '$.members') "
                     "FROM runs WHERE id = 2") == 1,
              "reverse %d: the second run found new members", reverse);
    }
    /* A mask whose volume never comes fails once, at the end, as before. */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/masks_alone", tmp);
    CHECK(test_sh("mkdir -p '%s/masks' && cp '%s/ctrate/masks/train_1_a_1.nii.gz' '%s/masks/'", dir, fx,
             dir) == 0,
          "copy");
    snprintf(db, sizeof db, "%s/masks_alone.db", tmp);
    snprintf(args, sizeof args, "'%s'", dir);
    snprintf(err, sizeof err, "%s/masks_alone.err", tmp);
    CHECK(ingest(db, args, err) == 0, "ingest of a mask alone");
    CHECK(sql_file_int(db, "SELECT count(*) FROM errors WHERE reason LIKE '%no CT volume%'") == 1,
          "a mask without its volume is not one error row");
    CHECK(count_lines_with(err, "no CT volume") == 1,
          "a mask without its volume is not one error line");
    CHECK(sql_file_int(db, "SELECT count(*) FROM sources WHERE kind = 'mask' AND status = 'failed'") == 1,
          "the lone mask is not recorded as failed (to be retried)");
}

static void test_a_missing_key_is_a_usage_error_that_says_how_to_set_it(void)
{
    char err[512];
    snprintf(err, sizeof err, "%s/nokey.err", tmp);
    int rc = test_sh("env -u FVLM_DEID_KEY '%s' ingest --db '%s/nokey.db' '%s/reports' 2>'%s'", bin,
                tmp, fx, err);
    CHECK(rc == 2, "exit %d, expected 2", rc);
    CHECK(count_lines_with(err, "FVLM_DEID_KEY") == 1, "message does not say how to set it");
}

static void test_inspect_and_stats_print_json(void)
{
    char arch[512], out[512];
    snprintf(arch, sizeof arch, "%s/study1.tar.gz", tmp);
    snprintf(out, sizeof out, "%s/inspect.json", tmp);
    int rc = test_sh("'%s' inspect '%s:seg.nii.gz' > '%s'", bin, arch, out);
    CHECK(rc == 0, "inspect archive:member exit %d", rc);
    char *t = read_all(out, NULL);
    JsonValue *v = NULL;
    FvErr e = {0};
    CHECK(t && json_parse(t, strlen(t), &v, &e) == 0, "inspect JSON: %s", e.msg);
    if (v) {
        const JsonValue *items = json_get(v, "items");
        CHECK(items && items->len == 1, "one item");
        if (items && items->len == 1) {
            const JsonValue *it = &items->items[0];
            CHECK_STR(json_get_str(it, "kind", ""), "mask");
            CHECK_EQ_INT(json_get_int(it, "label_table", 0), 3);
            const JsonValue *g = json_get(it, "geometry");
            CHECK(g && !strcmp(json_get_str(g, "orientation", ""), "RAS"), "orientation");
        }
        json_free(&v);
    }
    free(t);
    rc = test_sh("'%s' inspect '%s:dicom/' > '%s'", bin, arch, out);
    t = read_all(out, NULL);
    CHECK(rc == 0 && t && strstr(t, "\"dicom_series\"") && strstr(t, "scouts") &&
              strstr(t, "\"orientation\": \"LPS\""),
          "inspect of a DICOM folder in an archive");
    free(t);
    rc = test_sh("'%s' inspect '%s:no/such/member' > /dev/null 2>&1", bin, arch);
    CHECK(rc == 1, "missing member exits %d", rc);
    char db[512];
    snprintf(db, sizeof db, "%s/fmt_1.db", tmp);
    rc = test_sh("'%s' stats --json --db '%s' > '%s'", bin, db, out);
    t = read_all(out, NULL);
    CHECK(rc == 0 && t && json_parse(t, strlen(t), &v, &e) == 0, "stats JSON");
    if (rc == 0 && v) {
        const JsonValue *s = json_get(v, "studies");
        CHECK(s && json_get_int(s, "complete", 0) == 1, "one complete study");
        json_free(&v);
    }
    free(t);
}

int main(void)
{
    bin = getenv("FVLM_BIN");
    mkarch = getenv("MKARCHIVE");
    const char *root = getenv("FVLM_SOURCE_ROOT");
    if (!bin || !mkarch || !root) {
        fprintf(stderr, "FVLM_BIN, MKARCHIVE and FVLM_SOURCE_ROOT must be set\n");
        return 1;
    }
    snprintf(fx, sizeof fx, "%s/tests/ingest/fixtures", root);
    snprintf(tmp, sizeof tmp, "/tmp/fvlm-ingest-cli-XXXXXX");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_every_orientation_and_layout_lands_as_the_same_tensor);
    RUN(test_every_archive_format_gives_the_same_study);
    RUN(test_no_phi_from_dicom_headers_reaches_the_database);
    RUN(test_no_archive_or_folder_name_reaches_the_database_file);
    RUN(test_an_item_that_cannot_be_de_identified_is_an_error_and_not_stored);
    RUN(test_ignored_members_are_named_with_their_reason_and_counted);
    RUN(test_mask_or_ct_is_decided_by_content_not_folder_name);
    RUN(test_scaling_that_is_not_hu_is_an_error_not_a_constant_volume);
    RUN(test_inspect_and_ingest_agree_on_a_localizer_series);
    RUN(test_two_ingests_at_once_give_the_corpus_of_one_run);
    RUN(test_multiframe_enhanced_ct_is_a_volume_and_rt_dose_an_error);
    RUN(test_every_bad_input_is_one_error_and_the_run_goes_on);
    RUN(test_a_rerun_skips_known_members_and_adds_nothing);
    RUN(test_two_studies_with_identical_report_and_mask_each_keep_their_copy);
    RUN(test_kill_9_then_the_same_command_ends_as_an_uninterrupted_run);
    RUN(test_ctrate_blank_headers_are_rebuilt_from_metadata);
    RUN(test_a_mask_met_before_its_volume_is_attached_in_the_same_run);
    RUN(test_a_missing_key_is_a_usage_error_that_says_how_to_set_it);
    RUN(test_inspect_and_stats_print_json);
    int rc = test_finish();
    if (rc == 0)
        test_remove(tmp);
    else
        fprintf(stderr, "files kept in %s\n", tmp);
    return rc;
}
