#include "mask.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int mask_remap(Vol *mask, const NiftiLabel *labels, int nlabels, const TsClasses *t, Buf *notes,
               FvErr *e)
{
    if (mask->type != VOL_U8)
        return err_set(e, FV_EINTERNAL, "mask_remap: not a uint8 volume");
    if (nlabels <= 0)
        return 0;
    int map[256];
    for (int i = 0; i < 256; i++)
        map[i] = 0; /* values outside the table become background */
    int identity = 1, unknown = 0;
    for (int i = 0; i < nlabels; i++) {
        int key = labels[i].key;
        if (key < 0 || key > 255)
            continue;
        if (key == 0)
            continue;
        int id = ts_class_id(t, labels[i].name);
        if (id < 0) {
            if (unknown++ < 3)
                buf_printf(notes, "label %d '%s' is not a TotalSegmentator class: set to 0; ", key,
                           labels[i].name);
            id = 0;
        }
        map[key] = id;
    }
    if (unknown > 3)
        buf_printf(notes, "%d labels in all are not TotalSegmentator classes; ", unknown);
    for (int i = 1; i < 256; i++) {
        int in_table = 0;
        for (int k = 0; k < nlabels; k++)
            in_table |= labels[k].key == i;
        if (!in_table)
            continue;
        if (map[i] != i)
            identity = 0;
    }
    /* Values absent from the table: count them before deciding. */
    int64_t hist[256];
    mask_histogram(mask, hist);
    int64_t orphan = 0;
    for (int i = 1; i < 256; i++) {
        int in_table = 0;
        for (int k = 0; k < nlabels; k++)
            in_table |= labels[k].key == i;
        if (!in_table && hist[i]) {
            orphan += hist[i];
            identity = 0;
        }
    }
    if (orphan)
        buf_printf(notes, "%lld voxels carry values missing from the label table: set to 0; ",
                   (long long)orphan);
    if (identity)
        return 0;
    buf_puts(notes, "labels remapped by name onto TotalSegmentator ids; ");
    uint8_t *d = mask->data;
    size_t n = (size_t)vol_count(mask);
    for (size_t i = 0; i < n; i++)
        d[i] = (uint8_t)map[d[i]];
    return 0;
}

int mask_merge_class(Vol *into, const Vol *part, int id, int64_t *overlaps, FvErr *e)
{
    if (into->nx != part->nx || into->ny != part->ny || into->nz != part->nz ||
        part->type != VOL_U8 || into->type != VOL_U8)
        return err_set(e, FV_EFORMAT, "class mask is %lldx%lldx%lld, the others %lldx%lldx%lld",
                       (long long)part->nx, (long long)part->ny, (long long)part->nz,
                       (long long)into->nx, (long long)into->ny, (long long)into->nz);
    const uint8_t *s = part->data;
    uint8_t *d = into->data;
    size_t n = (size_t)vol_count(into);
    for (size_t i = 0; i < n; i++)
        if (s[i]) {
            if (d[i])
                (*overlaps)++;
            else
                d[i] = (uint8_t)id;
        }
    return 0;
}

void mask_histogram(const Vol *mask, int64_t present[256])
{
    memset(present, 0, 256 * sizeof *present);
    const uint8_t *d = mask->data;
    size_t n = (size_t)vol_count(mask);
    for (size_t i = 0; i < n; i++)
        present[d[i]]++;
}

int mask_content_verdict(const Vol *v, double *witness)
{
    size_t n = (size_t)vol_count(v);
    *witness = 0;
    if (!n)
        return -1;
    double a = 255, b = 0;
    if (v->type == VOL_U8) {
        const uint8_t *d = v->data;
        uint8_t l = 255, h = 0;
        for (size_t i = 0; i < n; i++) {
            l = d[i] < l ? d[i] : l;
            h = d[i] > h ? d[i] : h;
        }
        a = l, b = h;
    } else if (v->type == VOL_I16) {
        const int16_t *d = v->data;
        for (size_t i = 0; i < n; i++) {
            if (d[i] < 0 || d[i] > 255) {
                *witness = d[i];
                return 0;
            }
            a = d[i] < a ? d[i] : a;
            b = d[i] > b ? d[i] : b;
        }
    } else {
        const float *d = v->data;
        for (size_t i = 0; i < n; i++) {
            if (!(d[i] >= 0 && d[i] <= 255) || d[i] != floorf(d[i])) {
                *witness = d[i];
                return 0;
            }
            a = d[i] < a ? d[i] : a;
            b = d[i] > b ? d[i] : b;
        }
    }
    *witness = b;
    return a == b ? -1 : 1;
}

int mask_to_labels(Vol *v, FvErr *e)
{
    if (v->type == VOL_U8)
        return 0;
    size_t n = (size_t)vol_count(v);
    uint8_t *o = malloc(n ? n : 1);
    if (!o)
        return err_set(e, FV_ENOMEM, "mask: out of memory");
    for (size_t i = 0; i < n; i++) {
        double x = v->type == VOL_I16 ? ((const int16_t *)v->data)[i] : ((const float *)v->data)[i];
        if (!(x >= 0 && x <= 255 && x == floor(x))) {
            free(o);
            return err_set(e, FV_EFORMAT,
                           "mask voxel %zu has value %g: labels must be integers 0..255", i, x);
        }
        o[i] = (uint8_t)x;
    }
    free(v->data);
    v->data = o;
    v->type = VOL_U8;
    return 0;
}
