/* CT-RATE development split: the parser's labels against CT-RATE's silver
 * labels (made by the dataset's authors with a text classifier).
 *
 * Reads ../shared/data/ctrate-dev/reports.csv and labels.csv (skips, exit 77,
 * when they are absent), parses each report as "Findings: ...\n\nImpression:
 * ...", and prints per-label precision, recall and F1 and the macro F1 over
 * the 18 labels. A parsed label counts as positive when present or uncertain
 * (CheXpert's "U-ones"); the macro F1 with uncertain as negative is printed
 * too. Fails when the macro F1 falls below the floor recorded here, so a rule
 * change that hurts is caught. FVLM_CTRATE_DUMP=1 prints each disagreement
 * (report, label, deciding sentence and rule) on stderr for tuning. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "parse.h"
#include "test.h"

/* The floor: the macro F1 measured when the rules were last tuned, less a
 * small margin. */
#define CTRATE_MACRO_F1_FLOOR 0.94

enum { NLAB = 18 };

typedef struct Gold {
    char name[128];
    int v[NLAB];
} Gold;

int main(void)
{
    char pr[4096], pl[4096];
    const char *rp = shared_path("data/ctrate-dev/reports.csv", pr, sizeof pr);
    const char *lp = shared_path("data/ctrate-dev/labels.csv", pl, sizeof pl);
    if (!rp || !lp) {
        printf("SKIP: ../shared/data/ctrate-dev is not here\n");
        return 77;
    }
    FvErr e = {0};
    char *rtext = NULL, *ltext = NULL;
    size_t rlen, llen;
    if (fs_read_file(rp, 64 << 20, &rtext, &rlen, &e) || fs_read_file(lp, 64 << 20, &ltext, &llen, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    Parser *p;
    if (parser_new(&p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    /* labels.csv: header names the columns; map each to a task */
    CsvReader c;
    csv_open(&c, ltext, llen, lp, 0);
    if (csv_next(&c, &e) != 1 || c.nf != NLAB + 1) {
        fprintf(stderr, "%s: header of %d columns, expected %d\n", lp, c.nf, NLAB + 1);
        return 1;
    }
    int task[NLAB];
    char lname[NLAB][64];
    for (int j = 0; j < NLAB; j++) {
        task[j] = -1;
        snprintf(lname[j], sizeof lname[j], "%s", c.field[j + 1]);
        for (int t = 0; t < p->onto->n_find; t++)
            if (p->onto->find[t].ctrate_label && !strcmp(p->onto->find[t].ctrate_label, lname[j]))
                task[j] = t;
        if (task[j] < 0) {
            fprintf(stderr, "%s: column '%s' is no task's ctrate_label\n", lp, lname[j]);
            return 1;
        }
    }
    Gold *gold = NULL;
    int ngold = 0, got;
    while ((got = csv_next(&c, &e)) == 1) {
        if (c.nf != NLAB + 1)
            continue;
        gold = realloc(gold, (size_t)(ngold + 1) * sizeof *gold);
        snprintf(gold[ngold].name, sizeof gold[ngold].name, "%s", c.field[0]);
        for (int j = 0; j < NLAB; j++)
            gold[ngold].v[j] = atoi(c.field[j + 1]);
        ngold++;
    }
    CHECK(got == 0, "reading %s: %s", lp, e.msg);
    csv_close(&c);
    int dump = getenv("FVLM_CTRATE_DUMP") != NULL;
    long tp[2][NLAB] = {{0}}, fp[2][NLAB] = {{0}}, fn[2][NLAB] = {{0}};
    int nrep = 0;
    ParseResult r = {0};
    Buf text = {0};
    csv_open(&c, rtext, rlen, rp, 0);
    csv_next(&c, &e); /* header */
    int ci_find = 1, ci_imp = 2;
    while ((got = csv_next(&c, &e)) == 1) {
        if (c.nf < 3)
            continue;
        const Gold *g = NULL;
        for (int i = 0; i < ngold && !g; i++)
            if (!strcmp(gold[i].name, c.field[0]))
                g = &gold[i];
        if (!g)
            continue;
        buf_reset(&text);
        buf_puts(&text, "Findings: ");
        buf_append(&text, c.field[ci_find], c.len[ci_find]);
        buf_puts(&text, "\n\nImpression: ");
        buf_append(&text, c.field[ci_imp], c.len[ci_imp]);
        if (parse_report(p, text.data, text.len, PARSE_LANG_EN, &r, &e)) {
            fprintf(stderr, "%s: %s\n", c.field[0], e.msg);
            return 1;
        }
        nrep++;
        for (int j = 0; j < NLAB; j++) {
            int v = r.label[task[j]];
            for (int mode = 0; mode < 2; mode++) {
                int pred = v == PARSE_PRESENT || (mode == 0 && v == PARSE_UNCERTAIN);
                tp[mode][j] += pred && g->v[j];
                fp[mode][j] += pred && !g->v[j];
                fn[mode][j] += !pred && g->v[j];
            }
            int pred = v == PARSE_PRESENT || v == PARSE_UNCERTAIN;
            if (dump && pred != g->v[j]) {
                int f = r.label_from[task[j]];
                fprintf(stderr, "%s %s %-30s parsed=%d", pred ? "FP" : "FN", c.field[0], lname[j],
                        v == PARSE_UNMENTIONED ? 9 : v);
                if (f >= 0) {
                    const ParseFinding *x = &r.find[f];
                    const ParseSentence *s = &r.sent[x->sentence];
                    fprintf(stderr, " rule=%s | %.*s", x->rule, (int)(s->end - s->start),
                            text.data + s->start);
                }
                fputc('\n', stderr);
            }
        }
    }
    double macro[2] = {0, 0};
    printf("CT-RATE dev: %d reports, %d labels (uncertain counted as positive)\n", nrep, NLAB);
    printf("%-36s %4s %4s %4s %6s %6s %6s\n", "label", "TP", "FP", "FN", "P", "R", "F1");
    for (int mode = 0; mode < 2; mode++) {
        for (int j = 0; j < NLAB; j++) {
            double P = tp[mode][j] + fp[mode][j] ? (double)tp[mode][j] / (double)(tp[mode][j] + fp[mode][j]) : 1.0;
            double R = tp[mode][j] + fn[mode][j] ? (double)tp[mode][j] / (double)(tp[mode][j] + fn[mode][j]) : 1.0;
            double F = P + R > 0 ? 2 * P * R / (P + R) : 0.0;
            macro[mode] += F / NLAB;
            if (mode == 0)
                printf("%-36s %4ld %4ld %4ld %6.3f %6.3f %6.3f\n", lname[j], tp[0][j], fp[0][j],
                       fn[0][j], P, R, F);
        }
    }
    printf("macro F1 (uncertain = positive): %.4f\n", macro[0]);
    printf("macro F1 (uncertain = negative): %.4f\n", macro[1]);
    CHECK(got == 0, "reading %s: %s", rp, e.msg);
    CHECK(nrep == ngold, "parsed %d reports, labels.csv has %d", nrep, ngold);
    CHECK(macro[0] >= CTRATE_MACRO_F1_FLOOR, "macro F1 %.4f fell below the floor %.2f", macro[0],
          CTRATE_MACRO_F1_FLOOR);
    csv_close(&c);
    buf_free(&text);
    parse_result_free(&r);
    parser_free(&p);
    free(gold);
    free(rtext);
    free(ltext);
    return test_finish();
}
