/* bench_parse: speed of `fvlm parse` over the real development reports
 * (../shared/data/ctrate-dev/reports.csv) repeated to at least 100 MB, printed
 * beside the floor: PCRE2 (JIT) alone scanning the same text for the same
 * lexicon terms. One thread, so every figure is per core.
 *
 * usage: bench_parse [MB] [DB]   (defaults: 100, /tmp/fvlm-bench-parse.db)
 * The database is made fresh in /tmp (studies and reports inserted, not timed),
 * then parsed with the same library calls `fvlm parse` makes (parse_report,
 * pstore_report, 512 reports per transaction). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "../tests/parse/csv_read.h"
#include "buf.h"
#include "db.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "log.h"
#include "parse.h"
#include "run.h"
#include "store.h"

typedef struct Corpus {
    char **text;
    size_t *len;
    int n;
    size_t bytes;
} Corpus;

static int load_reports(const char *path, Corpus *dev)
{
    FvErr e = {0};
    char *data;
    size_t n;
    if (fs_read_file(path, 64 << 20, &data, &n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    CsvReader c;
    csv_init(&c, data, n);
    csv_next(&c);
    memset(dev, 0, sizeof *dev);
    while (csv_next(&c) == 1) {
        if (c.nf < 3)
            continue;
        Buf b = {0};
        buf_puts(&b, "Findings: ");
        buf_append(&b, c.field[1], c.flen[1]);
        buf_puts(&b, "\n\nImpression: ");
        buf_append(&b, c.field[2], c.flen[2]);
        dev->text = realloc(dev->text, (size_t)(dev->n + 1) * sizeof *dev->text);
        dev->len = realloc(dev->len, (size_t)(dev->n + 1) * sizeof *dev->len);
        dev->len[dev->n] = b.len;
        dev->bytes += b.len;
        dev->text[dev->n++] = buf_steal(&b);
    }
    csv_free(&c);
    free(data);
    return dev->n > 0 ? 0 : -1;
}

/* PCRE2 floor pattern: every lexicon term in one alternation, factored as a
 * trie ("no(?:rmal|dule)") so it fits PCRE2's pattern size limit; byte-wise,
 * ASCII case-insensitive, compiled with JIT. When it is still too large, the
 * terms are split into the fewest patterns that compile, and the floor scans
 * the text once per pattern (the count is printed). */
static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_byte(Buf *b, unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        buf_putc(b, (char)c);
    else
        buf_printf(b, "\\x%02x", c);
}

/* terms[lo, hi) share their first `depth` bytes; sorted. */
static void trie_regex(Buf *b, char **terms, int lo, int hi, size_t depth)
{
    int has_end = 0;
    while (lo < hi && strlen(terms[lo]) == depth) {
        has_end = 1;
        lo++;
    }
    if (lo == hi)
        return;
    int groups = 0;
    for (int i = lo; i < hi;) {
        int j = i;
        while (j < hi && terms[j][depth] == terms[i][depth])
            j++;
        groups++;
        i = j;
    }
    int wrap = groups > 1 || has_end;
    if (wrap)
        buf_puts(b, "(?:");
    int first = 1;
    for (int i = lo; i < hi;) {
        int j = i;
        while (j < hi && terms[j][depth] == terms[i][depth])
            j++;
        if (!first)
            buf_putc(b, '|');
        first = 0;
        put_byte(b, (unsigned char)terms[i][depth]);
        trie_regex(b, terms, i, j, depth + 1);
        i = j;
    }
    if (wrap)
        buf_puts(b, has_end ? ")?" : ")");
}

static pcre2_code *compile_terms(char **terms, int n)
{
    Buf b = {0};
    trie_regex(&b, terms, 0, n, 0);
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.data, b.len, PCRE2_CASELESS, &err, &off, NULL);
    buf_free(&b);
    if (re && pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0) {
        pcre2_code_free(re);
        re = NULL;
    }
    return re;
}

enum { FLOOR_MAX_PATTERNS = 64 };

static int floor_patterns(const Lexicon *lex, pcre2_code **re, int *nterms)
{
    char **terms = malloc((size_t)lex->n * sizeof *terms);
    int n = 0;
    for (int i = 0; i < lex->n; i++)
        terms[n++] = lex->e[i].term;
    qsort(terms, (size_t)n, sizeof *terms, cmp_cstr);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || strcmp(terms[m - 1], terms[i]))
            terms[m++] = terms[i];
    *nterms = m;
    for (int parts = 1; parts <= FLOOR_MAX_PATTERNS; parts *= 2) {
        int ok = 1;
        for (int k = 0; k < parts; k++) {
            int lo = (int)((int64_t)m * k / parts), hi = (int)((int64_t)m * (k + 1) / parts);
            re[k] = compile_terms(terms + lo, hi - lo);
            if (!re[k]) {
                for (int j = 0; j < k; j++)
                    pcre2_code_free(re[j]);
                ok = 0;
                break;
            }
        }
        if (ok) {
            free(terms);
            return parts;
        }
    }
    free(terms);
    return 0;
}

int main(int argc, char **argv)
{
    double mb = argc > 1 ? atof(argv[1]) : 100.0;
    const char *dbpath = argc > 2 ? argv[2] : "/tmp/fvlm-bench-parse.db";
    char path[4096];
    const char *root = getenv("FVLM_SHARED");
    if (root)
        snprintf(path, sizeof path, "%s/data/ctrate-dev/reports.csv", root);
    else
        snprintf(path, sizeof path, "%s/../shared/data/ctrate-dev/reports.csv", FVLM_SOURCE_ROOT);
    if (access(path, R_OK) != 0) {
        printf("SKIP: %s is not here\n", path);
        return 0;
    }
    log_set_level(LOG_ERROR);
    Corpus dev;
    if (load_reports(path, &dev))
        return 1;
    int reps = (int)((mb * 1e6) / (double)dev.bytes) + 1;
    int64_t nrep = (int64_t)reps * dev.n;
    double bytes = (double)reps * (double)dev.bytes;
    printf("corpus: %d CT-RATE dev reports (%.0f bytes on average) repeated %d times = %lld reports, "
           "%.1f MB\n", dev.n, (double)dev.bytes / dev.n, reps, (long long)nrep, bytes / 1e6);

    FvErr e = {0};
    Parser *p;
    if (parser_new(&p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int nstates, nclasses;
    ac_stats(p->lex->ac, &nstates, &nclasses);

    /* 1. the floor: PCRE2 JIT over the same text */
    int nterms = 0;
    pcre2_code *re[FLOOR_MAX_PATTERNS];
    double t0 = now_seconds();
    int npat = floor_patterns(p->lex, re, &nterms);
    double t_compile = now_seconds() - t0;
    if (!npat) {
        fprintf(stderr, "PCRE2 could not compile the lexicon in %d patterns\n", FLOOR_MAX_PATTERNS);
        return 1;
    }
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int64_t nmatch = 0;
    t0 = now_seconds();
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < dev.n; i++)
            for (int k = 0; k < npat; k++) {
                PCRE2_SIZE at = 0;
                while (at < dev.len[i]) {
                    int rc = pcre2_jit_match(re[k], (PCRE2_SPTR)dev.text[i], dev.len[i], at, 0, md,
                                             NULL);
                    if (rc < 0)
                        break;
                    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                    nmatch++;
                    at = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
                }
            }
    double t_floor = now_seconds() - t0;

    /* 2. the parser's automaton alone (normalised text) */
    ParseResult r = {0};
    int64_t nhits = 0;
    t0 = now_seconds();
    for (int rr = 0; rr < reps; rr++)
        for (int i = 0; i < dev.n; i++) {
            r.nhits = 0;
            if (ac_scan(p->lex->ac, dev.text[i], dev.len[i], &r.hits, &r.nhits, &r.chits, &e))
                return 1;
            nhits += (int64_t)r.nhits;
        }
    double t_ac = now_seconds() - t0;

    /* 3. parse, no database */
    int64_t nfind = 0;
    t0 = now_seconds();
    for (int rr = 0; rr < reps; rr++)
        for (int i = 0; i < dev.n; i++) {
            if (parse_report(p, dev.text[i], dev.len[i], PARSE_LANG_EN, &r, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            nfind += r.nfind;
        }
    double t_parse = now_seconds() - t0;

    if (getenv("BENCH_NO_DB")) {
        printf("parse alone: %.2f s, %.0f reports/s, %.1f MB/s; floor %.2f s\n", t_parse,
               (double)nrep / t_parse, bytes / 1e6 / t_parse, t_floor);
        return 0;
    }
    /* 4. parse with the database writes of `fvlm parse` */
    unlink(dbpath);
    char aux[4200];
    snprintf(aux, sizeof aux, "%s-wal", dbpath);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", dbpath);
    unlink(aux);
    Db *db;
    if (db_open(&db, dbpath, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    sqlite3_stmt *ins_s, *ins_r;
    if (db_begin(db, &e) ||
        db_prepare(db, &ins_s, "INSERT INTO studies (id, study_key) VALUES (?, ?)", &e) ||
        db_prepare(db, &ins_r, "INSERT INTO reports (id, study_id, sha256, source, format, language,"
                               " encoding, text) VALUES (?, ?, '-', 'bench', 'ctrate_csv', 'en',"
                               " 'utf-8', ?)", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    for (int64_t k = 0; k < nrep; k++) {
        char key[32];
        snprintf(key, sizeof key, "s%lld", (long long)k);
        int i = (int)(k % dev.n);
        if (db_bindf(db, ins_s, &e, "is", k + 1, key) || db_step(db, ins_s, &e) < 0 ||
            db_bindf(db, ins_r, &e, "ii", k + 1, k + 1) ||
            sqlite3_bind_text(ins_r, 3, dev.text[i], (int)dev.len[i], SQLITE_STATIC) != SQLITE_OK ||
            db_step(db, ins_r, &e) < 0) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }
    sqlite3_finalize(ins_s);
    sqlite3_finalize(ins_r);
    if (db_commit(db, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    /* the page cache `fvlm parse` asks for */
    if (db_exec(db, "PRAGMA cache_size = -65536", &e) ||
        (getenv("BENCH_PRAGMA") && db_exec(db, getenv("BENCH_PRAGMA"), &e))) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    Run run;
    char *args[] = {"bench_parse"};
    ParseStore st;
    sqlite3_stmt *sel;
    if (run_begin(&run, db, "parse", 1, args, NULL, -1, &e) || pstore_open(&st, db, &e) ||
        db_prepare(db, &sel, "SELECT id, study_id, text FROM reports WHERE id > ? AND parsed_run IS NULL"
                             " ORDER BY id LIMIT 512", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    t0 = now_seconds();
    int64_t after = 0, done = 0;
    for (;;) {
        if (db_bindf(db, sel, &e, "i", after) || db_begin(db, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        int got = 0, rc;
        while ((rc = db_step(db, sel, &e)) == 1) {
            int64_t id = sqlite3_column_int64(sel, 0), sid = sqlite3_column_int64(sel, 1);
            const char *t = (const char *)sqlite3_column_text(sel, 2);
            size_t len = (size_t)sqlite3_column_bytes(sel, 2);
            if (parse_report(p, t, len, PARSE_LANG_EN, &r, &e) ||
                pstore_report(&st, p, &r, id, sid, run.id, 0, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            after = id;
            got++;
        }
        sqlite3_reset(sel);
        if (rc < 0 || db_commit(db, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        done += got;
        if (got == 0)
            break;
    }
    double t_db = now_seconds() - t0;
    sqlite3_finalize(sel);
    pstore_close(&st);
    run_finish(&run, "ok", NULL, &e);
    db_close(&db);

    printf("lexicon: %d distinct terms; automaton %d states x %d byte classes; PCRE2: %d JIT "
           "pattern(s) (trie-factored alternation), compiled in %.2f s\n",
           nterms, nstates, nclasses, npat, t_compile);
    printf("%-44s %8s %11s %8s %9s\n", "one core", "seconds", "reports/s", "MB/s", "x floor");
    struct { const char *name; double t; int64_t n; } row[] = {
        {"PCRE2 JIT, lexicon alternation (floor)", t_floor, nrep},
        {"fvlm automaton scan alone", t_ac, nrep},
        {"fvlm parse, no database", t_parse, nrep},
        {"fvlm parse + database writes", t_db, done},
    };
    for (int i = 0; i < 4; i++)
        printf("%-44s %8.2f %11.0f %8.1f %9.2f\n", row[i].name, row[i].t, (double)row[i].n / row[i].t,
               bytes / 1e6 / row[i].t, row[i].t / t_floor);
    printf("matches: PCRE2 %lld, automaton hits %lld; findings %lld; rows written: %lld sentences, "
           "%lld mentions, %lld findings, %lld labels\n",
           (long long)nmatch, (long long)nhits, (long long)nfind, (long long)st.n_sent,
           (long long)st.n_ment, (long long)st.n_find, (long long)st.n_label);
    printf("goal: >= 20000 reports/s per core with the database writes, within 3x of the floor\n");
    parse_result_free(&r);
    pcre2_match_data_free(md);
    for (int k = 0; k < npat; k++)
        pcre2_code_free(re[k]);
    parser_free(&p);
    for (int i = 0; i < dev.n; i++)
        free(dev.text[i]);
    free(dev.text);
    free(dev.len);
    unlink(dbpath);
    snprintf(aux, sizeof aux, "%s-wal", dbpath);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", dbpath);
    unlink(aux);
    return 0;
}
