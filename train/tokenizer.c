#include "tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

enum { MAX_UNIT = 96 }; /* bytes of one unit; a longer word is cut here */

static const char *const specials[TOK_NSPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};

/* ------------------------------------------------------------ unit scanner */


static int is_space(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           c == 0xA0 || c == 0x3000 || (c >= 0x2000 && c <= 0x200B);
}

/* Latin letters and digits make words: ASCII, Latin-1 letters and Latin
 * Extended-A/B (accented names in European reports). */
static int is_word_char(int32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7);
}

static int32_t fold(int32_t c)
{
    if (c >= 0xFF01 && c <= 0xFF5E) /* full-width ASCII forms */
        c -= 0xFEE0;
    if (c >= 'A' && c <= 'Z')
        c += 'a' - 'A';
    return c;
}

/* Next unit of [*p, end) into out (NUL-terminated). Returns its length in
 * bytes, 0 at the end of the text. *word = 1 for a Latin word. */
static size_t next_unit(const unsigned char **p, const unsigned char *end, char *out, int *word)
{
    const unsigned char *s = *p;
    int32_t c = 0;
    size_t used = 0;
    /* skip spaces and invalid bytes */
    while (s < end) {
        used = utf8_decode(s, (size_t)(end - s), &c);
        if (c >= 0)
            c = fold(c);
        if (c > 0 && !is_space(c))
            break;
        s += used;
    }
    if (s >= end) {
        *p = s;
        return 0;
    }
    size_t n = 0;
    if (!is_word_char(c)) {
        n = utf8_encode(c, (unsigned char *)out);
        out[n] = '\0';
        *p = s + used;
        *word = 0;
        return n;
    }
    *word = 1;
    while (s < end) {
        used = utf8_decode(s, (size_t)(end - s), &c);
        if (c < 0)
            break;
        c = fold(c);
        if (!is_word_char(c))
            break;
        unsigned char enc[4];
        size_t k = utf8_encode(c, enc);
        if (n + k < MAX_UNIT) {
            memcpy(out + n, enc, k);
            n += k;
        }
        s += used;
    }
    out[n] = '\0';
    *p = s;
    return n;
}

/* --------------------------------------------------------------- string map */

typedef struct StrCount {
    char *s;
    int64_t count;
    int kind; /* 0 letter or digit (always kept), 1 other single character, 2 word or longer piece */
} StrCount;

typedef struct CountMap {
    StrCount *e;
    int n, cap;
    StrIndex ix;
} CountMap;

static const char *cmap_key(const void *ctx, int i) { return ((const CountMap *)ctx)->e[i].s; }

static void cmap_free(CountMap *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->e[i].s);
    free(m->e);
    stridx_free(&m->ix);
    memset(m, 0, sizeof *m);
}

/* Adds count to s (inserting it with kind). */
static int cmap_add(CountMap *m, const char *s, int64_t count, int kind)
{
    int i = stridx_find(&m->ix, s, cmap_key, m);
    if (i >= 0) {
        StrCount *x = &m->e[i];
        x->count += count;
        if (kind < x->kind)
            x->kind = kind;
        return 0;
    }
    if (stridx_reserve(&m->ix, m->n, m->n + 1, cmap_key, m))
        return -1;
    if (arr_reserve(&m->e, &m->cap, m->n, sizeof *m->e, 512))
        return -1;
    char *d = strdup(s);
    if (!d)
        return -1;
    m->e[m->n] = (StrCount){d, count, kind};
    stridx_put(&m->ix, m->n++, s);
    return 0;
}

static StrCount *cmap_get(const CountMap *m, const char *s)
{
    int i = stridx_find(&m->ix, s, cmap_key, m);
    return i >= 0 ? &m->e[i] : NULL;
}

/* ------------------------------------------------------------ vocabulary */

static const char *tok_key(const void *ctx, int i) { return ((const Tokenizer *)ctx)->tok[i]; }

void tok_free(Tokenizer *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->tok[i]);
    free(t->tok);
    stridx_free(&t->ix);
    memset(t, 0, sizeof *t);
}

int tok_id(const Tokenizer *t, const char *s) { return stridx_find(&t->ix, s, tok_key, t); }

/* Takes ownership of the n strings in tok (freed on failure too). */
static int tok_index(Tokenizer *t, char **tok, int n, FvErr *e)
{
    t->tok = tok;
    t->n = n;
    if (stridx_reserve(&t->ix, 0, n, tok_key, t)) {
        tok_free(t);
        return err_set(e, FV_ENOMEM, "tokenizer: out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (tok_id(t, tok[i]) >= 0) {
            err_set(e, FV_EFORMAT, "tokenizer: token %d '%s' appears twice", i, tok[i]);
            tok_free(t);
            return -1;
        }
        stridx_put(&t->ix, i, tok[i]);
    }
    return 0;
}

/* Byte offsets of the character starts of a UTF-8 word (plus its end). */
static int char_starts(const char *w, int *starts)
{
    int n = 0;
    size_t len = strlen(w);
    for (size_t i = 0; i < len;) {
        int32_t c;
        size_t k = utf8_decode((const unsigned char *)w + i, len - i, &c);
        starts[n++] = (int)i;
        i += k;
    }
    starts[n] = (int)len;
    return n;
}

static int cmp_count(const void *a, const void *b)
{
    const StrCount *x = *(const StrCount *const *)a, *y = *(const StrCount *const *)b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->s, y->s);
}

int tok_build(Tokenizer *t, const char *const *texts, int n, const TokConfig *cfg, FvErr *e)
{
    memset(t, 0, sizeof *t);
    if (cfg->vocab_size < TOK_NSPECIAL + 72 || cfg->max_piece_len < 1 || cfg->min_word_count < 1)
        return err_set(e, FV_EUSAGE,
                       "tokenizer: vocab_size %d must be >= %d, max_piece_len and "
                       "min_word_count >= 1",
                       cfg->vocab_size, TOK_NSPECIAL + 72);
    CountMap units = {0}, cand = {0};
    StrCount **order = NULL;
    char **tok = NULL;
    int rc = -1;
    char u[MAX_UNIT + 4];
    /* 1. units and their counts */
    for (int i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)texts[i];
        const unsigned char *end = p + strlen(texts[i]);
        int word;
        while (next_unit(&p, end, u, &word))
            if (cmap_add(&units, u, 1, word))
                goto oom;
    }
    /* 2. candidates: single characters, frequent words, pieces of rare
     * words (weighted by how often the word occurs) */
    for (int c = 0; c < 36; c++) {
        char s[4] = {(char)(c < 26 ? 'a' + c : '0' + c - 26), 0};
        char cont[8] = {'#', '#', s[0], 0};
        if (cmap_add(&cand, s, 0, 0) || cmap_add(&cand, cont, 0, 0))
            goto oom;
    }
    for (int i = 0; i < units.n; i++) {
        const StrCount *x = &units.e[i];
        int starts[MAX_UNIT + 1];
        int nc = char_starts(x->s, starts);
        int32_t c0;
        utf8_decode((const unsigned char *)x->s, strlen(x->s), &c0);
        int is_word = is_word_char(c0);
        if (!is_word || nc == 1) {
            if (cmap_add(&cand, x->s, x->count, 1))
                goto oom;
            if (!is_word)
                continue;
        } else if (x->count >= cfg->min_word_count) {
            if (cmap_add(&cand, x->s, x->count, 2))
                goto oom;
        }
        /* every character of a word, alone and continuing, keeps every
         * word spellable; rare words also give their longer pieces */
        for (int a = 0; a < nc; a++) {
            int maxl = x->count >= cfg->min_word_count ? 1 : cfg->max_piece_len;
            for (int l = 1; l <= maxl && a + l <= nc; l++) {
                char piece[MAX_UNIT + 4];
                int off = 0;
                if (a > 0) {
                    piece[0] = piece[1] = '#';
                    off = 2;
                }
                int len = starts[a + l] - starts[a];
                memcpy(piece + off, x->s + starts[a], (size_t)len);
                piece[off + len] = '\0';
                if (cmap_add(&cand, piece, l == 1 ? 0 : x->count, l == 1 ? 1 : 2))
                    goto oom;
            }
        }
    }
    /* 3. order: letters and digits, other single characters by count, then
     * words and pieces by count; cut at the vocabulary size */
    order = malloc((size_t)(cand.n ? cand.n : 1) * sizeof *order);
    if (!order)
        goto oom;
    for (int i = 0; i < cand.n; i++) {
        /* a single character's count is how often it occurs as a unit */
        StrCount *x = &cand.e[i];
        if (x->kind < 2) {
            StrCount *asunit = cmap_get(&units, x->s);
            x->count = asunit ? asunit->count : 0;
        }
        order[i] = x;
    }
    qsort(order, (size_t)cand.n, sizeof *order, cmp_count);
    int nt = cand.n + TOK_NSPECIAL < cfg->vocab_size ? cand.n + TOK_NSPECIAL : cfg->vocab_size;
    tok = calloc((size_t)nt, sizeof *tok);
    if (!tok)
        goto oom;
    for (int i = 0; i < nt; i++) {
        tok[i] = strdup(i < TOK_NSPECIAL ? specials[i] : order[i - TOK_NSPECIAL]->s);
        if (!tok[i]) {
            for (int k = 0; k < i; k++)
                free(tok[k]);
            free(tok);
            tok = NULL;
            goto oom;
        }
    }
    rc = tok_index(t, tok, nt, e);
    goto out;
oom:
    err_set(e, FV_ENOMEM, "tokenizer: out of memory");
out:
    free(order);
    cmap_free(&units);
    cmap_free(&cand);
    return rc;
}

/* ---------------------------------------------------------------- encoding */

/* Appends the ids of one word (whole, or pieces); returns the new count. */
static int encode_word(const Tokenizer *t, const char *w, int *ids, int n, int max)
{
    int id = tok_id(t, w);
    if (id >= 0) {
        if (n < max)
            ids[n++] = id;
        return n;
    }
    int starts[MAX_UNIT + 1];
    int nc = char_starts(w, starts);
    int pieces[MAX_UNIT], np = 0;
    for (int a = 0; a < nc;) {
        int found = -1, next = a;
        for (int b = nc; b > a; b--) {
            char piece[MAX_UNIT + 4];
            int off = 0;
            if (a > 0) {
                piece[0] = piece[1] = '#';
                off = 2;
            }
            int len = starts[b] - starts[a];
            memcpy(piece + off, w + starts[a], (size_t)len);
            piece[off + len] = '\0';
            if ((found = tok_id(t, piece)) >= 0) {
                next = b;
                break;
            }
        }
        if (found < 0) {
            np = 0;
            pieces[np++] = TOK_UNK;
            break;
        }
        pieces[np++] = found;
        a = next;
    }
    for (int i = 0; i < np && n < max; i++)
        ids[n++] = pieces[i];
    return n;
}

int tok_encode(const Tokenizer *t, const char *text, int *ids, int max_len)
{
    int n = 0;
    ids[n++] = TOK_CLS;
    int max = max_len - 1; /* room for [SEP] */
    const unsigned char *p = (const unsigned char *)text, *end = p + strlen(text);
    char u[MAX_UNIT + 4];
    int word;
    while (n < max && next_unit(&p, end, u, &word)) {
        if (word) {
            n = encode_word(t, u, ids, n, max);
        } else {
            int id = tok_id(t, u);
            ids[n++] = id >= 0 ? id : TOK_UNK;
        }
    }
    ids[n++] = TOK_SEP;
    return n;
}

/* ----------------------------------------------------------- serialisation */

int tok_to_json(const Tokenizer *t, Buf *b)
{
    JsonW w;
    jw_init(&w, b, 0);
    jw_arr(&w);
    for (int i = 0; i < t->n; i++)
        jw_str(&w, t->tok[i]);
    jw_arr_end(&w);
    return b->failed ? -1 : 0;
}

int tok_from_json(Tokenizer *t, const char *json, FvErr *e)
{
    memset(t, 0, sizeof *t);
    JsonValue *root;
    if (json_parse(json, strlen(json), &root, e))
        return err_prefix(e, "vocabulary");
    int rc = -1;
    if (root->type != JSON_ARR || root->len < TOK_NSPECIAL || root->len > (1u << 24)) {
        err_set(e, FV_EFORMAT, "vocabulary: expected an array of %d to %d strings", TOK_NSPECIAL,
                1 << 24);
        goto out;
    }
    for (int i = 0; i < TOK_NSPECIAL; i++)
        if (root->items[i].type != JSON_STR || strcmp(root->items[i].str, specials[i]) != 0) {
            err_set(e, FV_EFORMAT, "vocabulary: token %d is not %s", i, specials[i]);
            goto out;
        }
    char **tok = calloc(root->len, sizeof *tok);
    if (!tok) {
        err_set(e, FV_ENOMEM, "vocabulary: out of memory");
        goto out;
    }
    for (size_t i = 0; i < root->len; i++) {
        const JsonValue *v = &root->items[i];
        if (v->type != JSON_STR || v->len == 0 || strlen(v->str) != v->len ||
            v->len > MAX_UNIT + 2 || !(tok[i] = strdup(v->str))) {
            for (size_t k = 0; k < i; k++)
                free(tok[k]);
            free(tok);
            err_set(e, v->type == JSON_STR && v->len <= MAX_UNIT + 2 ? FV_ENOMEM : FV_EFORMAT,
                    "vocabulary: token %zu is not a usable string", i);
            goto out;
        }
    }
    rc = tok_index(t, tok, (int)root->len, e);
out:
    json_free(&root);
    return rc;
}
