/* ingest: report texts (de-identified) into the corpus; CT-RATE reports.csv. */
#include "ingest_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "ctrate.h"
#include "log.h"
#include "names.h"
#include "report_text.h"
#include "sha256.h"

/* Stores a report text (UTF-8, not yet de-identified). */
int ingest_store_report(Ingest *g, const StudyRef *ref, const char *text, size_t len,
                        const char *sha, const char *source, const char *format,
                        const char *encoding, const PhiValue *known, int nknown, SrcRec *srcs,
                        int nsrc, FvErr *e)
{
    int mine = ingest_in_shard(g, ref, e);
    if (mine <= 0)
        return mine; /* another shard's study: its corpus records it */
    Buf clean = {0};
    int counts[PHI_NKINDS] = {0};
    if (ingest_deid_fault(text, len)) {
        buf_free(&clean);
        return err_set(e, FV_EINTERNAL, "de-identification of the report failed (test fault): "
                                        "nothing of it is stored");
    }
    if (phi_scrub(g->phi, text, len, known, nknown, &clean, counts, e)) {
        buf_free(&clean);
        return -1;
    }
    int nphi = 0;
    for (int k = 0; k < PHI_NKINDS; k++)
        nphi += counts[k];
    if (!clean.data)
        buf_puts(&clean, "");
    const char *lang = report_language(clean.data, clean.len);
    int64_t sid;
    int rc = corpus_begin(&g->corpus, e);
    if (rc == 0)
        rc = ingest_study_get(g, ref, 1, &sid, e);
    char have[65] = "";
    if (rc == 0)
        rc = corpus_report_sha(&g->corpus, sid, have, e);
    const char *status = "ok";
    if (rc == 0 && have[0]) {
        if (strcmp(have, sha) != 0) {
            if (nsrc == 0) /* else sources_commit names each member */
                log_info("%s: ignored: the study already has another report", source);
            status = "ignored";
            g->cnt->ignored++;
        }
    } else if (rc == 0) {
        rc = corpus_report_put(&g->corpus, sid, sha, source, format, lang, encoding, clean.data,
                               nphi, e);
    }
    rc = ingest_sources_commit(g, rc, srcs, nsrc, status, "the study already has another report",
                               sid, NULL, e);
    if (rc == 0 && !have[0]) {
        g->cnt->reports++;
        for (int k = 0; k < PHI_NKINDS; k++)
            g->cnt->phi[k] += counts[k];
    }
    buf_free(&clean);
    return rc;
}

/* CT-RATE reports.csv: one report per row, joined by VolumeName. Rows are
 * committed in batches; the table's own source row comes last, so an
 * interrupted table is read again (rows already stored are skipped). */
int ingest_ctrate_reports_table(Ingest *g, const char *source, const char *member,
                                const unsigned char *data, size_t len, const char *sha)
{
    FvErr e = {0};
    CsvReader r = {0};
    Buf text = {0};
    const char *enc;
    int bad = report_decode(data, len, (size_t)1 << 34, &text, &enc, &e);
    if (!bad) {
        csv_open(&r, text.data, text.len, NULL, 0);
        bad = csv_header(&r, &e);
    }
    if (bad) {
        ingest_fail(g, source, member, &e);
        ingest_record_source(g, source, member, sha, (int64_t)len, "report", "failed", 0);
        csv_close(&r);
        buf_free(&text);
        return 0;
    }
    int cv = csv_col(&r, "VolumeName"), cf = csv_col(&r, "Findings_EN"),
        ci = csv_col(&r, "Impressions_EN");
    if (ci < 0)
        ci = csv_col(&r, "Impression_EN");
    if (cv < 0 || (cf < 0 && ci < 0)) {
        ingest_fail_msg(g, source, member,
                 "not a CT-RATE reports table: needs columns VolumeName and Findings_EN or "
                 "Impressions_EN");
        ingest_record_source(g, source, member, sha, (int64_t)len, "report", "failed", 0);
        csv_close(&r);
        buf_free(&text);
        return 0;
    }
    int rc, row_errors = 0;
    char where[64];
    Buf composed = {0};
    while ((rc = csv_next(&r, &e)) == 1) {
        snprintf(where, sizeof where, "%s%srow %d", member && *member ? member : "",
                 member && *member ? ":" : "", r.row);
        const char *vol = csv_field(&r, cv);
        char study[96], patient[96], split[8];
        int recon;
        if (!ctrate_parse_name(vol, study, patient, split, &recon)) {
            ingest_fail_msg(g, source, where, "VolumeName '%.80s' is not a CT-RATE volume name", vol);
            row_errors++;
            continue;
        }
        buf_reset(&composed);
        report_compose_ctrate(csv_field(&r, cf), csv_field(&r, ci), &composed);
        char rsha[65];
        sha256_hex(composed.data, composed.len, rsha);
        StudyRef ref;
        ingest_ref_ctrate(&ref, study, patient, split);
        name_stem(vol, ref.alias, sizeof ref.alias); /* the VolumeName a user holds */
        char src[600];
        snprintf(src, sizeof src, "%s%s%s:row %d", source, member && *member ? ":" : "",
                 member && *member ? member : "", r.row);
        FvErr re = {0};
        if (ingest_store_report(g, &ref, composed.data, composed.len, rsha, src, "ctrate_csv", enc, NULL,
                         0, NULL, 0, &re)) {
            ingest_fail(g, source, where, &re);
            row_errors++;
        }
        g->cnt->table_rows++;
    }
    if (rc < 0) {
        ingest_fail(g, source, member, &e);
        row_errors++;
    }
    ingest_record_source(g, source, member, sha, (int64_t)len, "report", rc < 0 ? "failed" : "ok", 0);
    csv_close(&r);
    buf_free(&composed);
    buf_free(&text);
    return 0;
}
