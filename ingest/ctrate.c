#include "ctrate.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "csv.h"

/* The base name without .nii.gz / .nii / .gz and a mask suffix. */
static void stem_of(const char *name, size_t len, char *out, size_t n)
{
    if (len >= n)
        len = n - 1;
    memcpy(out, name, len);
    out[len] = '\0';
    const char *exts[] = {".nii.gz", ".nii", ".gz", ".mha", ".nrrd"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t l = strlen(out), k = strlen(exts[i]);
        if (l > k && strcasecmp(out + l - k, exts[i]) == 0) {
            out[l - k] = '\0';
            break;
        }
    }
    const char *sfx[] = {"_seg", "_mask", "_segmentation", "_labels", "-seg"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        size_t l = strlen(out), k = strlen(sfx[i]);
        if (l > k && strcmp(out + l - k, sfx[i]) == 0) {
            out[l - k] = '\0';
            break;
        }
    }
}

/* <split>_<digits>_<letters>_<digits> */
static int match_name(const char *s, char study[96], char patient[96], char split[8], int *recon)
{
    const char *splits[] = {"train", "valid", "test"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(splits[i]);
        if (strncmp(s, splits[i], l) != 0 || s[l] != '_')
            continue;
        const char *p = s + l + 1, *q = p;
        while (isdigit((unsigned char)*q))
            q++;
        if (q == p || *q != '_')
            return 0;
        const char *pid_end = q;
        const char *r = q + 1, *t = r;
        while (isalpha((unsigned char)*t))
            t++;
        if (t == r || (*t != '_' && *t != '\0'))
            return 0;
        const char *scan_end = t;
        int rc = -1;
        if (*t == '_') {
            const char *u = t + 1, *v = u;
            while (isdigit((unsigned char)*v))
                v++;
            if (v == u || *v != '\0')
                return 0;
            rc = atoi(u);
        }
        snprintf(split, 8, "%s", splits[i]);
        snprintf(patient, 96, "%.*s", (int)(pid_end - s), s);
        snprintf(study, 96, "%.*s", (int)(scan_end - s), s);
        if (recon)
            *recon = rc;
        return 1;
    }
    return 0;
}

int ctrate_parse_name(const char *path, char study[96], char patient[96], char split[8],
                      int *recon)
{
    /* Try the last path component, then the folders above it (a per-class
     * mask folder named after the volume). */
    const char *end = path + strlen(path);
    while (end > path) {
        const char *s = end;
        while (s > path && s[-1] != '/')
            s--;
        char stem[128];
        stem_of(s, (size_t)(end - s), stem, sizeof stem);
        if (match_name(stem, study, patient, split, recon))
            return 1;
        end = s > path ? s - 1 : path;
    }
    return 0;
}

/* Numbers in a metadata cell: "[0.75, 0.75]", "['1', '0', '0']", "3". */
static int numbers(const char *s, double *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        if (isdigit((unsigned char)*s) || ((*s == '-' || *s == '+' || *s == '.') &&
                                           (isdigit((unsigned char)s[1]) || s[1] == '.'))) {
            char *end;
            double v = strtod(s, &end);
            if (end == s) {
                s++;
                continue;
            }
            if (!isfinite(v))
                return n;
            out[n++] = v;
            s = end;
        } else {
            s++;
        }
    }
    return n;
}

int ctrate_meta_load(CtrateMetaTable *t, const char *csv, size_t n, int *bad_rows, FvErr *e)
{
    CsvReader r;
    *bad_rows = 0;
    csv_open(&r, csv, n, NULL, 0);
    if (csv_header(&r, e)) {
        csv_close(&r);
        return -1;
    }
    int cv = csv_col(&r, "VolumeName"), cxy = csv_col(&r, "XYSpacing"),
        cz = csv_col(&r, "ZSpacing"), cs = csv_col(&r, "RescaleSlope"),
        ci = csv_col(&r, "RescaleIntercept"), cp = csv_col(&r, "ImagePositionPatient"),
        co = csv_col(&r, "ImageOrientationPatient");
    if (cv < 0) {
        csv_close(&r);
        return err_set(e, FV_EFORMAT, "metadata table without a VolumeName column");
    }
    int rc;
    while ((rc = csv_next(&r, e)) == 1) {
        const char *v = csv_field(&r, cv);
        if (!*v) {
            (*bad_rows)++;
            continue;
        }
        if (arr_reserve(&t->rows, &t->cap, t->n, sizeof *t->rows, 256)) {
            csv_close(&r);
            return err_set(e, FV_ENOMEM, "metadata: out of memory");
        }
        CtrateMeta *m = &t->rows[t->n];
        memset(m, 0, sizeof *m);
        stem_of(v, strlen(v), m->volume, sizeof m->volume);
        m->has_xy = cxy >= 0 && numbers(csv_field(&r, cxy), m->xy, 2) == 2;
        if (m->has_xy && numbers(csv_field(&r, cxy), m->xy, 2) == 2 && !(m->xy[0] > 0 && m->xy[1] > 0))
            m->has_xy = 0;
        m->has_z = cz >= 0 && numbers(csv_field(&r, cz), &m->z, 1) == 1 && m->z > 0;
        double s = 1, in = 0;
        int hs = cs >= 0 && numbers(csv_field(&r, cs), &s, 1) == 1;
        int hi = ci >= 0 && numbers(csv_field(&r, ci), &in, 1) == 1;
        m->has_rescale = hs || hi;
        m->slope = hs && s != 0 ? s : 1;
        m->inter = hi ? in : 0;
        m->has_ipp = cp >= 0 && numbers(csv_field(&r, cp), m->ipp, 3) == 3;
        m->has_iop = co >= 0 && numbers(csv_field(&r, co), m->iop, 6) == 6;
        t->n++;
    }
    csv_close(&r);
    return rc < 0 ? -1 : 0;
}

const CtrateMeta *ctrate_meta_find(const CtrateMetaTable *t, const char *volume_path)
{
    const char *s = strrchr(volume_path, '/');
    s = s ? s + 1 : volume_path;
    char stem[128];
    stem_of(s, strlen(s), stem, sizeof stem);
    /* Later rows win (a corrected table given after the first). */
    for (int i = t->n - 1; i >= 0; i--)
        if (strcmp(t->rows[i].volume, stem) == 0)
            return &t->rows[i];
    return NULL;
}

void ctrate_meta_free(CtrateMetaTable *t)
{
    free(t->rows);
    memset(t, 0, sizeof *t);
}

int ctrate_meta_affine(const CtrateMeta *m, double affine[4][4], FvErr *e)
{
    if (!m->has_xy || !m->has_z)
        return err_set(e, FV_EFORMAT, "metadata row %s lacks XYSpacing or ZSpacing", m->volume);
    double iop[6] = {1, 0, 0, 0, 1, 0};
    if (m->has_iop)
        memcpy(iop, m->iop, sizeof iop);
    const double *r = iop, *c = iop + 3;
    double nrm[3] = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2],
                     r[0] * c[1] - r[1] * c[0]};
    double len = sqrt(nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2]);
    if (!(len > 0.5))
        return err_set(e, FV_EFORMAT, "metadata row %s: ImageOrientationPatient is degenerate",
                       m->volume);
    double lps[3][4];
    for (int q = 0; q < 3; q++) {
        lps[q][0] = r[q] * m->xy[0];
        lps[q][1] = c[q] * m->xy[1];
        lps[q][2] = nrm[q] / len * m->z;
        lps[q][3] = m->has_ipp ? m->ipp[q] : 0;
    }
    memset(affine, 0, 16 * sizeof(double));
    for (int q = 0; q < 4; q++) {
        affine[0][q] = -lps[0][q];
        affine[1][q] = -lps[1][q];
        affine[2][q] = lps[2][q];
    }
    affine[3][3] = 1;
    return 0;
}
