#include "export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "json.h"
#include "study_view.h"

/* A file written through a Buf that is flushed every megabyte, to a
 * temporary name renamed into place by out_commit. */
typedef struct OutFile {
    FILE *f;
    char path[4096], tmp[4200];
    Buf b;
    int64_t bytes;
} OutFile;

static int out_open(OutFile *o, const char *dir, const char *name, FvErr *e)
{
    memset(o, 0, sizeof *o);
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", o->path, (long)getpid());
    if (!(o->f = fopen(o->tmp, "wb")))
        return err_set(e, FV_EIO, "%s: %s", o->tmp, strerror(errno));
    return 0;
}

static int out_flush(OutFile *o, FvErr *e)
{
    if (o->b.failed)
        return err_set(e, FV_ENOMEM, "%s: out of memory", o->path);
    if (o->b.len && fwrite(o->b.data, 1, o->b.len, o->f) != o->b.len)
        return err_set(e, FV_EIO, "%s: %s", o->tmp, strerror(errno));
    o->bytes += (int64_t)o->b.len;
    buf_reset(&o->b);
    return 0;
}

static int out_maybe_flush(OutFile *o, FvErr *e)
{
    return o->b.len >= (1u << 20) ? out_flush(o, e) : 0;
}

/* Flushes, syncs and renames; on failure the temporary file is removed. */
static int out_commit(OutFile *o, FvErr *e)
{
    int rc = out_flush(o, e);
    if (rc == 0 && (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0))
        rc = err_set(e, FV_EIO, "%s: %s", o->tmp, strerror(errno));
    if (fclose(o->f) != 0 && rc == 0)
        rc = err_set(e, FV_EIO, "%s: %s", o->tmp, strerror(errno));
    o->f = NULL;
    if (rc == 0)
        rc = fs_commit_rename(o->tmp, o->path, e);
    if (rc)
        unlink(o->tmp);
    buf_free(&o->b);
    return rc;
}

static void out_abort(OutFile *o)
{
    if (o->f) {
        fclose(o->f);
        o->f = NULL;
        unlink(o->tmp);
    }
    buf_free(&o->b);
}

/* Commits the file when rc (the writer's status) is 0, else aborts it;
 * adds its bytes to *bytes. Returns the final status. */
static int out_end(OutFile *o, int rc, int64_t *bytes, FvErr *e)
{
    if (rc == 0)
        rc = out_commit(o, e);
    else
        out_abort(o);
    *bytes += o->bytes;
    return rc;
}

/* Studies to export, in id order: those with alignment rows. */
static int study_list(Db *db, const char *split, int64_t study, int need_status, int64_t **ids,
                      int *n, FvErr *e)
{
    const char *sql = need_status
        ? "SELECT id FROM studies s WHERE EXISTS (SELECT 1 FROM anatomy_status a"
          " WHERE a.study_id = s.id) AND (?1 IS NULL OR s.split = ?1) AND (?2 = 0 OR s.id = ?2)"
          " ORDER BY id"
        : "SELECT id FROM studies s WHERE (EXISTS (SELECT 1 FROM anatomy_status a"
          " WHERE a.study_id = s.id) OR EXISTS (SELECT 1 FROM regions r WHERE r.study_id = s.id))"
          " AND (?1 IS NULL OR s.split = ?1) AND (?2 = 0 OR s.id = ?2) ORDER BY id";
    sqlite3_stmt *st;
    *ids = NULL;
    *n = 0;
    if (db_prepare(db, &st, sql, e))
        return -1;
    int rc = db_bindf(db, st, e, "si", split, study), r = 0, cap = 0;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        if (*n == cap) {
            int nc = cap ? cap * 2 : 256;
            int64_t *p = realloc(*ids, (size_t)nc * sizeof *p);
            if (!p) {
                rc = err_set(e, FV_ENOMEM, "export: out of memory");
                break;
            }
            *ids = p;
            cap = nc;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (r < 0)
        rc = -1;
    sqlite3_finalize(st);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

static int export_fvlm(Db *db, const Ontology *o, const AnatomyMetaTable *meta, const char *dir,
                       const char *split, int64_t study, ExportCounts *c, FvErr *e)
{
    int64_t *ids;
    int n;
    if (study_list(db, split, study, 1, &ids, &n, e))
        return -1;
    OutFile desc, conc;
    if (out_open(&desc, dir, "desc_info.json", e)) {
        free(ids);
        return -1;
    }
    if (out_open(&conc, dir, "conc_info.json", e)) {
        out_abort(&desc);
        free(ids);
        return -1;
    }
    sqlite3_stmt *qk = NULL, *qs = NULL;
    int rc = db_prepare(db, &qk, "SELECT study_key FROM studies WHERE id = ?", e);
    if (rc == 0)
        rc = db_prepare(db, &qs, "SELECT anatomy, findings_text, impression_text"
                                 " FROM anatomy_status WHERE study_id = ?", e);
    /* Per study: texts by ontology index, so anatomies come out in a fixed order. */
    char **fin = calloc((size_t)o->n_anat + 1, sizeof *fin);
    char **imp = calloc((size_t)o->n_anat + 1, sizeof *imp);
    if (rc == 0 && (!fin || !imp))
        rc = err_set(e, FV_ENOMEM, "export: out of memory");
    JsonW wd, wc;
    jw_init(&wd, &desc.b, 1);
    jw_init(&wc, &conc.b, 1);
    jw_obj(&wd);
    jw_obj(&wc);
    for (int i = 0; i < n && rc == 0; i++) {
        int r;
        if (db_bindf(db, qk, e, "i", ids[i]) || (r = db_step(db, qk, e)) < 0) {
            rc = -1;
            break;
        }
        const char *key = r ? (const char *)sqlite3_column_text(qk, 0) : NULL;
        if (!key) {
            sqlite3_reset(qk);
            continue;
        }
        jw_key(&wd, key);
        jw_key(&wc, key);
        sqlite3_reset(qk);
        if (db_bindf(db, qs, e, "i", ids[i])) {
            rc = -1;
            break;
        }
        while ((r = db_step(db, qs, e)) == 1) {
            int a = onto_anatomy(o, (const char *)sqlite3_column_text(qs, 0));
            if (a < 0 || fin[a])
                continue;
            const char *f = (const char *)sqlite3_column_text(qs, 1);
            const char *m = (const char *)sqlite3_column_text(qs, 2);
            fin[a] = strdup(f ? f : "");
            imp[a] = strdup(m ? m : "");
            if (!fin[a] || !imp[a])
                rc = err_set(e, FV_ENOMEM, "export: out of memory");
        }
        if (r < 0)
            rc = -1;
        jw_obj(&wd);
        jw_obj(&wc);
        for (int a = 0; a < o->n_anat; a++) {
            if (fin[a] && fin[a][0]) {
                jw_key(&wd, meta->m[a].fvlm_name);
                jw_str(&wd, fin[a]);
                c->entries++;
            }
            if (imp[a] && imp[a][0]) {
                jw_key(&wc, meta->m[a].fvlm_name);
                jw_str(&wc, imp[a]);
                c->entries++;
            }
            free(fin[a]);
            free(imp[a]);
            fin[a] = imp[a] = NULL;
        }
        jw_obj_end(&wd);
        jw_obj_end(&wc);
        c->studies++;
        if (rc == 0)
            rc = out_maybe_flush(&desc, e);
        if (rc == 0)
            rc = out_maybe_flush(&conc, e);
    }
    jw_obj_end(&wd);
    jw_obj_end(&wc);
    buf_putc(&desc.b, '\n');
    buf_putc(&conc.b, '\n');
    sqlite3_finalize(qk);
    sqlite3_finalize(qs);
    free(fin);
    free(imp);
    free(ids);
    rc = out_end(&desc, rc, &c->bytes, e);
    return out_end(&conc, rc, &c->bytes, e);
}

static int export_jsonl(Db *db, const Ontology *o, const AnatomyMetaTable *meta, const char *dir,
                        const char *split, int64_t study, ExportCounts *c, FvErr *e)
{
    int64_t *ids;
    int n;
    if (study_list(db, split, study, 0, &ids, &n, e))
        return -1;
    OutFile out;
    if (out_open(&out, dir, "anatomies.jsonl", e)) {
        free(ids);
        return -1;
    }
    ViewReader vr;
    int rc = view_reader_open(&vr, db, o, e);
    for (int i = 0; i < n && rc == 0; i++) {
        StudyView v;
        rc = view_load(&vr, ids[i], &v, e);
        for (int a = 0; a < o->n_anat && rc == 0; a++) {
            if (!view_anatomy_relevant(&v, a))
                continue;
            JsonW w;
            jw_init(&w, &out.b, 0);
            view_anatomy_json(&v, o, meta, a, &w);
            buf_putc(&out.b, '\n');
            c->entries++;
        }
        view_free(&v);
        c->studies += rc == 0;
        if (rc == 0)
            rc = out_maybe_flush(&out, e);
    }
    if (vr.db)
        view_reader_close(&vr);
    free(ids);
    return out_end(&out, rc, &c->bytes, e);
}

int export_write(Db *db, const Ontology *o, const AnatomyMetaTable *meta, ExportFormat format,
                 const char *dir, const char *split, int64_t study, ExportCounts *c, FvErr *e)
{
    memset(c, 0, sizeof *c);
    if (fs_mkdir_p(dir, e))
        return -1;
    return format == EXPORT_FVLM ? export_fvlm(db, o, meta, dir, split, study, c, e)
                                 : export_jsonl(db, o, meta, dir, split, study, c, e);
}
