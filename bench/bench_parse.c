/* bench_parse: speed of `fvlm parse` over the real development reports
 * (../shared/data/ctrate-dev/reports.csv) repeated to at least 100 MB, printed
 * beside the floor: PCRE2 (JIT) alone scanning the same text for the same
 * lexicon terms. One thread, so every figure is per core; rates are per CPU
 * second of this process (on a shared machine other processes change the wall
 * time, not that), wall seconds are printed beside them.
 *
 * Rows: the floor; the parser's automaton alone; parse_report alone; parse
 * plus the database writes of `fvlm parse` (the same library calls:
 * parse_report and pstore_report, 512 reports per transaction, or
 * $BENCH_BATCH), with the split between parsing and storing; and the
 * database writes alone (the same rows, from the dev reports parsed once):
 * what SQLite itself costs for ~120 rows a report, the bound on the
 * with-database figure however fast the parser gets.
 *
 * usage: bench_parse [MB] [DB]   (defaults: 100, /tmp/fvlm-bench-parse.db)
 * Environment: BENCH_PRAGMA=SQL runs SQL on the connection before parsing;
 * BENCH_KEEP=1 keeps the last database; BENCH_NO_DB=1 stops before the
 * database. Each database is made fresh (studies and reports inserted, not
 * timed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "csv.h"
#include "db.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "log.h"
#include "parse.h"
#include "run.h"
#include "store.h"

/* CPU seconds of this process (user + system): on a shared machine the
 * per-core figure that other processes do not disturb. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
    csv_open(&c, data, n, path, 0);
    csv_next(&c, &e);
    memset(dev, 0, sizeof *dev);
    while (csv_next(&c, &e) == 1) {
        if (c.nf < 3)
            continue;
        Buf b = {0};
        buf_puts(&b, "Findings: ");
        buf_append(&b, c.field[1], c.len[1]);
        buf_puts(&b, "\n\nImpression: ");
        buf_append(&b, c.field[2], c.len[2]);
        dev->text = realloc(dev->text, (size_t)(dev->n + 1) * sizeof *dev->text);
        dev->len = realloc(dev->len, (size_t)(dev->n + 1) * sizeof *dev->len);
        dev->len[dev->n] = b.len;
        dev->bytes += b.len;
        dev->text[dev->n++] = buf_steal(&b);
    }
    csv_close(&c);
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

/* Removes path and its WAL files. */
static void db_remove(const char *path)
{
    char aux[4200];
    unlink(path);
    snprintf(aux, sizeof aux, "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", path);
    unlink(aux);
}

/* A new database at path holding nrep studies and reports (report k + 1 is
 * dev report k % n), with the connection settings of `fvlm parse` (and
 * $BENCH_PRAGMA). Not timed. */
static int fresh_db(const char *path, const Corpus *dev, int64_t nrep, Db **out, FvErr *e)
{
    db_remove(path);
    Db *db;
    if (db_open(&db, path, 0, e))
        return -1;
    sqlite3_stmt *ins_s = NULL, *ins_r = NULL;
    int rc = -1;
    if (db_begin(db, e) ||
        db_prepare(db, &ins_s, "INSERT INTO studies (id, study_key) VALUES (?, ?)", e) ||
        db_prepare(db, &ins_r, "INSERT INTO reports (id, study_id, sha256, source, format, language,"
                               " encoding, text) VALUES (?, ?, '-', 'bench', 'ctrate_csv', 'en',"
                               " 'utf-8', ?)", e))
        goto out;
    for (int64_t k = 0; k < nrep; k++) {
        char key[32];
        snprintf(key, sizeof key, "s%lld", (long long)k);
        int i = (int)(k % dev->n);
        if (db_bindf(db, ins_s, e, "is", k + 1, key) || db_step(db, ins_s, e) < 0 ||
            db_bindf(db, ins_r, e, "ii", k + 1, k + 1) ||
            sqlite3_bind_text(ins_r, 3, dev->text[i], (int)dev->len[i], SQLITE_STATIC) != SQLITE_OK ||
            db_step(db, ins_r, e) < 0)
            goto out;
    }
    if (db_commit(db, e))
        goto out;
    /* the page cache `fvlm parse` asks for */
    if (db_exec(db, "PRAGMA cache_size = -65536", e) ||
        (getenv("BENCH_PRAGMA") && db_exec(db, getenv("BENCH_PRAGMA"), e)))
        goto out;
    rc = 0;
out:
    sqlite3_finalize(ins_s);
    sqlite3_finalize(ins_r);
    if (rc)
        db_close(&db);
    *out = db;
    return rc;
}

int main(int argc, char **argv)
{
    double mb = argc > 1 ? atof(argv[1]) : 100.0;
    /* reports per transaction, as `fvlm parse --batch` */
    int64_t batch = getenv("BENCH_BATCH") ? atoll(getenv("BENCH_BATCH")) : 512;
    if (batch < 1)
        batch = 512;
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
    double c0 = cpu_seconds();
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
    double t_floor = now_seconds() - t0, c_floor = cpu_seconds() - c0;

    /* 2. the parser's automaton alone (normalised text) */
    ParseResult r = {0};
    int64_t nhits = 0;
    t0 = now_seconds();
    c0 = cpu_seconds();
    for (int rr = 0; rr < reps; rr++)
        for (int i = 0; i < dev.n; i++) {
            r.nhits = 0;
            if (ac_scan(p->lex->ac, dev.text[i], dev.len[i], &r.hits, &r.nhits, &r.chits, &e))
                return 1;
            nhits += (int64_t)r.nhits;
        }
    double t_ac = now_seconds() - t0, c_ac = cpu_seconds() - c0;

    /* 3. parse, no database */
    int64_t nfind = 0;
    t0 = now_seconds();
    c0 = cpu_seconds();
    for (int rr = 0; rr < reps; rr++)
        for (int i = 0; i < dev.n; i++) {
            if (parse_report(p, dev.text[i], dev.len[i], PARSE_LANG_EN, &r, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            nfind += r.nfind;
        }
    double t_parse = now_seconds() - t0, c_parse = cpu_seconds() - c0;

    if (getenv("BENCH_NO_DB")) {
        printf("CPU s: floor %.2f, automaton %.2f, parse %.2f: parse alone %.0f reports/s, "
               "%.1f MB/s, %.2f x floor\n", c_floor, c_ac, c_parse, (double)nrep / c_parse,
               bytes / 1e6 / c_parse, c_parse / c_floor);
        return 0;
    }
    /* 4. parse with the database writes of `fvlm parse` */
    Db *db;
    if (fresh_db(dbpath, &dev, nrep, &db, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    Run run;
    char *args[] = {"bench_parse"};
    ParseStore st;
    sqlite3_stmt *sel;
    if (run_begin(&run, db, "parse", 1, args, NULL, -1, &e) || pstore_open(&st, db, &e) ||
        db_prepare(db, &sel, "SELECT id, study_id, text FROM reports WHERE id > ? AND parsed_run IS NULL"
                             " ORDER BY id LIMIT ?", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    t0 = now_seconds();
    c0 = cpu_seconds();
    int64_t after = 0, done = 0;
    double c_in_parse = 0, c_in_store = 0;   /* CPU seconds inside the loop */
    for (;;) {
        if (db_bindf(db, sel, &e, "ii", after, batch) || db_begin(db, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        int got = 0, rc;
        while ((rc = db_step(db, sel, &e)) == 1) {
            int64_t id = sqlite3_column_int64(sel, 0), sid = sqlite3_column_int64(sel, 1);
            const char *t = (const char *)sqlite3_column_text(sel, 2);
            size_t len = (size_t)sqlite3_column_bytes(sel, 2);
            double ca = cpu_seconds();
            if (parse_report(p, t, len, PARSE_LANG_EN, &r, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            double cb = cpu_seconds();
            if (pstore_report(&st, p, &r, id, sid, run.id, 0, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            c_in_parse += cb - ca;
            c_in_store += cpu_seconds() - cb;
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
    double t_db = now_seconds() - t0, c_db = cpu_seconds() - c0;
    sqlite3_finalize(sel);
    pstore_close(&st);
    run_finish(&run, "ok", NULL, &e);
    db_close(&db);
    int64_t rows = st.n_sent + st.n_ment + st.n_find + st.n_label;

    /* 5. the database writes alone: the same rows from the dev reports parsed
     * once, into a fresh database (what SQLite itself costs) */
    ParseResult *cached = calloc((size_t)dev.n, sizeof *cached);
    if (!cached)
        return 1;
    for (int i = 0; i < dev.n; i++)
        if (parse_report(p, dev.text[i], dev.len[i], PARSE_LANG_EN, &cached[i], &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    if (fresh_db(dbpath, &dev, nrep, &db, &e) ||
        run_begin(&run, db, "parse", 1, args, NULL, -1, &e) || pstore_open(&st, db, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    t0 = now_seconds();
    c0 = cpu_seconds();
    for (int64_t k = 0; k < nrep; k += batch) {
        if (db_begin(db, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        for (int64_t j = k; j < nrep && j < k + batch; j++)
            if (pstore_report(&st, p, &cached[j % dev.n], j + 1, j + 1, run.id, 0, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
        if (db_commit(db, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }
    double t_store = now_seconds() - t0, c_store = cpu_seconds() - c0;
    pstore_close(&st);
    run_finish(&run, "ok", NULL, &e);
    db_close(&db);
    for (int i = 0; i < dev.n; i++)
        parse_result_free(&cached[i]);
    free(cached);

    printf("lexicon: %d distinct terms; automaton %d states x %d byte classes; PCRE2: %d JIT "
           "pattern(s) (trie-factored alternation), compiled in %.2f s\n",
           nterms, nstates, nclasses, npat, t_compile);
    printf("%-44s %8s %8s %11s %8s %9s\n", "one core", "wall s", "CPU s", "reports/s", "MB/s",
           "x floor");
    struct { const char *name; double t, c; int64_t n; } row[] = {
        {"PCRE2 JIT, lexicon alternation (floor)", t_floor, c_floor, nrep},
        {"fvlm automaton scan alone", t_ac, c_ac, nrep},
        {"fvlm parse, no database", t_parse, c_parse, nrep},
        {"fvlm parse + database writes", t_db, c_db, done},
        {"database writes alone (same rows)", t_store, c_store, nrep},
    };
    /* rates per CPU second: other processes on the machine do not change them */
    for (int i = 0; i < 5; i++)
        printf("%-44s %8.2f %8.2f %11.0f %8.1f %9.2f\n", row[i].name, row[i].t, row[i].c,
               (double)row[i].n / row[i].c, bytes / 1e6 / row[i].c, row[i].c / c_floor);
    printf("  of which parse_report %.2f s, pstore_report %.2f s, reading and commits %.2f s "
           "(CPU)\n", c_in_parse, c_in_store, c_db - c_in_parse - c_in_store);
    printf("matches: PCRE2 %lld, automaton hits %lld; findings %lld; rows written: %lld sentences, "
           "%lld mentions, %lld findings, %lld labels\n",
           (long long)nmatch, (long long)nhits, (long long)nfind, (long long)st.n_sent,
           (long long)st.n_ment, (long long)st.n_find, (long long)st.n_label);
    printf("database rows per report %.1f; %.0f rows/s per CPU second with parsing, %.0f alone\n",
           (double)rows / (double)done, (double)rows / c_db, (double)rows / c_store);
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
    if (!getenv("BENCH_KEEP"))   /* BENCH_KEEP: the database of step 5 stays for inspection */
        db_remove(dbpath);
    return 0;
}
