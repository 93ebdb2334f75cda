/* fvlm show: one study as the corpus holds it, for people: each anatomy's
 * region, status, linked sentences, labels, texts and flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anatomy_meta.h"
#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "json.h"
#include "ontology.h"
#include "study_view.h"

static const char *help =
    "usage: fvlm show [--db FILE] [--json] STUDY\n"
    "       fvlm show [--db FILE] [--json] --accession ACCESSION\n\n"
    "Prints one study (STUDY is its id in the database, studies.id; or the study\n"
    "of an accession, found by its keyed hash as `fvlm key` prints it): its volume,\n"
    "mask and crop box; then per anatomy that the corpus says anything about:\n"
    "status, region (voxels, ml, box in (z, y, x), whole), the linked sentences\n"
    "with section, method and confidence and why each link exists (the rule,\n"
    "the matched term and its byte offsets into the report, the sentence a\n"
    "continuation continues), the labels of its tasks, diseases, training text\n"
    "and flags; then the sentences that link to no anatomy, with the reason.\n\n"
    "options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --json             the same as one JSON object\n"
    "  --accession A      the study of accession A: its DICOM AccessionNumber, archive\n"
    "                     or study-folder name, StudyInstanceUID or CT-RATE volume name,\n"
    "                     as `fvlm key` takes them (needs FVLM_DEID_KEY or deid.key, the\n"
    "                     corpus's de-identification key)\n"
    "  --config FILE      configuration file (for deid.key)\n"
    "  --help             this help\n";

static const char *label_word(int v)
{
    switch (v) {
    case 1: return "present";
    case 0: return "absent";
    case -1: return "uncertain";
    }
    return "unset";
}

/* "rule 'anatomy:lung', term 'lungs' at bytes 10-15" or "rule 'continuation'
 * of sentence [3]" into out; 0 when the link records no explanation (a row
 * written before links explained themselves). */
static int link_why(const StudyView *v, const ViewLink *l, char *out, size_t n)
{
    if (!l->rule && !l->term)
        return 0;
    int k = snprintf(out, n, "rule %s", l->rule ? l->rule : "?");
    if (k >= 0 && (size_t)k < n && l->term)
        k += snprintf(out + k, n - (size_t)k, ", term '%s'", l->term);
    if (k >= 0 && (size_t)k < n && l->start >= 0 && l->end >= 0)
        k += snprintf(out + k, n - (size_t)k, " at bytes %lld-%lld of the report",
                      (long long)l->start, (long long)l->end);
    if (k >= 0 && (size_t)k < n && l->continues >= 0)
        snprintf(out + k, n - (size_t)k, ", continues sentence [%d]", v->sent[l->continues].idx);
    return 1;
}

static void print_region(const char *indent, const Region *r)
{
    printf("%sregion      %lld voxels, %.1f ml, z [%lld, %lld) y [%lld, %lld) x [%lld, %lld)%s\n",
           indent, (long long)r->voxels, r->volume_ml, (long long)r->box.z0, (long long)r->box.z1,
           (long long)r->box.y0, (long long)r->box.y1, (long long)r->box.x0, (long long)r->box.x1,
           r->whole ? ", whole" : ", touches the border");
}

static void print_text(const StudyView *v, const Ontology *o)
{
    const char *key = v->study_key ? v->study_key : "?";
    printf("study %lld  key %.16s%s  split %s  dataset %s  report %s\n", (long long)v->id, key,
           strlen(key) > 16 ? "..." : "", v->split ? v->split : "?",
           v->dataset ? v->dataset : "-", v->language ? v->language : "none");
    if (v->has_volume)
        printf("volume      %lld x %lld x %lld (z, y, x) at %.2f x %.2f x %.2f mm; mask %s\n",
               (long long)v->dims[0], (long long)v->dims[1], (long long)v->dims[2], v->spacing[0],
               v->spacing[1], v->spacing[2], v->mask_tensor ? "yes" : "none");
    else
        printf("volume      none\n");
    if (v->has_union)
        printf("crop box    z [%lld, %lld) y [%lld, %lld) x [%lld, %lld) (anatomies with tasks, "
               "with margin)\n",
               (long long)v->uni.box.z0, (long long)v->uni.box.z1, (long long)v->uni.box.y0,
               (long long)v->uni.box.y1, (long long)v->uni.box.x0, (long long)v->uni.box.x1);
    for (int i = 0; i < v->n_flags; i++)
        if (v->flags[i].anatomy < 0)
            printf("flag        %s: %s\n", v->flags[i].kind, v->flags[i].detail ? v->flags[i].detail : "");
    int shown = 0;
    for (int a = 0; a < o->n_anat; a++) {
        if (!view_anatomy_relevant(v, a))
            continue;
        const ViewAnatomy *va = &v->anat[a];
        shown++;
        printf("\n%s (%s)  %s%s%s%s\n", o->anat[a].id, o->anat[a].zh,
               va->has_status ? va->status : "no status",
               va->has_status && va->status_source && !strcmp(va->status_source, "audit")
                   ? " [set by annotator]" : "",
               va->is_sample ? "  [sample]" : "", "");
        if (va->has_region)
            print_region("  ", &va->region);
        for (int i = 0; i < v->n_links; i++) {
            const ViewLink *l = &v->links[i];
            if (l->anatomy != a)
                continue;
            const ViewSentence *s = &v->sent[l->sent];
            char why[256];
            printf("  %-11s [%d] %s  (%s %.2f%s%s)\n", s->section, s->idx, s->text, l->method,
                   l->confidence, !strcmp(l->source, "audit") ? ", by annotator" : "",
                   l->accepted == 1 ? ", accepted" : l->accepted == 0 ? ", REJECTED" : "");
            if (link_why(v, l, why, sizeof why))
                printf("  %-11s     why: %s\n", "", why);
        }
        /* Labels: the ones that say something, then how many say absent. */
        int nl = 0, n_absent = 0;
        for (int i = 0; i < v->n_labels; i++) {
            if (o->find[v->labels[i].task].anatomy != a)
                continue;
            if (v->labels[i].value == 0) {
                n_absent++;
                continue;
            }
            printf("%s%s = %s (%s)", nl++ ? ", " : "  labels      ", o->find[v->labels[i].task].id,
                   label_word(v->labels[i].value), v->labels[i].source);
        }
        if (n_absent)
            printf("%s%d task%s absent", nl++ ? "; " : "  labels      ", n_absent,
                   n_absent == 1 ? "" : "s");
        if (nl)
            printf("\n");
        if (va->diseases && strcmp(va->diseases, "[]"))
            printf("  diseases    %s\n", va->diseases);
        if (va->text && va->text[0])
            printf("  text        %s\n", va->text);
        for (int i = 0; i < v->n_flags; i++)
            if (v->flags[i].anatomy == a)
                printf("  flag        %s: %s\n", v->flags[i].kind,
                       v->flags[i].detail ? v->flags[i].detail : "");
    }
    if (!shown)
        printf("\nno anatomy aligned yet (run fvlm align)\n");
    int unl = 0;
    for (int i = 0; i < v->n_sent; i++) {
        if (v->sent[i].n_links)
            continue;
        if (!unl++)
            printf("\nsentences linked to no anatomy:\n");
        printf("  %-11s [%d] %s\n", v->sent[i].section, v->sent[i].idx, v->sent[i].text);
        char why[256];
        for (int k = 0; k < v->n_links; k++)
            if (v->links[k].sent == i && v->links[k].anatomy < 0 &&
                link_why(v, &v->links[k], why, sizeof why))
                printf("  %-11s     why: %s\n", "", why);
    }
}

int cmd_show(int argc, char **argv)
{
    enum { OPT_ACCESSION = OPT_FIRST_PRIVATE };
    static const struct option opts[] = {
        {"db", required_argument, 0, OPT_DB},
        {"config", required_argument, 0, OPT_CONFIG},
        {"json", no_argument, 0, OPT_JSON},
        {"accession", required_argument, 0, OPT_ACCESSION},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    CliCommon cc;
    int opt, code;
    const char *accession = NULL;
    cli_common_init(&cc);
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "show", help, &code)) != CLI_DONE) {
        if (opt == CLI_EXIT)
            return code;
        accession = optarg; /* OPT_ACCESSION */
    }
    long long id = 0;
    if (accession) {
        if (optind != argc)
            return cli_usage("show", "give a STUDY id or --accession, not both");
    } else {
        if (optind + 1 != argc)
            return cli_usage("show", "expected one STUDY id (or --accession ACCESSION)");
        if (cli_parse_i64(argv[optind], 1, INT64_MAX, &id))
            return cli_usage("show", "STUDY must be a study id (a positive integer), got '%s'",
                             argv[optind]);
    }
    FvErr e = {0};
    Ontology *o = NULL;
    AnatomyMetaTable meta = {0};
    Db *db = NULL;
    ViewReader vr = {0};
    StudyView v = {0};
    int rc = EXIT_FAIL;
    if (cli_common_finish(&cc, &e)) {
        rc = cli_finish_fail(&e);
        goto done;
    }
    int64_t found = id;
    if (onto_load(&o, &e) || anatomy_meta_load(o, &meta, &e) ||
        db_open(&db, cc.db, DB_READONLY | DB_MUST_EXIST, &e) ||
        (accession && cli_study_by_accession(&cc, db, accession, &found, &e)) ||
        view_reader_open(&vr, db, o, &e) || view_load(&vr, found, &v, &e)) {
        cli_fail(&e);
        goto done;
    }
    if (cc.json) {
        Buf b = {0};
        JsonW w;
        jw_init(&w, &b, 1);
        view_study_json(&v, o, &meta, &w);
        buf_putc(&b, '\n');
        rc = cli_write(&b);
    } else {
        print_text(&v, o);
        rc = EXIT_OK;
    }
done:
    view_free(&v);
    view_reader_close(&vr);
    db_close(&db);
    anatomy_meta_free(&meta);
    onto_free(&o);
    cli_common_free(&cc);
    return rc;
}
