/* ingest: a unit's report files: text, JSON lines, DICOM structured reports. */
#include "ingest_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "report_text.h"
#include "sha256.h"

void ingest_process_report(Ingest *g, UnitState *us, Held *h)
{
    FvErr e = {0};
    Buf text = {0};
    const char *enc;
    if (report_decode(h->data, h->len, (size_t)g->o->max_report_bytes, &text, &enc, &e)) {
        ingest_held_fail(g, h, "report", &e);
        buf_free(&text);
        return;
    }
    StudyRef ref;
    if (!ingest_own_study(h->name, &ref) && ingest_unit_study(g, us, h->name, &ref, &e)) {
        ingest_held_fail(g, h, "report", &e);
        buf_free(&text);
        return;
    }
    char desc[4400];
    ingest_describe(h->source, h->member, desc, sizeof desc);
    SrcRec src = {h->source, h->member, "report", "ok", h->sha, h->size};
    if (ingest_store_report(g, &ref, text.data ? text.data : "", text.len, h->sha, desc, "txt", enc,
                     us->phi, us->nphi, &src, 1, &e))
        ingest_held_fail(g, h, "report", &e);
    else
        h->done = 1;
    buf_free(&text);
}

/* JSON lines: {"study_id" | "StudyInstanceUID" | "VolumeName" | "id": ...,
 * "text" | "report" | "findings" + "impression": ...} per line. */
void ingest_process_jsonl(Ingest *g, UnitState *us, Held *h)
{
    FvErr e = {0};
    Buf text = {0};
    const char *enc;
    if (report_decode(h->data, h->len, (size_t)1 << 34, &text, &enc, &e)) {
        ingest_held_fail(g, h, "report", &e);
        buf_free(&text);
        return;
    }
    int line = 0, stored = 0, bad = 0;
    const char *p = text.data ? text.data : "", *end = p + text.len;
    /* A .json file may be one (pretty-printed) object. */
    JsonValue *whole = NULL;
    int single = json_parse(p, (size_t)(end - p), &whole, &e) == 0;
    err_clear(&e);
    /* JSON that never names a report field is not a report file (ground
     * truth, sidecars): ignored, not an error per line. */
    static const char *fields[] = {"\"text\"", "\"report\"", "\"findings\"", "\"impression\"",
                                   "\"Findings_EN\"", "\"Impressions_EN\""};
    int any = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !any; i++)
        any = strstr(p, fields[i]) != NULL;
    if (!any) {
        json_free(&whole);
        ingest_held_ignore(g, h, "other", "JSON without a report field (text, report, findings, "
                                          "impression)");
        buf_free(&text);
        return;
    }
    while (p < end || single) {
        const char *nl = single ? end : memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        line++;
        JsonValue *v = NULL;
        size_t ln = (size_t)(nl - p);
        int blank = 1;
        for (size_t i = 0; i < ln; i++)
            blank &= isspace((unsigned char)p[i]) != 0;
        if (single) {
            v = whole;
            whole = NULL;
        } else if (blank) {
            p = nl + 1;
            continue;
        } else if (json_parse(p, ln, &v, &e)) {
            char where[300];
            snprintf(where, sizeof where, "%s%sline %d", h->member, h->member[0] ? ":" : "", line);
            ingest_fail(g, h->source, where, &e);
            err_clear(&e);
            bad++;
            p = nl + 1;
            continue;
        }
        const char *id = json_get_str(v, "study_id", NULL);
        if (!id) id = json_get_str(v, "StudyInstanceUID", NULL);
        if (!id) id = json_get_str(v, "VolumeName", NULL);
        if (!id) id = json_get_str(v, "study", NULL);
        if (!id) id = json_get_str(v, "id", NULL);
        const char *t = json_get_str(v, "text", NULL);
        if (!t) t = json_get_str(v, "report", NULL);
        Buf composed = {0};
        if (!t) {
            const char *f = json_get_str(v, "findings", json_get_str(v, "Findings_EN", NULL));
            const char *im = json_get_str(v, "impression", json_get_str(v, "Impressions_EN", NULL));
            if (f || im) {
                report_compose_ctrate(f ? f : "", im ? im : "", &composed);
                t = composed.data;
            }
        }
        char where[300];
        snprintf(where, sizeof where, "%s%sline %d", h->member, h->member[0] ? ":" : "", line);
        if (!t) {
            ingest_fail_msg(g, h->source, where, "JSON report without a text, report, findings or "
                                          "impression field");
            bad++;
        } else {
            StudyRef ref;
            int ok = 1;
            if (id && !ingest_own_study(id, &ref)) {
                memset(&ref, 0, sizeof ref);
                ref.dataset = "hospital";
                snprintf(ref.src, sizeof ref.src, "%s", id);
                char path[4200];
                snprintf(path, sizeof path, "%s/%s", us->u->path, h->name);
                ingest_split_from_path(path, ref.split);
            } else if (!id && ingest_unit_study(g, us, h->name, &ref, &e)) {
                ingest_fail(g, h->source, where, &e);
                ok = 0;
                bad++;
            }
            if (ok) {
                char sha[65], desc[4600];
                sha256_hex(t, strlen(t), sha);
                snprintf(desc, sizeof desc, "%s%s%s:line %d", h->source, h->member[0] ? ":" : "",
                         h->member, line);
                if (ingest_store_report(g, &ref, t, strlen(t), sha, desc, "jsonl", enc, us->phi, us->nphi,
                                 NULL, 0, &e)) {
                    ingest_fail(g, h->source, where, &e);
                    err_clear(&e);
                    bad++;
                } else {
                    stored++;
                }
            }
        }
        buf_free(&composed);
        json_free(&v);
        if (single)
            break;
        p = nl + 1;
    }
    json_free(&whole);
    if (!stored && !bad) {
        ingest_held_ignore(g, h, "other", "JSON without any report");
    } else {
        ingest_held_record(g, h, "report", bad && !stored ? "failed" : "ok", 0);
    }
    buf_free(&text);
}

void ingest_process_sr(Ingest *g, UnitState *us, Held *h)
{
    FvErr e = {0};
    char *raw = NULL;
    size_t rl = 0;
    if (dcm_sr_text(&h->dcm, &raw, &rl, &e)) {
        ingest_held_fail(g, h, "dicom", &e);
        return;
    }
    if (!raw || !rl) {
        free(raw);
        ingest_held_ignore(g, h, "dicom", "a structured report without text");
        return;
    }
    Buf text = {0};
    const char *enc;
    if (report_decode_dicom((const unsigned char *)raw, rl, h->im.charset, &text, &enc, &e)) {
        free(raw);
        buf_free(&text);
        ingest_held_fail(g, h, "dicom", &e);
        return;
    }
    free(raw);
    StudyRef ref;
    memset(&ref, 0, sizeof ref);
    ref.dataset = "hospital";
    snprintf(ref.src, sizeof ref.src, "%s", h->im.study_uid[0] ? h->im.study_uid : us->u->name);
    ref.src_kind = h->im.study_uid[0] ? DEID_ID_STUDY_UID : NULL;
    snprintf(ref.patient, sizeof ref.patient, "%s", h->im.patient_id);
    snprintf(ref.accession, sizeof ref.accession, "%s", h->im.accession);
    snprintf(ref.alias, sizeof ref.alias, "%s", us->u->name);
    char path[4200], desc[4400];
    snprintf(path, sizeof path, "%s/%s", us->u->path, h->name);
    ingest_split_from_path(path, ref.split);
    ingest_describe(h->source, h->member, desc, sizeof desc);
    SrcRec src = {h->source, h->member, "dicom", "ok", h->sha, h->size};
    if (ingest_store_report(g, &ref, text.data ? text.data : "", text.len, h->sha, desc, "dicom_sr", enc,
                     us->phi, us->nphi, &src, 1, &e))
        ingest_held_fail(g, h, "dicom", &e);
    else
        h->done = 1;
    buf_free(&text);
}
