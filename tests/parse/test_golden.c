/* Golden cases: data-driven parser checks (jq-style), one case per line of
 * golden_en.tsv and golden_zh.tsv, so a new case needs no C.
 *
 * Columns: id, text, expect. In text, "\n" is a line break and "\t" a tab.
 * expect is a space-separated list of:
 *   task=1 | task=0 | task=-1   the report's label for the task
 *   task=_                      the task is not mentioned
 *   @anatomy  @group:id         a mention of it exists
 *   !@anatomy                   no mention of it
 *   #N                          the report has N sentences
 *   task~rule                   the label of task was decided by this rule id
 * Any task labelled present or uncertain that the case does not list is a
 * failure too (a false positive), so every case also checks that nothing
 * else was found. Usage: test_golden FILE... (meson passes both files). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "fvlm_config.h"
#include "parse.h"
#include "test.h"

static int task_index(const Ontology *o, const char *id, size_t n)
{
    for (int t = 0; t < o->n_find; t++)
        if (strlen(o->find[t].id) == n && !strncmp(o->find[t].id, id, n))
            return t;
    return -1;
}

static void unescape(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            *w++ = '\n';
            p++;
        } else if (p[0] == '\\' && p[1] == 't') {
            *w++ = '\t';
            p++;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

static int has_mention(const Parser *p, const ParseResult *r, const char *name)
{
    char buf[128];
    for (int i = 0; i < r->nment; i++)
        if (!strcmp(parse_mention_name(p, &r->ment[i], buf, sizeof buf), name))
            return 1;
    return 0;
}

static const char *label_str(int v)
{
    return v == 1 ? "1" : v == 0 ? "0" : v == -1 ? "-1" : "_";
}

static int run_file(const Parser *p, const char *path, int lang, int *ncases)
{
    FvErr e = {0};
    char *text;
    size_t len;
    if (fs_read_file(path, 16 << 20, &text, &len, &e)) {
        CHECK(0, "%s", e.msg);
        return -1;
    }
    ParseResult r = {0};
    int line = 0;
    char *save = NULL;
    int8_t *listed = calloc((size_t)p->onto->n_find, 1);
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        line++;
        if (ln[0] == '#' || !ln[0])
            continue;
        char *f[3];
        f[0] = ln;
        f[1] = strchr(f[0], '\t');
        f[2] = f[1] ? strchr(f[1] + 1, '\t') : NULL;
        if (!f[1] || !f[2]) {
            CHECK(0, "%s:%d: expected 3 tab-separated columns", path, line);
            continue;
        }
        *f[1]++ = '\0';
        *f[2]++ = '\0';
        if (!strcmp(f[0], "id"))
            continue;
        unescape(f[1]);
        (*ncases)++;
        if (parse_report(p, f[1], strlen(f[1]), lang, &r, &e)) {
            CHECK(0, "%s:%d %s: parse failed: %s", path, line, f[0], e.msg);
            continue;
        }
        memset(listed, 0, (size_t)p->onto->n_find);
        char *s2 = NULL;
        for (char *x = strtok_r(f[2], " ", &s2); x; x = strtok_r(NULL, " ", &s2)) {
            if (x[0] == '#') {
                CHECK(r.nsent == atoi(x + 1), "%s:%d %s: %d sentences, expected %s", path, line,
                      f[0], r.nsent, x + 1);
            } else if (x[0] == '@') {
                CHECK(has_mention(p, &r, x + 1), "%s:%d %s: no mention of %s", path, line, f[0],
                      x + 1);
            } else if (x[0] == '!' && x[1] == '@') {
                CHECK(!has_mention(p, &r, x + 2), "%s:%d %s: unexpected mention of %s", path, line,
                      f[0], x + 2);
            } else if (strchr(x, '=')) {
                char *eq = strchr(x, '=');
                int t = task_index(p->onto, x, (size_t)(eq - x));
                if (t < 0) {
                    CHECK(0, "%s:%d %s: unknown task in '%s'", path, line, f[0], x);
                    continue;
                }
                listed[t] = 1;
                const char *want = eq + 1;
                CHECK(!strcmp(label_str(r.label[t]), want), "%s:%d %s: %s = %s, expected %s", path,
                      line, f[0], p->onto->find[t].id, label_str(r.label[t]), want);
            } else if (strchr(x, '~')) {
                char *tl = strchr(x, '~');
                int t = task_index(p->onto, x, (size_t)(tl - x));
                if (t < 0) {
                    CHECK(0, "%s:%d %s: unknown task in '%s'", path, line, f[0], x);
                    continue;
                }
                int from = r.label_from[t];
                const char *rule = from >= 0 ? r.find[from].rule : "(none)";
                CHECK(!strcmp(rule, tl + 1), "%s:%d %s: %s decided by %s, expected %s", path, line,
                      f[0], p->onto->find[t].id, rule, tl + 1);
            } else {
                CHECK(0, "%s:%d %s: bad expectation '%s'", path, line, f[0], x);
            }
        }
        for (int t = 0; t < p->onto->n_find; t++)
            CHECK(listed[t] || r.label[t] == PARSE_ABSENT || r.label[t] == PARSE_UNMENTIONED,
                  "%s:%d %s: unexpected %s = %s", path, line, f[0], p->onto->find[t].id,
                  label_str(r.label[t]));
    }
    free(listed);
    parse_result_free(&r);
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    FvErr e = {0};
    Parser *p;
    if (parser_new(&p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        int n = 0;
        int lang = strstr(argv[i], "_zh") ? PARSE_LANG_ZH : PARSE_LANG_EN;
        run_file(p, argv[i], lang, &n);
        printf("%s: %d cases\n", argv[i], n);
        CHECK(n >= 150, "%s has %d cases, the floor is 150", argv[i], n);
    }
    parser_free(&p);
    return test_finish();
}
