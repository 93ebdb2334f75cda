#include "summary.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"

/* Rows of a query as a JSON object {first column: second column}. */
static int put_pairs(Db *db, JsonW *w, const char *key, const char *sql, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st, sql, e))
        return -1;
    jw_key(w, key);
    jw_obj(w);
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        jw_key(w, k ? k : "(null)");
        if (sqlite3_column_type(st, 1) == SQLITE_FLOAT)
            jw_num(w, sqlite3_column_double(st, 1));
        else
            jw_int(w, sqlite3_column_int64(st, 1));
    }
    sqlite3_finalize(st);
    jw_obj_end(w);
    return rc < 0 ? -1 : 0;
}

static int put_int(Db *db, JsonW *w, const char *key, const char *sql, FvErr *e)
{
    int64_t v;
    if (db_query_int(db, e, &v, NULL, sql, NULL))
        return -1;
    jw_key(w, key);
    jw_int(w, v);
    return 0;
}

/* min, median, max of an integer column. */
static int put_spread(Db *db, JsonW *w, const char *key, const char *col, FvErr *e)
{
    char sql[256];
    int64_t n, mn, mx, med;
    snprintf(sql, sizeof sql, "SELECT count(%s) FROM volumes", col);
    if (db_query_int(db, e, &n, NULL, sql, NULL))
        return -1;
    snprintf(sql, sizeof sql, "SELECT min(%s) FROM volumes", col);
    if (db_query_int(db, e, &mn, NULL, sql, NULL))
        return -1;
    snprintf(sql, sizeof sql, "SELECT max(%s) FROM volumes", col);
    if (db_query_int(db, e, &mx, NULL, sql, NULL))
        return -1;
    snprintf(sql, sizeof sql, "SELECT %s FROM volumes ORDER BY %s LIMIT 1 OFFSET ?", col, col);
    if (db_query_int(db, e, &med, NULL, sql, "i", n / 2))
        return -1;
    jw_key(w, key);
    jw_arr(w);
    jw_int(w, mn);
    jw_int(w, med);
    jw_int(w, mx);
    jw_arr_end(w);
    return 0;
}

int corpus_summary(Db *db, Buf *json, FvErr *e)
{
    JsonW w;
    jw_init(&w, json, 1);
    jw_obj(&w);
    jw_key(&w, "studies");
    jw_obj(&w);
    if (put_int(db, &w, "total", "SELECT count(*) FROM studies", e) ||
        put_pairs(db, &w, "by_split", "SELECT split, count(*) FROM studies GROUP BY 1 ORDER BY 1",
                  e) ||
        put_pairs(db, &w, "by_dataset",
                  "SELECT coalesce(dataset, ''), count(*) FROM studies GROUP BY 1 ORDER BY 1", e) ||
        put_int(db, &w, "with_volume",
                "SELECT count(*) FROM studies s WHERE EXISTS (SELECT 1 FROM volumes v WHERE "
                "v.study_id = s.id)",
                e) ||
        put_int(db, &w, "with_mask",
                "SELECT count(*) FROM studies s WHERE EXISTS (SELECT 1 FROM masks m WHERE "
                "m.study_id = s.id)",
                e) ||
        put_int(db, &w, "with_report",
                "SELECT count(*) FROM studies s WHERE EXISTS (SELECT 1 FROM reports r WHERE "
                "r.study_id = s.id)",
                e) ||
        put_int(db, &w, "complete",
                "SELECT count(*) FROM studies s WHERE EXISTS (SELECT 1 FROM volumes v WHERE "
                "v.study_id = s.id) AND EXISTS (SELECT 1 FROM masks m WHERE m.study_id = s.id) "
                "AND EXISTS (SELECT 1 FROM reports r WHERE r.study_id = s.id)",
                e) ||
        put_int(db, &w, "patients", "SELECT count(DISTINCT patient_key) FROM studies", e))
        return -1;
    jw_obj_end(&w);
    jw_key(&w, "volumes");
    jw_obj(&w);
    if (put_int(db, &w, "total", "SELECT count(*) FROM volumes", e) ||
        put_spread(db, &w, "nx_min_median_max", "nx", e) ||
        put_spread(db, &w, "ny_min_median_max", "ny", e) ||
        put_spread(db, &w, "nz_min_median_max", "nz", e) ||
        put_pairs(db, &w, "spacing_zyx",
                  "SELECT printf('%g x %g x %g', sz, sy, sx), count(*) FROM volumes GROUP BY 1", e) ||
        put_pairs(db, &w, "source_orientation",
                  "SELECT src_orient, count(*) FROM volumes GROUP BY 1 ORDER BY 2 DESC", e) ||
        put_pairs(db, &w, "source_dtype",
                  "SELECT src_dtype, count(*) FROM volumes GROUP BY 1 ORDER BY 2 DESC", e) ||
        put_int(db, &w, "with_notes", "SELECT count(*) FROM volumes WHERE notes IS NOT NULL", e))
        return -1;
    int64_t vox;
    if (db_query_int(db, e, &vox, NULL, "SELECT coalesce(sum(nx * ny * nz), 0) FROM volumes",
                     NULL))
        return -1;
    jw_key(&w, "voxels");
    jw_int(&w, vox);
    sqlite3_stmt *st;
    if (db_prepare(db, &st, "SELECT avg(hu_mean), min(hu_min), max(hu_max) FROM volumes", e))
        return -1;
    if (db_step(db, st, e) == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        jw_key(&w, "hu_mean_avg");
        jw_num(&w, sqlite3_column_double(st, 0));
        jw_key(&w, "hu_min");
        jw_num(&w, sqlite3_column_double(st, 1));
        jw_key(&w, "hu_max");
        jw_num(&w, sqlite3_column_double(st, 2));
    }
    sqlite3_finalize(st);
    jw_obj_end(&w);
    jw_key(&w, "masks");
    jw_obj(&w);
    if (put_int(db, &w, "total", "SELECT count(*) FROM masks", e) ||
        put_int(db, &w, "resampled", "SELECT count(*) FROM masks WHERE resampled = 1", e) ||
        put_int(db, &w, "labels_avg",
                "SELECT coalesce(round(avg(json_array_length(labels))), 0) FROM masks", e))
        return -1;
    jw_obj_end(&w);
    jw_key(&w, "reports");
    jw_obj(&w);
    if (put_int(db, &w, "total", "SELECT count(*) FROM reports", e) ||
        put_pairs(db, &w, "by_language", "SELECT language, count(*) FROM reports GROUP BY 1", e) ||
        put_pairs(db, &w, "by_encoding", "SELECT encoding, count(*) FROM reports GROUP BY 1", e) ||
        put_pairs(db, &w, "by_format", "SELECT format, count(*) FROM reports GROUP BY 1", e) ||
        put_int(db, &w, "phi_placeholders", "SELECT coalesce(sum(n_phi), 0) FROM reports", e) ||
        put_int(db, &w, "bytes_avg", "SELECT coalesce(round(avg(length(CAST(text AS BLOB)))), 0) FROM reports", e))
        return -1;
    jw_obj_end(&w);
    if (put_pairs(db, &w, "members",
                  "SELECT kind || ' ' || status, count(*) FROM sources GROUP BY 1 ORDER BY 1", e))
        return -1;
    jw_key(&w, "ingest_runs");
    jw_arr(&w);
    if (db_prepare(db, &st,
                   "SELECT id, status, started_at, ended_at, n_errors, counts FROM runs "
                   "WHERE stage = 'ingest' ORDER BY id DESC LIMIT 5",
                   e))
        return -1;
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        jw_obj(&w);
        jw_key(&w, "id");
        jw_int(&w, sqlite3_column_int64(st, 0));
        jw_key(&w, "status");
        jw_str(&w, (const char *)sqlite3_column_text(st, 1));
        jw_key(&w, "started_at");
        jw_str(&w, (const char *)sqlite3_column_text(st, 2));
        jw_key(&w, "ended_at");
        jw_str(&w, (const char *)sqlite3_column_text(st, 3));
        jw_key(&w, "errors");
        jw_int(&w, sqlite3_column_int64(st, 4));
        const char *c = (const char *)sqlite3_column_text(st, 5);
        jw_key(&w, "counts");
        if (c)
            jw_raw(&w, c);
        else
            jw_null(&w);
        jw_obj_end(&w);
    }
    sqlite3_finalize(st);
    if (rc < 0)
        return -1;
    jw_arr_end(&w);
    /* Error reasons: the text after the last "): " or the whole reason,
     * grouped on its first 60 characters. */
    if (put_pairs(db, &w, "top_errors",
                  "SELECT substr(reason, 1, 60), count(*) FROM errors GROUP BY 1 "
                  "ORDER BY 2 DESC, 1 LIMIT 10",
                  e))
        return -1;
    char dir[4200];
    db_tensor_dir(db, dir, sizeof dir);
    int64_t files = 0, bytes = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char p[4600];
            struct stat s;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (stat(p, &s) == 0 && S_ISREG(s.st_mode)) {
                files++;
                bytes += (int64_t)s.st_size;
            }
        }
        closedir(d);
    }
    jw_key(&w, "tensors");
    jw_obj(&w);
    jw_key(&w, "files");
    jw_int(&w, files);
    jw_key(&w, "bytes");
    jw_int(&w, bytes);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(json, '\n');
    return json->failed ? err_set(e, FV_ENOMEM, "stats: out of memory") : 0;
}
