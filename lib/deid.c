#include "deid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "log.h"
#include "sha256.h"

int deid_key(Config *cfg, const char **key, FvErr *e)
{
    const char *k = cfg ? config_str(cfg, "deid.key", NULL) : NULL;
    if (!k || !*k)
        k = getenv("FVLM_DEID_KEY");
    if (!k || !*k)
        return err_set(e, FV_EUSAGE,
                       "no de-identification key: set FVLM_DEID_KEY in the environment or "
                       "deid.key in the config (any secret string, kept the same for one corpus)");
    if (strlen(k) < 8)
        return err_set(e, FV_EUSAGE, "the de-identification key is shorter than 8 characters");
    *key = k;
    return 0;
}

int deid_pseudonym(const char *key, const char *kind, const char *source_id, char out[65],
                   FvErr *e)
{
    Buf msg = {0};
    buf_printf(&msg, "%s:%s", kind, source_id);
    if (msg.failed) {
        buf_free(&msg);
        return err_set(e, FV_ENOMEM, "de-identification: out of memory");
    }
    unsigned char mac[32];
    hmac_sha256(key, strlen(key), msg.data, msg.len, mac);
    buf_free(&msg);
    sha256_to_hex(mac, out);
    return 0;
}

/* ------------------------------------------------------------------ paths */

/* Folder and file stems of the layouts fvlm reads and writes, compared
 * case-insensitively without the extension. */
static const char *const generic_names[] = {
    "dicom", "dcm", "dicoms", "seg", "segs", "segmentation", "segmentations", "mask", "masks",
    "label", "labels", "labelstr", "imagestr", "imagests", "totalseg", "totalsegmentator",
    "ct", "cts", "ct_scans", "scan", "scans", "image", "images", "img", "imgs", "volume",
    "volumes", "vol", "report", "reports", "findings", "impression", "nifti", "nii", "data",
    "dataset", "datasets", "train", "training", "valid", "val", "validation", "test", "testing",
    "tmp", "temp", "input", "inputs", "output", "outputs", "series", "study", "studies",
    "export", "exports", "home", "root", "mnt", "media", "srv", "opt", "var", "usr", "work",
    "raw", "metadata", "readme", "notes", "dicomdir", "corpus", "config", "ground_truth",
    "truth", "reports_csv", "sr", "ct_rate", "ctrate", "dataset_info", "license",
};

/* Extensions kept after a hashed stem (longest first where one ends
 * another). */
static const char *const known_ext[] = {
    ".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".nii.gz", ".tgz", ".tar", ".zip", ".7z",
    ".nii", ".hdr", ".img", ".dcm", ".ima", ".txt", ".json", ".jsonl", ".csv", ".tsv", ".xml",
    ".db", ".ini", ".gz", ".safetensors", ".npy", ".npz", ".md", ".html", ".log",
};

static size_t ext_len(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof known_ext / sizeof known_ext[0]; i++) {
        size_t k = strlen(known_ext[i]);
        if (n > k && strncasecmp(s + n - k, known_ext[i], k) == 0)
            return k;
    }
    return 0;
}

/* A numbered name: at most 5 letters, an optional '_' or '-', 1 to 6
 * digits (IM0001, I12, slice_12, 0001, SE3). */
static int is_numbered(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && i < 6 && isalpha((unsigned char)s[i]))
        i++;
    if (i > 5)
        return 0;
    if (i > 0 && i < n && (s[i] == '_' || s[i] == '-'))
        i++;
    size_t d = 0;
    while (i < n && isdigit((unsigned char)s[i]))
        i++, d++;
    return i == n && d >= 1 && d <= 6;
}

int deid_component_is_generic(const char *comp, size_t n)
{
    if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && !strncmp(comp, "..", 2)))
        return 1;
    size_t stem = n - ext_len(comp, n);
    if (is_numbered(comp, stem))
        return 1;
    /* "row 4", "line 12": places inside a table or a JSON-lines file */
    if ((stem > 4 && !strncmp(comp, "row ", 4) && is_numbered(comp + 4, stem - 4)) ||
        (stem > 5 && !strncmp(comp, "line ", 5) && is_numbered(comp + 5, stem - 5)))
        return 1;
    for (size_t i = 0; i < sizeof generic_names / sizeof generic_names[0]; i++)
        if (strlen(generic_names[i]) == stem && strncasecmp(comp, generic_names[i], stem) == 0)
            return 1;
    return 0;
}

/* The length of a trailing annotation fvlm adds to a description:
 * " (" digits... ")" or " (series ...)"; 0 when there is none. */
static size_t annotation_len(const char *s, size_t n)
{
    if (n < 4 || s[n - 1] != ')')
        return 0;
    for (size_t i = n - 1; i-- > 0;) {
        if (s[i] == '(' && i > 0 && s[i - 1] == ' ') {
            const char *a = s + i + 1;
            if (isdigit((unsigned char)*a) || !strncmp(a, "series ", 7))
                return n - (i - 1);
            return 0;
        }
        if (s[i] == '/' || s[i] == ':' || s[i] == '(')
            return 0;
    }
    return 0;
}

int deid_path(const char *key, const char *path, Buf *out, FvErr *e)
{
    size_t n = strlen(path);
    if (n > DEID_PATH_MAX)
        return err_set(e, FV_ELIMIT,
                       "de-identification: a name of %zu bytes is over the %d-byte limit", n,
                       DEID_PATH_MAX);
    size_t start_len = out->len;
    size_t ann = annotation_len(path, n), body = n - ann;
    size_t i = 0;
    while (i <= body) {
        size_t j = i;
        while (j < body && path[j] != '/' && path[j] != ':')
            j++;
        const char *c = path + i;
        size_t cn = j - i;
        if (deid_component_is_generic(c, cn)) {
            buf_append(out, c, cn);
        } else {
            size_t el = ext_len(c, cn);
            if (key) {
                Buf msg = {0};
                buf_puts(&msg, "path:");
                buf_append(&msg, c, cn - el);
                unsigned char mac[32];
                char hex[65];
                if (!msg.failed) {
                    hmac_sha256(key, strlen(key), msg.data, msg.len, mac);
                    sha256_to_hex(mac, hex);
                    buf_append(out, hex, 12);
                } else {
                    out->failed = 1;
                }
                buf_free(&msg);
            } else {
                buf_putc(out, '_');
            }
            buf_append(out, c + cn - el, el);
        }
        if (j < body)
            buf_putc(out, path[j]);
        i = j + 1;
    }
    buf_append(out, path + body, ann);
    if (out->failed) {
        out->len = start_len;
        if (out->data)
            out->data[start_len] = '\0';
        return err_set(e, FV_ENOMEM, "de-identification of a name: out of memory");
    }
    if (!out->data)
        buf_puts(out, "");
    return 0;
}

int deid_path_to(const char *key, const char *path, char *out, size_t n, FvErr *e)
{
    Buf b = {0};
    if (deid_path(key, path, &b, e)) {
        buf_free(&b);
        return -1;
    }
    if (b.len + 1 > n) {
        buf_free(&b);
        return err_set(e, FV_ELIMIT, "de-identification: the name does not fit %zu bytes", n);
    }
    memcpy(out, b.data, b.len + 1);
    buf_free(&b);
    return 0;
}

int deid_text_paths(const char *key, const char *text, Buf *out, FvErr *e)
{
    const char *p = text;
    while (*p) {
        const char *w = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        /* the word without quotes and trailing punctuation */
        const char *a = w, *b = p;
        while (a < b && (*a == '\'' || *a == '"' || *a == '(' || *a == '`'))
            a++;
        while (b > a && (b[-1] == '\'' || b[-1] == '"' || b[-1] == ')' || b[-1] == ',' ||
                         b[-1] == ';' || b[-1] == ':' || b[-1] == '.' || b[-1] == '`'))
            b--;
        size_t wn = (size_t)(b - a);
        int pathlike = wn > 0 && (memchr(a, '/', wn) != NULL || ext_len(a, wn) > 0);
        buf_append(out, w, (size_t)(a - w));
        if (pathlike) {
            char *word = strndup(a, wn);
            if (!word || deid_path(key, word, out, e)) {
                free(word);
                return word ? -1 : err_set(e, FV_ENOMEM, "de-identification: out of memory");
            }
            free(word);
        } else {
            buf_append(out, a, wn);
        }
        buf_append(out, b, (size_t)(p - b));
        const char *s = p;
        while (*p && isspace((unsigned char)*p))
            p++;
        buf_append(out, s, (size_t)(p - s));
    }
    if (!out->data)
        buf_puts(out, "");
    if (out->failed)
        return err_set(e, FV_ENOMEM, "de-identification of a message: out of memory");
    return 0;
}

/* ---------------------------------------------------------------------------
 * The corpus's key fingerprint (T-trust).
 * ------------------------------------------------------------------------ */

void deid_fingerprint(const char *key, char out[65])
{
    unsigned char mac[32];
    hmac_sha256(key, strlen(key), DEID_FINGERPRINT_MSG, strlen(DEID_FINGERPRINT_MSG), mac);
    sha256_to_hex(mac, out);
}

/* The stored fingerprint into out ("" when none). */
static int stored_fingerprint(Db *db, char out[65], FvErr *e)
{
    sqlite3_stmt *st;
    out[0] = '\0';
    if (db_prepare(db, &st, "SELECT value FROM meta WHERE key = 'deid_fingerprint'", e))
        return -1;
    int got = db_step(db, st, e);
    if (got == 1) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, 65, "%s", v ? (const char *)v : "");
    }
    sqlite3_finalize(st);
    return got < 0 ? -1 : 0;
}

int deid_check_corpus(Db *db, const char *key, FvErr *e)
{
    char mine[65], theirs[65];
    deid_fingerprint(key, mine);
    if (stored_fingerprint(db, theirs, e))
        return -1;
    if (!theirs[0] && !sqlite3_db_readonly(db->h, "main")) {
        int64_t any = 0;
        int found = 0;
        if (db_query_int(db, e, &any, &found, "SELECT EXISTS (SELECT 1 FROM studies)", ""))
            return -1;
        if (any)
            log_warn("%s has studies but no key fingerprint (built before fvlm kept one): this "
                     "key cannot be checked against them and is recorded as the corpus's",
                     db->path);
        if (db_run(db, e, "INSERT OR IGNORE INTO meta (key, value) VALUES ('deid_fingerprint', ?)",
                   "s", mine) ||
            stored_fingerprint(db, theirs, e))
            return -1;
    }
    if (theirs[0] && strcmp(theirs, mine) != 0) {
        return err_set(e, FV_EUSAGE,
                       "%s was built with another de-identification key (fingerprint %.12s..., "
                       "this key %.12s...): set FVLM_DEID_KEY to the corpus's key",
                       db->path, theirs, mine);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Finding a study by an identifier a user holds.
 * ------------------------------------------------------------------------ */

/* The identifier without surrounding whitespace into out (n bytes); 0 when
 * empty or too long. */
static size_t id_trim(const char *id, char *out, size_t n)
{
    size_t k = strlen(id);
    while (k && isspace((unsigned char)id[k - 1]))
        k--;
    while (k && isspace((unsigned char)*id))
        id++, k--;
    if (k == 0 || k >= n)
        return 0;
    memcpy(out, id, k);
    out[k] = '\0';
    return k;
}

int deid_study_id_put(Db *db, const char *key, int64_t study_id, const char *kind,
                      const char *id, FvErr *e)
{
    char t[1024], h[65];
    if (!id || !id_trim(id, t, sizeof t))
        return 0;
    int rc = deid_pseudonym(key, kind, t, h, e);
    explicit_bzero(t, sizeof t);
    if (rc == 0)
        rc = db_run(db, e,
                    "INSERT OR IGNORE INTO study_ids (study_id, kind, id_hash) VALUES (?, ?, ?)",
                    "iss", study_id, kind, h);
    return rc;
}

/* Extensions a typed file name may carry (case-insensitive, longest first
 * where one ends another): archives, NIfTI, DICOM. */
static const char *const typed_ext[] = {
    ".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz4", ".tar.lzma", ".nii.gz",
    ".tgz", ".tbz2", ".tbz", ".txz", ".tzst", ".tar", ".zip", ".7z", ".cpio", ".nii",
    ".dcm", ".dicom",
};

/* The name of a typed path without folders and extension into out; 0 when
 * it is the text itself (nothing to strip) or nothing is left. */
static int typed_stem(const char *t, char *out, size_t n)
{
    const char *b = strrchr(t, '/');
    b = b ? b + 1 : t;
    size_t k = strlen(b);
    for (size_t i = 0; i < sizeof typed_ext / sizeof typed_ext[0]; i++) {
        size_t x = strlen(typed_ext[i]);
        if (k > x && strncasecmp(b + k - x, typed_ext[i], x) == 0) {
            k -= x;
            break;
        }
    }
    if (k == 0 || k >= n || (b == t && k == strlen(t)))
        return 0;
    memcpy(out, b, k);
    out[k] = '\0';
    return 1;
}

/* 1 when the comma-separated list holds kind ("study" is a prefix of
 * "study_uid": whole items only). */
static int has_kind(const char *list, const char *kind)
{
    size_t k = strlen(kind);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == k && !strncmp(p, kind, k))
            return 1;
        if (!c)
            break;
        p = c + 1;
    }
    return 0;
}

static int match_add(DeidMatch **m, int *n, int *cap, int64_t id, const char *skey,
                     const char *kind, FvErr *e)
{
    for (int i = 0; i < *n; i++)
        if ((*m)[i].study_id == id) {
            DeidMatch *x = &(*m)[i];
            if (!has_kind(x->matched, kind))
                snprintf(x->matched + strlen(x->matched), sizeof x->matched - strlen(x->matched),
                         ",%s", kind);
            return 0;
        }
    if (arr_reserve(m, cap, *n, sizeof **m, 4))
        return err_set(e, FV_ENOMEM, "study lookup: out of memory");
    DeidMatch *x = &(*m)[(*n)++];
    memset(x, 0, sizeof *x);
    x->study_id = id;
    snprintf(x->study_key, sizeof x->study_key, "%s", skey ? skey : "");
    snprintf(x->matched, sizeof x->matched, "%s", kind);
    return 0;
}

static int cmp_match(const void *a, const void *b)
{
    const DeidMatch *x = a, *y = b;
    return (x->study_id > y->study_id) - (x->study_id < y->study_id);
}

int deid_study_lookup(Db *db, const char *key, const char *text, DeidMatch **out, int *n,
                      FvErr *e)
{
    *out = NULL;
    *n = 0;
    char forms[2][1024];
    int nf = 0;
    if (id_trim(text, forms[0], sizeof forms[0]))
        nf = 1 + typed_stem(forms[0], forms[1], sizeof forms[1]);
    static const char *const kinds[] = {DEID_ID_ACCESSION, DEID_ID_STUDY_UID, DEID_ID_SOURCE,
                                        "study"};
    sqlite3_stmt *by_id = NULL, *by_key = NULL;
    int rc = 0, cap = 0;
    if (nf &&
        (db_prepare(db, &by_id,
                    "SELECT s.id, s.study_key FROM study_ids i JOIN studies s "
                    "ON s.id = i.study_id WHERE i.kind = ? AND i.id_hash = ?",
                    e) ||
         db_prepare(db, &by_key, "SELECT id, study_key FROM studies WHERE study_key = ?", e)))
        rc = -1;
    for (size_t k = 0; rc == 0 && k < sizeof kinds / sizeof kinds[0]; k++)
        for (int f = 0; rc == 0 && f < nf; f++) {
            char h[65];
            int last = k == sizeof kinds / sizeof kinds[0] - 1;
            sqlite3_stmt *st = last ? by_key : by_id;
            if (deid_pseudonym(key, kinds[k], forms[f], h, e) ||
                (last ? db_bindf(db, st, e, "s", h) : db_bindf(db, st, e, "ss", kinds[k], h))) {
                rc = -1;
                break;
            }
            int r;
            while ((r = db_step(db, st, e)) == 1)
                if (match_add(out, n, &cap, sqlite3_column_int64(st, 0),
                              (const char *)sqlite3_column_text(st, 1), kinds[k], e)) {
                    r = -1;
                    break;
                }
            if (r < 0)
                rc = -1;
        }
    sqlite3_finalize(by_id);
    sqlite3_finalize(by_key);
    /* What a user typed must not outlive the lookup. */
    explicit_bzero(forms, sizeof forms);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
        return -1;
    }
    if (*n > 1)
        qsort(*out, (size_t)*n, sizeof **out, cmp_match);
    return 0;
}

int deid_study_find(Db *db, const char *key, const char *text, DeidMatch **out, int *n,
                    FvErr *e)
{
    *out = NULL;
    *n = 0;
    if (deid_check_corpus(db, key, e))
        return -1;
    return deid_study_lookup(db, key, text, out, n, e);
}
