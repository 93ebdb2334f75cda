#include "deid.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
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
