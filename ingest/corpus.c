#include "corpus.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "deid.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "run.h"
#include "safetensors.h"
#include "sha256.h"

int corpus_open(Corpus *c, Db *db, Run *run, FvErr *e)
{
    memset(c, 0, sizeof *c);
    c->db = db;
    c->run = run;
    db_tensor_dir(db, c->tensor_dir, sizeof c->tensor_dir);
    return fs_mkdir_p(c->tensor_dir, e);
}

/* ---------------------------------------------------------- legacy names */

enum { REWRITE_PATH, REWRITE_TEXT, REWRITE_ARGS };

/* Rewrites one column of every row, in batches of ids. */
static int rewrite_column(Corpus *c, const char *key, const char *table, const char *col,
                          int how, int64_t *rows, FvErr *e)
{
    char sel[320], upd[256];
    /* (this run's own row holds its arguments de-identified already) */
    snprintf(sel, sizeof sel,
             "SELECT id, %s FROM %s WHERE id > ? AND %s IS NOT NULL%s ORDER BY id LIMIT 512", col,
             table, col, how == REWRITE_ARGS ? " AND id != ?2" : "");
    snprintf(upd, sizeof upd, "UPDATE %s SET %s = ? WHERE id = ?", table, col);
    int64_t last = 0;
    for (;;) {
        sqlite3_stmt *st;
        if (db_prepare(c->db, &st, sel, e))
            return -1;
        int64_t ids[512];
        char *vals[512];
        int n = 0, rc = how == REWRITE_ARGS
                            ? db_bindf(c->db, st, e, "ii", last, c->run ? c->run->id : (int64_t)-1)
                            : db_bindf(c->db, st, e, "i", last);
        while (rc == 0 && n < 512 && (rc = db_step(c->db, st, e)) == 1) {
            ids[n] = sqlite3_column_int64(st, 0);
            vals[n] = strdup((const char *)sqlite3_column_text(st, 1));
            if (!vals[n]) {
                rc = err_set(e, FV_ENOMEM, "out of memory");
                break;
            }
            n++;
            rc = 0;
        }
        sqlite3_finalize(st);
        if (rc > 0)
            rc = 0;
        Buf out = {0};
        for (int i = 0; i < n; i++) {
            if (rc == 0) {
                buf_reset(&out);
                rc = how == REWRITE_PATH   ? corpus_clean(c, vals[i], &out, e)
                     : how == REWRITE_TEXT ? deid_text_paths(key, vals[i], &out, e)
                                           : run_args_deid(key, vals[i], &out, e);
                if (rc == 0 && strcmp(out.data ? out.data : "", vals[i]) != 0) {
                    rc = db_run(c->db, e, upd, "si", out.data ? out.data : "", ids[i]);
                    if (rc == 0)
                        (*rows)++;
                }
            }
            free(vals[i]);
        }
        buf_free(&out);
        if (rc)
            return -1;
        if (n < 512)
            return 0;
        last = ids[n - 1];
    }
}

int corpus_deid_names(Corpus *c, const char *key, int64_t *rows, FvErr *e)
{
    *rows = 0;
    int64_t done, n;
    int found;
    if (db_query_int(c->db, e, &done, &found,
                     "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'names_deidentified'",
                     ""))
        return -1;
    if (found && done == 1)
        return 0;
    if (db_query_int(c->db, e, &n, NULL,
                     "SELECT (SELECT count(*) FROM sources) + (SELECT count(*) FROM errors) + "
                     "(SELECT count(*) FROM volumes) + (SELECT count(*) FROM runs WHERE id != ?)",
                     "i", c->run ? c->run->id : (int64_t)-1))
        return -1;
    static const struct {
        const char *table, *col;
        int how;
    } cols[] = {
        {"sources", "path", REWRITE_PATH},   {"sources", "member", REWRITE_PATH},
        {"errors", "source", REWRITE_PATH},  {"errors", "member", REWRITE_PATH},
        {"errors", "reason", REWRITE_TEXT},  {"volumes", "source", REWRITE_PATH},
        {"masks", "source", REWRITE_PATH},   {"reports", "source", REWRITE_PATH},
        {"runs", "args", REWRITE_ARGS},
    };
    /* db_begin, not corpus_begin: this is no item (the crash tests count
     * items' commits) */
    if (db_begin(c->db, e))
        return -1;
    int rc = 0;
    for (size_t i = 0; n > 0 && rc == 0 && i < sizeof cols / sizeof cols[0]; i++)
        rc = rewrite_column(c, key, cols[i].table, cols[i].col, cols[i].how, rows, e);
    if (rc == 0)
        rc = db_run(c->db, e,
                    "INSERT INTO meta (key, value) VALUES ('names_deidentified', '1') "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    "");
    if (rc == 0)
        rc = db_commit(c->db, e);
    if (rc) {
        db_rollback(c->db);
        return -1;
    }
    /* Old pages still hold the names as they were: rebuild the file. */
    if (*rows > 0 && db_exec(c->db, "VACUUM", e))
        return -1;
    return 0;
}

/* Fault injection for the crash tests: FVLM_TEST_CRASH=<point>:<n> kills
 * the process with SIGKILL the n-th time it reaches <point> ("shard": a
 * shard renamed into place, its row not yet committed; "commit": an item
 * committed). Never set in production; costs one getenv per item. */
static void crash_point(const char *point)
{
    static int counts[2];
    const char *s = getenv("FVLM_TEST_CRASH");
    if (!s)
        return;
    size_t k = strlen(point);
    if (strncmp(s, point, k) != 0 || s[k] != ':')
        return;
    int *c = &counts[point[0] == 's'];
    if (++*c == atoi(s + k + 1))
        kill(getpid(), SIGKILL);
}

int corpus_begin(Corpus *c, FvErr *e) { return db_begin(c->db, e); }

int corpus_commit(Corpus *c, FvErr *e)
{
    if (db_commit(c->db, e))
        return -1;
    crash_point("commit");
    return 0;
}
void corpus_rollback(Corpus *c) { db_rollback(c->db); }

/* ------------------------------------------------------------------ sweep */

/* "<32 hex>.safetensors" */
static int is_shard_name(const char *n)
{
    for (int i = 0; i < 32; i++)
        if (!isxdigit((unsigned char)n[i]) || isupper((unsigned char)n[i]))
            return 0;
    return strcmp(n + 32, ".safetensors") == 0;
}

/* "<shard>.tmp.<pid>" written by st_write. */
static int tmp_pid(const char *n, long *pid)
{
    const char *t = strstr(n, ".safetensors.tmp.");
    if (!t || t != n + 32)
        return 0;
    char *end;
    *pid = strtol(t + 17, &end, 10);
    return *end == '\0';
}

static int referenced(Corpus *c, const char *name, int *yes, FvErr *e)
{
    int64_t n;
    if (db_query_int(c->db, e, &n, NULL,
                     "SELECT (SELECT count(*) FROM volumes WHERE shard = ?1) + "
                     "(SELECT count(*) FROM masks WHERE shard = ?1)",
                     "s", name))
        return -1;
    *yes = n > 0;
    return 0;
}

int corpus_sweep(Corpus *c, int *n_tmp, int *n_orphans, FvErr *e)
{
    *n_tmp = *n_orphans = 0;
    int64_t live;
    if (db_query_int(c->db, e, &live, NULL,
                     "SELECT count(*) FROM runs WHERE stage = 'ingest' AND status = 'running' "
                     "AND id != ?",
                     "i", c->run ? c->run->id : (int64_t)-1))
        return -1;
    if (live > 0) {
        log_warn("another ingest run is live on this database: not sweeping %s", c->tensor_dir);
        return 0;
    }
    DIR *d = opendir(c->tensor_dir);
    if (!d)
        return err_set(e, FV_EIO, "%s: %s", c->tensor_dir, strerror(errno));
    /* Collect names first: unlinking while reading a folder is undefined. */
    char **victims = NULL;
    int nv = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        long pid;
        int victim = 0;
        if (tmp_pid(n, &pid)) {
            victim = !(pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) == 0);
            if (victim)
                (*n_tmp)++;
        } else if (is_shard_name(n)) {
            int yes;
            if (referenced(c, n, &yes, e)) {
                rc = -1;
                break;
            }
            victim = !yes;
            if (victim)
                (*n_orphans)++;
        }
        if (!victim)
            continue;
        if (arr_reserve(&victims, &cap, nv, sizeof *victims, 16)) {
            rc = err_set(e, FV_ENOMEM, "sweep: out of memory");
            break;
        }
        if (!(victims[nv] = strdup(n))) {
            rc = err_set(e, FV_ENOMEM, "sweep: out of memory");
            break;
        }
        nv++;
    }
    closedir(d);
    for (int i = 0; i < nv; i++) {
        if (rc == 0) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", c->tensor_dir, victims[i]);
            if (unlink(path) != 0 && errno != ENOENT)
                rc = err_set(e, FV_EIO, "%s: %s", path, strerror(errno));
        }
        free(victims[i]);
    }
    free(victims);
    return rc;
}

/* ---------------------------------------------------------------- sources */

int corpus_source_status(Corpus *c, const char *sha, const char *path, const char *member,
                         char status[16], FvErr *e)
{
    Buf pb = {0}, mb = {0};
    sqlite3_stmt *st = NULL;
    status[0] = '\0';
    int rc = corpus_clean(c, path, &pb, e) || corpus_clean(c, member, &mb, e) ? -1 : 0;
    if (rc == 0)
        rc = db_prepare(c->db, &st,
                        "SELECT status FROM sources WHERE sha256 = ? AND path = ? AND member = ? "
                        "ORDER BY status = 'failed', id LIMIT 1",
                        e);
    if (rc == 0)
        rc = db_bindf(c->db, st, e, "sss", sha, pb.data, mb.data);
    if (rc == 0)
        rc = db_step(c->db, st, e);
    if (rc == 1)
        snprintf(status, 16, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    buf_free(&pb);
    buf_free(&mb);
    return rc < 0 ? -1 : rc;
}

int corpus_clean(Corpus *c, const char *in, Buf *out, FvErr *e)
{
    buf_reset(out);
    if (!in)
        in = "";
    if (c->scrub ? c->scrub(c->scrub_ctx, in, out, e) : buf_puts(out, in))
        return c->scrub ? -1 : err_set(e, FV_ENOMEM, "out of memory");
    if (!out->data && buf_puts(out, ""))
        return err_set(e, FV_ENOMEM, "out of memory");
    return 0;
}

int corpus_source_put(Corpus *c, const char *path, const char *member, const char *sha,
                      int64_t size, const char *kind, const char *status, int64_t study_id,
                      const char *reason, FvErr *e)
{
    Buf pb = {0}, mb = {0};
    int rc = corpus_clean(c, path, &pb, e) || corpus_clean(c, member, &mb, e) ? -1 : 0;
    if (rc == 0 && study_id > 0)
        rc = db_run(c->db, e,
                    "INSERT INTO sources (path, member, sha256, size, kind, status, study_id, "
                    "run_id, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (sha256, kind, path, member) DO UPDATE SET "
                    "status = excluded.status, study_id = excluded.study_id, "
                    "run_id = excluded.run_id, reason = excluded.reason "
                    "WHERE sources.status = 'failed'",
                    "sssissiis", pb.data, mb.data, sha, size, kind, status, study_id,
                    c->run->id, reason);
    else if (rc == 0)
        rc = db_run(c->db, e,
                    "INSERT INTO sources (path, member, sha256, size, kind, status, run_id, "
                    "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (sha256, kind, path, member) DO UPDATE SET "
                    "status = excluded.status, run_id = excluded.run_id, "
                    "reason = excluded.reason WHERE sources.status = 'failed'",
                    "sssissis", pb.data, mb.data, sha, size, kind, status, c->run->id, reason);
    buf_free(&pb);
    buf_free(&mb);
    return rc;
}

/* ---------------------------------------------------------------- studies */

int corpus_study(Corpus *c, const char *study_key, const char *patient_key, const char *dataset,
                 const char *split, int64_t *id, int *created, FvErr *e)
{
    int found;
    *created = 0;
    if (db_query_int(c->db, e, id, &found, "SELECT id FROM studies WHERE study_key = ?", "s",
                     study_key))
        return -1;
    if (found) {
        /* A study first seen without a patient (a report) learns it later. */
        if (patient_key && db_run(c->db, e,
                                  "UPDATE studies SET patient_key = ? WHERE id = ? AND "
                                  "patient_key IS NULL",
                                  "si", patient_key, *id))
            return -1;
        return 0;
    }
    if (db_run(c->db, e,
               "INSERT INTO studies (study_key, patient_key, dataset, split, created_run) "
               "VALUES (?, ?, ?, ?, ?)",
               "ssssi", study_key, patient_key, dataset, split, c->run->id))
        return -1;
    *id = db_last_id(c->db);
    *created = 1;
    return 0;
}

/* ------------------------------------------------------------------ json */

void json_affine(const double a[4][4], char *out, size_t n)
{
    size_t k = 0;
    k += (size_t)snprintf(out + k, n - k, "[");
    for (int r = 0; r < 4 && k < n; r++) {
        k += (size_t)snprintf(out + k, n - k, "%s[", r ? "," : "");
        for (int j = 0; j < 4 && k < n; j++)
            k += (size_t)snprintf(out + k, n - k, "%s%.10g", j ? "," : "", a[r][j] == 0 ? 0.0 : a[r][j]);
        if (k < n)
            k += (size_t)snprintf(out + k, n - k, "]");
    }
    if (k < n)
        snprintf(out + k, n - k, "]");
}

int json_affine_parse(const char *s, double a[4][4])
{
    JsonValue *v;
    FvErr e = {0};
    if (!s || json_parse(s, strlen(s), &v, &e))
        return -1;
    int ok = v->type == JSON_ARR && v->len == 4;
    for (int r = 0; ok && r < 4; r++) {
        const JsonValue *row = &v->items[r];
        ok = row->type == JSON_ARR && row->len == 4;
        for (int j = 0; ok && j < 4; j++) {
            ok = row->items[j].type == JSON_NUM;
            if (ok)
                a[r][j] = row->items[j].num;
        }
    }
    json_free(&v);
    return ok ? 0 : -1;
}

static int json_dims_parse(const char *s, int64_t d[3])
{
    JsonValue *v;
    FvErr e = {0};
    if (!s || json_parse(s, strlen(s), &v, &e))
        return -1;
    int ok = v->type == JSON_ARR && v->len == 3;
    for (int i = 0; ok && i < 3; i++) {
        ok = v->items[i].type == JSON_NUM && v->items[i].num >= 1;
        if (ok)
            d[i] = (int64_t)v->items[i].num;
    }
    json_free(&v);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- volumes */

int corpus_volume_of(Corpus *c, int64_t study_id, VolumeInfo *vi, int *found, FvErr *e)
{
    memset(vi, 0, sizeof *vi);
    *found = 0;
    sqlite3_stmt *st;
    if (db_prepare(c->db, &st,
                   "SELECT id, sha256, source, nx, ny, nz, affine, src_dims, src_affine "
                   "FROM volumes WHERE study_id = ?",
                   e))
        return -1;
    int rc = db_bindf(c->db, st, e, "i", study_id);
    if (rc == 0)
        rc = db_step(c->db, st, e);
    if (rc == 1) {
        vi->id = sqlite3_column_int64(st, 0);
        snprintf(vi->sha, sizeof vi->sha, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(vi->source, sizeof vi->source, "%s", (const char *)sqlite3_column_text(st, 2));
        vi->dims[0] = sqlite3_column_int64(st, 3);
        vi->dims[1] = sqlite3_column_int64(st, 4);
        vi->dims[2] = sqlite3_column_int64(st, 5);
        if (json_affine_parse((const char *)sqlite3_column_text(st, 6), vi->affine) ||
            json_dims_parse((const char *)sqlite3_column_text(st, 7), vi->src_dims) ||
            json_affine_parse((const char *)sqlite3_column_text(st, 8), vi->src_affine))
            rc = err_set(e, FV_EDB, "volume %lld has unreadable geometry columns",
                         (long long)vi->id);
        else
            *found = 1;
    }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

static int sha_of(Corpus *c, const char *sql, int64_t study_id, char sha[65], FvErr *e)
{
    sqlite3_stmt *st;
    sha[0] = '\0';
    if (db_prepare(c->db, &st, sql, e))
        return -1;
    int rc = db_bindf(c->db, st, e, "i", study_id);
    if (rc == 0)
        rc = db_step(c->db, st, e);
    if (rc == 1)
        snprintf(sha, 65, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

int corpus_mask_sha(Corpus *c, int64_t study_id, char sha[65], FvErr *e)
{
    return sha_of(c, "SELECT sha256 FROM masks WHERE study_id = ?", study_id, sha, e);
}

int corpus_report_sha(Corpus *c, int64_t study_id, char sha[65], FvErr *e)
{
    return sha_of(c, "SELECT sha256 FROM reports WHERE study_id = ?", study_id, sha, e);
}

int corpus_write_shard(Corpus *c, const char *tensor, const Vol *v, char shard[64], FvErr *e)
{
    StDType dt = v->type == VOL_U8 ? ST_U8 : v->type == VOL_I16 ? ST_I16 : ST_F32;
    int64_t shape[3] = {v->nz, v->ny, v->nx};
    size_t nbytes = (size_t)vol_count(v) * vol_type_size(v->type);
    char aff[400];
    json_affine(v->affine, aff, sizeof aff);
    double sp[3];
    vol_spacing(v, sp);
    char spacing[96];
    snprintf(spacing, sizeof spacing, "[%.10g,%.10g,%.10g]", sp[0], sp[1], sp[2]);
    /* The name is a hash of everything the file holds. */
    Sha256 h;
    sha256_init(&h);
    sha256_update(&h, tensor, strlen(tensor) + 1);
    sha256_update(&h, st_dtype_name(dt), strlen(st_dtype_name(dt)) + 1);
    sha256_update(&h, shape, sizeof shape);
    sha256_update(&h, aff, strlen(aff) + 1);
    sha256_update(&h, v->data, nbytes);
    unsigned char dg[32];
    char hex[65];
    sha256_final(&h, dg);
    sha256_to_hex(dg, hex);
    snprintf(shard, 64, "%.32s.safetensors", hex);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", c->tensor_dir, shard);
    if (fs_exists(path))
        return 0;
    StWriter w;
    st_writer_init(&w);
    int rc = st_writer_add(&w, tensor, dt, 3, shape, v->data, e);
    if (rc == 0)
        rc = st_writer_meta(&w, "format", "fvlm-ingest-1", e);
    if (rc == 0)
        rc = st_writer_meta(&w, "kind", tensor, e);
    if (rc == 0)
        rc = st_writer_meta(&w, "affine", aff, e);
    if (rc == 0)
        rc = st_writer_meta(&w, "spacing", spacing, e);
    if (rc == 0)
        rc = st_writer_meta(&w, "axes", "z,y,x (RAS: x to the right, y anterior, z superior)", e);
    if (rc == 0)
        rc = st_write(&w, path, e);
    st_writer_free(&w);
    if (rc == 0)
        crash_point("shard");
    return rc;
}

int corpus_volume_put(Corpus *c, const VolumeRow *r, int64_t *id, FvErr *e)
{
    char dims[96], spacing[128], src_aff[400], aff[400];
    snprintf(dims, sizeof dims, "[%lld,%lld,%lld]", (long long)r->src_dims[0],
             (long long)r->src_dims[1], (long long)r->src_dims[2]);
    snprintf(spacing, sizeof spacing, "[%.10g,%.10g,%.10g]", r->src_spacing[0], r->src_spacing[1],
             r->src_spacing[2]);
    json_affine(r->src_affine, src_aff, sizeof src_aff);
    json_affine(r->grid->affine, aff, sizeof aff);
    Buf sb = {0};
    if (corpus_clean(c, r->source, &sb, e)) {
        buf_free(&sb);
        return -1;
    }
    const char *source = sb.data;
    double sp[3];
    vol_spacing(r->grid, sp);
    int rc = db_run(c->db, e,
               "INSERT INTO volumes (study_id, sha256, source, src_dims, src_spacing, src_affine, "
               "src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor, hu_min, "
               "hu_max, hu_mean, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
               "'ct', ?, ?, ?, ?)",
               "isssssssiiidddssddds", r->study_id, r->sha, source, dims, spacing, src_aff,
               r->src_orient, r->src_dtype, r->grid->nz, r->grid->ny, r->grid->nx, sp[2], sp[1],
               sp[0], aff, r->shard, r->hu_min, r->hu_max, r->hu_mean,
               r->notes && *r->notes ? r->notes : NULL);
    buf_free(&sb);
    if (rc)
        return -1;
    *id = db_last_id(c->db);
    return 0;
}

int corpus_mask_put(Corpus *c, int64_t study_id, int64_t volume_id, const char *sha,
                    const char *source, const char *shard, const char *labels_json,
                    int resampled, FvErr *e)
{
    Buf sb = {0};
    int rc = corpus_clean(c, source, &sb, e) ? -1 : db_run(c->db, e,
                  "INSERT INTO masks (study_id, volume_id, sha256, source, shard, tensor, labels, "
                  "resampled) VALUES (?, ?, ?, ?, ?, 'mask', ?, ?)",
                  "iissssi", study_id, volume_id, sha, sb.data, shard, labels_json,
                  (int64_t)resampled);
    buf_free(&sb);
    return rc;
}

int corpus_report_put(Corpus *c, int64_t study_id, const char *sha, const char *source,
                      const char *format, const char *language, const char *encoding,
                      const char *text, int n_phi, FvErr *e)
{
    Buf sb = {0};
    int rc = corpus_clean(c, source, &sb, e) ? -1 : db_run(c->db, e,
                  "INSERT INTO reports (study_id, sha256, source, format, language, encoding, "
                  "text, n_phi) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  "issssssi", study_id, sha, sb.data, format, language, encoding, text,
                  (int64_t)n_phi);
    buf_free(&sb);
    return rc;
}
