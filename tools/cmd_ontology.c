/* fvlm ontology: print the ontology the binary was built with (or the one in
 * $FVLM_SCHEMAS), which also checks the schema files. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "json.h"
#include "ontology.h"

static const char *help =
    "usage: fvlm ontology [--json]\n\n"
    "Loads schemas/anatomy.tsv, groups.tsv and findings.tsv (built into fvlm, or\n"
    "from the folder $FVLM_SCHEMAS), checks them and prints the anatomies with\n"
    "their TotalSegmentator ids and the diagnosis tasks per anatomy.\n\n"
    "options:\n"
    "  --json             one JSON object: anatomies, groups, tasks\n"
    "  --help             this help\n";

static int print_json(const Ontology *o)
{
    Buf b = {0};
    JsonW w;
    jw_init(&w, &b, 1);
    jw_obj(&w);
    jw_key(&w, "anatomies");
    jw_arr(&w);
    for (int i = 0; i < o->n_anat; i++) {
        const Anatomy *a = &o->anat[i];
        jw_obj(&w);
        jw_key(&w, "id"); jw_str(&w, a->id);
        jw_key(&w, "en"); jw_str(&w, a->en);
        jw_key(&w, "zh"); jw_str(&w, a->zh);
        jw_key(&w, "region"); jw_str(&w, a->region);
        jw_key(&w, "main"); jw_bool(&w, a->main);
        jw_key(&w, "ts_ids");
        jw_arr(&w);
        for (int k = 0; k < a->n_ts; k++)
            jw_int(&w, a->ts_ids[k]);
        jw_arr_end(&w);
        jw_key(&w, "region_of");
        jw_arr(&w);
        for (int k = 0; k < a->n_region_of; k++)
            jw_str(&w, o->anat[a->region_of[k]].id);
        jw_arr_end(&w);
        jw_key(&w, "groups");
        jw_arr(&w);
        for (int k = 0; k < a->n_groups; k++)
            jw_str(&w, o->groups[a->groups[k]].id);
        jw_arr_end(&w);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "groups");
    jw_arr(&w);
    for (int i = 0; i < o->n_groups; i++) {
        jw_obj(&w);
        jw_key(&w, "id"); jw_str(&w, o->groups[i].id);
        jw_key(&w, "en"); jw_str(&w, o->groups[i].en);
        jw_key(&w, "zh"); jw_str(&w, o->groups[i].zh);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "tasks");
    jw_arr(&w);
    for (int i = 0; i < o->n_find; i++) {
        const Finding *f = &o->find[i];
        jw_obj(&w);
        jw_key(&w, "id"); jw_str(&w, f->id);
        jw_key(&w, "anatomy"); jw_str(&w, o->anat[f->anatomy].id);
        jw_key(&w, "en"); jw_str(&w, f->en);
        jw_key(&w, "zh"); jw_str(&w, f->zh);
        jw_key(&w, "ctrate_label"); jw_str(&w, f->ctrate_label);
        jw_key(&w, "fvlm16"); jw_bool(&w, f->fvlm16);
        jw_key(&w, "prevalence"); jw_num(&w, f->prevalence);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    buf_putc(&b, '\n');
    return cli_write(&b);
}

static void print_text(const Ontology *o)
{
    int nmain = 0;
    for (int i = 0; i < o->n_anat; i++)
        nmain += o->anat[i].main;
    printf("%d anatomies (%d main), %d groups, %d diagnosis tasks\n\n", o->n_anat, nmain,
           o->n_groups, o->n_find);
    for (int i = 0; i < o->n_anat; i++) {
        const Anatomy *a = &o->anat[i];
        int ntasks = 0;
        for (int k = 0; k < o->n_find; k++)
            ntasks += o->find[k].anatomy == i;
        printf("%-24s %-10s %-8s ts:%-3d tasks:%-2d", a->id, a->zh, a->region, a->n_ts, ntasks);
        if (a->n_region_of) {
            printf(" region of:");
            for (int k = 0; k < a->n_region_of; k++)
                printf(" %s", o->anat[a->region_of[k]].id);
        }
        printf("\n");
        for (int k = 0; k < o->n_find; k++)
            if (o->find[k].anatomy == i)
                printf("    %-36s %s%s%s\n", o->find[k].id, o->find[k].zh,
                       o->find[k].ctrate_label ? "  [CT-RATE]" : "",
                       o->find[k].fvlm16 ? " [fVLM-16]" : "");
    }
}

int cmd_ontology(int argc, char **argv)
{
    CliCommon cc;
    int code;
    cli_common_init(&cc);
    if (cli_common_only(&cc, argc, argv, CLI_WANT_JSON, "ontology", help, &code))
        return code;
    if (optind < argc)
        return cli_usage("ontology", "unexpected argument '%s'", argv[optind]);
    FvErr e = {0};
    Ontology *o;
    if (onto_load(&o, &e))
        return cli_fail(&e);
    int rc = EXIT_OK;
    if (cc.json)
        rc = print_json(o);
    else
        print_text(o);
    onto_free(&o);
    return rc;
}
