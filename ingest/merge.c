#include "merge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

/* --------------------------------------------------------------- shards */

int corpus_shard_mark(Db *db, int *k, int *n, FvErr *e)
{
    *k = *n = 0;
    sqlite3_stmt *st;
    if (db_prepare(db, &st, "SELECT value FROM meta WHERE key = 'shard'", e))
        return -1;
    int rc = db_step(db, st, e);
    if (rc == 1) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (!v || sscanf(v, "%d/%d", k, n) != 2 || *n < 1 || *k < 0 || *k >= *n) {
            sqlite3_finalize(st);
            return err_set(e, FV_EFORMAT, "%s: meta shard = '%s' is not K/N", db->path,
                           v ? v : "");
        }
    }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

int corpus_refuse_shard(Db *db, const char *stage, FvErr *e)
{
    int k, n;
    if (corpus_shard_mark(db, &k, &n, e))
        return -1;
    if (n)
        return err_set(e, FV_EUSAGE, "%s is shard %d/%d of a sharded ingest: %s runs on the "
                       "merged corpus (fvlm merge --db all.db shard-*.db, then fvlm %s --db "
                       "all.db)", db->path, k, n, stage, stage);
    return 0;
}

int ingest_mark_shard(Db *db, int k, int n, FvErr *e)
{
    int hk, hn;
    if (corpus_shard_mark(db, &hk, &hn, e))
        return -1;
    if (n <= 1) {
        if (hn)
            return err_set(e, FV_EUSAGE, "%s is shard %d/%d: ingest into it with --shard %d/%d",
                           db->path, hk, hn, hk, hn);
        return 0;
    }
    if (hn && (hk != k || hn != n))
        return err_set(e, FV_EUSAGE, "%s is shard %d/%d, not %d/%d", db->path, hk, hn, k, n);
    if (hn)
        return 0;
    int64_t studies;
    int found;
    if (db_query_int(db, e, &studies, &found, "SELECT COUNT(*) FROM studies", ""))
        return -1;
    if (studies)
        return err_set(e, FV_EUSAGE, "%s already holds %lld studies ingested without --shard: "
                       "a shard starts from a corpus of its own", db->path, (long long)studies);
    char v[32];
    snprintf(v, sizeof v, "%d/%d", k, n);
    return db_run(db, e, "INSERT INTO meta (key, value) VALUES ('shard', ?)", "s", v);
}

/* ---------------------------------------------------------------- tensors */

/* The shard's tensor file into the target's folder: a hard link, or a copy
 * (to a temporary name, synced, renamed) across file systems. */
static int put_tensor(const char *src, const char *dst, MergeCounts *c, FvErr *e)
{
    if (fs_exists(dst)) {
        c->tensors_present++; /* its name is the hash of its content */
        return 0;
    }
    if (link(src, dst) == 0) {
        c->tensors_linked++;
        return 0;
    }
    if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)
        return err_set(e, FV_EIO, "%s: cannot link to %s: %s", src, dst, strerror(errno));
    char *data;
    size_t len;
    if (fs_read_file(src, (size_t)1 << 40, &data, &len, e))
        return -1;
    int rc = fs_write_atomic(dst, data, len, e);
    free(data);
    if (rc)
        return -1;
    c->tensors_copied++;
    return 0;
}

static int put_tensors(Db *db, const char *input, MergeCounts *c, FvErr *e)
{
    char dir[4096], src[4400], dst[4400];
    db_tensor_dir(db, dir, sizeof dir);
    if (fs_mkdir_p(dir, e))
        return -1;
    sqlite3_stmt *st;
    if (db_prepare(db, &st, "SELECT shard FROM s.volumes UNION SELECT shard FROM s.masks", e))
        return -1;
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!name || !*name || strchr(name, '/') || name[0] == '.') {
            sqlite3_finalize(st);
            return err_set(e, FV_EFORMAT, "%s: tensor shard name '%s' is not a file name", input,
                           name ? name : "");
        }
        snprintf(src, sizeof src, "%s.tensors/%s", input, name);
        snprintf(dst, sizeof dst, "%s/%s", dir, name);
        if (!fs_exists(src)) {
            sqlite3_finalize(st);
            return err_set(e, FV_ENOTFOUND, "%s: tensor shard %s is missing", input, src);
        }
        if (put_tensor(src, dst, c, e)) {
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------- rows */

static int scalar(Db *db, const char *sql, int64_t *out, FvErr *e)
{
    int found;
    if (db_query_int(db, e, out, &found, sql, ""))
        return -1;
    if (!found)
        *out = 0;
    return 0;
}

/* INSERT [OR IGNORE] INTO main.<table> (every column) SELECT ... FROM
 * s.<table> AS x <tail>: each column as x.<column>, or as the expression
 * that subst (column, expression pairs, NULL-terminated) gives it. The
 * input has the same schema version, so the same columns. */
static int copy_rows(Db *db, const char *table, const char *const *subst, const char *tail,
                     int ignore, int64_t *rows, FvErr *e)
{
    Buf cols = {0}, exprs = {0}, sql = {0};
    char q[128];
    snprintf(q, sizeof q, "PRAGMA main.table_info(%s)", table);
    sqlite3_stmt *st;
    if (db_prepare(db, &st, q, e))
        return -1;
    int rc, n = 0;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *col = (const char *)sqlite3_column_text(st, 1);
        const char *expr = NULL;
        for (int i = 0; subst && subst[i]; i += 2)
            if (!strcmp(subst[i], col))
                expr = subst[i + 1];
        buf_printf(&cols, "%s\"%s\"", n ? ", " : "", col);
        if (expr)
            buf_printf(&exprs, "%s%s", n ? ", " : "", expr);
        else
            buf_printf(&exprs, "%sx.\"%s\"", n ? ", " : "", col);
        n++;
    }
    sqlite3_finalize(st);
    if (rc < 0 || cols.failed || exprs.failed) {
        buf_free(&cols);
        buf_free(&exprs);
        return rc < 0 ? -1 : err_set(e, FV_ENOMEM, "merge: out of memory");
    }
    buf_printf(&sql, "INSERT %sINTO main.%s (%s) SELECT %s FROM s.%s AS x %s",
               ignore ? "OR IGNORE " : "", table, cols.data, exprs.data, table, tail);
    rc = sql.failed ? err_set(e, FV_ENOMEM, "merge: out of memory") : db_exec(db, sql.data, e);
    if (rc == 0)
        *rows += sqlite3_changes(db->h);
    buf_free(&cols);
    buf_free(&exprs);
    buf_free(&sql);
    return rc;
}

/* The input's rows, with new ids, in one transaction. */
static int copy_input(Db *db, MergeCounts *c, FvErr *e)
{
    int64_t off_run, off_err, off_study, off_vol, off_mask, off_rep, off_src;
    if (scalar(db, "SELECT COALESCE(MAX(id), 0) FROM main.runs", &off_run, e) ||
        scalar(db, "SELECT COALESCE(MAX(id), 0) FROM main.errors", &off_err, e) ||
        scalar(db, "SELECT COALESCE(MAX(id), 0) FROM main.studies", &off_study, e) ||
        scalar(db, "SELECT COALESCE(MAX(id), 0) FROM main.volumes", &off_vol, e) ||
        scalar(db, "SELECT COALESCE(MAX(id), 0) FROM main.masks", &off_mask, e) ||
        scalar(db, "SELECT COALESCE(MAX(id), 0) FROM main.reports", &off_rep, e) ||
        scalar(db, "SELECT COALESCE(MAX(id), 0) FROM main.sources", &off_src, e))
        return -1;
    char run_id[64], err_id[64], study_id[64], vol_id[64], mask_id[64], rep_id[64], src_id[64];
    char created[96];
    snprintf(run_id, sizeof run_id, "x.id + %lld", (long long)off_run);
    snprintf(err_id, sizeof err_id, "x.id + %lld", (long long)off_err);
    snprintf(study_id, sizeof study_id, "m.new");
    snprintf(vol_id, sizeof vol_id, "x.id + %lld", (long long)off_vol);
    snprintf(mask_id, sizeof mask_id, "x.id + %lld", (long long)off_mask);
    snprintf(rep_id, sizeof rep_id, "x.id + %lld", (long long)off_rep);
    snprintf(src_id, sizeof src_id, "x.id + %lld", (long long)off_src);
    snprintf(created, sizeof created, "x.created_run + %lld", (long long)off_run);
    char run_ref[64];
    snprintf(run_ref, sizeof run_ref, "x.run_id + %lld", (long long)off_run);
    /* study ids: the target's for a study it has (by keyed id), else new */
    char smap[400];
    snprintf(smap, sizeof smap,
             "INSERT INTO temp.smap (old, new, known) SELECT x.id, COALESCE((SELECT t.id FROM "
             "main.studies t WHERE t.study_key = x.study_key), x.id + %lld), EXISTS (SELECT 1 "
             "FROM main.studies t WHERE t.study_key = x.study_key) FROM s.studies x",
             (long long)off_study);
    int64_t known = 0;
    const char *runs_s[] = {"id", run_id, NULL};
    const char *errors_s[] = {"id", err_id, "run_id", run_ref, NULL};
    const char *studies_s[] = {"id", study_id, "created_run", created, NULL};
    const char *volumes_s[] = {"id", vol_id, "study_id", study_id, NULL};
    const char *masks_s[] = {"id", mask_id, "study_id", study_id, "volume_id",
                             "(SELECT v.id FROM main.volumes v WHERE v.study_id = m.new)", NULL};
    const char *reports_s[] = {"id", rep_id, "study_id", study_id, "parsed_run", "NULL", NULL};
    /* the keyed hashes of each study's identifiers (a study the target
     * has may bring names it did not: INSERT OR IGNORE) */
    const char *study_ids_s[] = {"study_id", study_id, NULL};
    int64_t id_rows = 0;
    const char *sources_s[] = {"id", src_id, "study_id",
                               "(SELECT m.new FROM temp.smap m WHERE m.old = x.study_id)",
                               "run_id", run_ref, NULL};
    if (db_begin(db, e))
        return -1;
    if (db_exec(db, "DELETE FROM temp.smap", e) || db_exec(db, smap, e) ||
        scalar(db, "SELECT COUNT(*) FROM temp.smap WHERE known", &known, e) ||
        copy_rows(db, "runs", runs_s, "ORDER BY x.id", 0, &c->runs, e) ||
        copy_rows(db, "errors", errors_s, "ORDER BY x.id", 0, &c->errors, e) ||
        copy_rows(db, "studies", studies_s,
                  "JOIN temp.smap m ON m.old = x.id WHERE NOT m.known ORDER BY x.id", 0,
                  &c->studies, e) ||
        copy_rows(db, "volumes", volumes_s,
                  "JOIN temp.smap m ON m.old = x.study_id WHERE NOT EXISTS (SELECT 1 FROM "
                  "main.volumes t WHERE t.study_id = m.new) ORDER BY x.id", 0, &c->volumes, e) ||
        copy_rows(db, "masks", masks_s,
                  "JOIN temp.smap m ON m.old = x.study_id WHERE NOT EXISTS (SELECT 1 FROM "
                  "main.masks t WHERE t.study_id = m.new) ORDER BY x.id", 0, &c->masks, e) ||
        copy_rows(db, "reports", reports_s,
                  "JOIN temp.smap m ON m.old = x.study_id WHERE NOT EXISTS (SELECT 1 FROM "
                  "main.reports t WHERE t.study_id = m.new) ORDER BY x.id", 0, &c->reports, e) ||
        copy_rows(db, "study_ids", study_ids_s,
                  "JOIN temp.smap m ON m.old = x.study_id ORDER BY x.study_id", 1, &id_rows, e) ||
        copy_rows(db, "sources", sources_s, "ORDER BY x.id", 1, &c->sources, e) ||
        db_exec(db, "INSERT OR IGNORE INTO main.meta (key, value) SELECT key, value FROM s.meta "
                "WHERE key = 'deid_fingerprint'", e)) {
        db_rollback(db);
        return -1;
    }
    c->studies_known += known;
    return db_commit(db, e);
}

/* The checks that refuse an input before anything is written. */
static int check_input(Db *db, const char *input, int *shard_k, int *shard_n, FvErr *e)
{
    int64_t ver, parsed, aligned;
    if (scalar(db, "PRAGMA s.user_version", &ver, e))
        return -1;
    if (ver != FVLM_SCHEMA_VERSION)
        return err_set(e, FV_EUSAGE, "%s: schema version %lld, this fvlm's is %d: open it with "
                       "this fvlm first (fvlm stats --db %s migrates it), then merge", input,
                       (long long)ver, FVLM_SCHEMA_VERSION, input);
    sqlite3_stmt *st;
    if (db_prepare(db, &st, "SELECT (SELECT value FROM main.meta WHERE key = 'deid_fingerprint'),"
                   " (SELECT value FROM s.meta WHERE key = 'deid_fingerprint'),"
                   " (SELECT value FROM s.meta WHERE key = 'shard')", e))
        return -1;
    int rc = db_step(db, st, e);
    if (rc == 1) {
        const char *mine = (const char *)sqlite3_column_text(st, 0);
        const char *theirs = (const char *)sqlite3_column_text(st, 1);
        const char *shard = (const char *)sqlite3_column_text(st, 2);
        if (mine && theirs && strcmp(mine, theirs) != 0)
            rc = err_set(e, FV_EUSAGE, "%s was de-identified with another key (fingerprint "
                         "%.16s, the merged corpus has %.16s): its pseudonyms cannot meet this "
                         "corpus's", input, theirs, mine);
        *shard_k = *shard_n = 0;
        if (rc == 1 && shard &&
            (sscanf(shard, "%d/%d", shard_k, shard_n) != 2 || *shard_n < 1 || *shard_k < 0 ||
             *shard_k >= *shard_n))
            rc = err_set(e, FV_EFORMAT, "%s: meta shard = '%s' is not K/N", input, shard);
    }
    sqlite3_finalize(st);
    if (rc < 0)
        return -1;
    if (scalar(db, "SELECT COUNT(*) FROM s.sentences", &parsed, e) ||
        scalar(db, "SELECT (SELECT COUNT(*) FROM s.samples) + (SELECT COUNT(*) FROM s.regions)",
               &aligned, e))
        return -1;
    if (parsed || aligned)
        return err_set(e, FV_EUSAGE, "%s holds %s results: parse and align run on the merged "
                       "corpus (merge corpora as ingest left them)", input,
                       parsed ? "parse" : "align");
    return 0;
}

int merge_corpora(Db *db, Run *run, char *const *inputs, int n, MergeCounts *c, FvErr *e)
{
    (void)run;
    memset(c, 0, sizeof *c);
    int *seen = NULL, shard_n = 0, rc = -1, attached = 0;
    if (db_exec(db, "CREATE TEMP TABLE IF NOT EXISTS smap (old INTEGER PRIMARY KEY, new INTEGER "
                "NOT NULL, known INTEGER NOT NULL)", e))
        return -1;
    for (int i = 0; i < n; i++) {
        const char *in = inputs[i];
        if (!fs_exists(in)) {
            err_set(e, FV_ENOTFOUND, "%s: no such corpus", in);
            goto out;
        }
        if (!strcmp(in, db->path)) {
            err_set(e, FV_EUSAGE, "%s: the merged corpus cannot be one of its inputs", in);
            goto out;
        }
        sqlite3_stmt *st;
        if (db_prepare(db, &st, "ATTACH DATABASE ? AS s", e))
            goto out;
        sqlite3_bind_text(st, 1, in, -1, SQLITE_TRANSIENT);
        int sr = db_step(db, st, e);
        sqlite3_finalize(st);
        if (sr < 0)
            goto out;
        attached = 1;
        int k, kn;
        if (check_input(db, in, &k, &kn, e))
            goto out;
        if (kn) {
            if (!seen) {
                shard_n = kn;
                if (!(seen = calloc((size_t)kn, sizeof *seen))) {
                    err_set(e, FV_ENOMEM, "out of memory");
                    goto out;
                }
            }
            if (kn != shard_n) {
                err_set(e, FV_EUSAGE, "%s is shard %d/%d, an earlier input was of %d shards",
                        in, k, kn, shard_n);
                goto out;
            }
            if (seen[k]++) {
                err_set(e, FV_EUSAGE, "%s: shard %d/%d is given twice", in, k, kn);
                goto out;
            }
        }
        /* files first: no row may point to a tensor that is not there */
        if (put_tensors(db, in, c, e) || copy_input(db, c, e))
            goto out;
        if (db_exec(db, "DETACH DATABASE s", e))
            goto out;
        attached = 0;
        c->inputs++;
        log_info("merged %s", in);
    }
    c->shard_n = shard_n;
    for (int k = 0; k < shard_n; k++)
        c->shards_missing += !seen[k];
    if (c->shards_missing)
        log_warn("%lld of the %d shards were not among the inputs", (long long)c->shards_missing,
                 shard_n);
    rc = 0;
out:
    if (attached) {
        FvErr de = {0};
        db_exec(db, "DETACH DATABASE s", &de);
    }
    free(seen);
    return rc;
}

void merge_counts_json(const MergeCounts *c, Buf *b)
{
    buf_printf(b, "{\"inputs\": %lld, \"runs\": %lld, \"errors\": %lld, \"studies\": %lld, "
               "\"studies_known\": %lld, \"volumes\": %lld, \"masks\": %lld, \"reports\": %lld, "
               "\"sources\": %lld, \"tensors_linked\": %lld, \"tensors_copied\": %lld, "
               "\"tensors_present\": %lld, \"shards\": %d, \"shards_missing\": %lld}",
               (long long)c->inputs, (long long)c->runs, (long long)c->errors,
               (long long)c->studies, (long long)c->studies_known, (long long)c->volumes,
               (long long)c->masks, (long long)c->reports, (long long)c->sources,
               (long long)c->tensors_linked, (long long)c->tensors_copied,
               (long long)c->tensors_present, c->shard_n, (long long)c->shards_missing);
}
