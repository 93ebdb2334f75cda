/* The corpus tokenizer: CJK characters, Latin words, sub-word pieces,
 * truncation, folding, the vocabulary's order and its JSON round trip. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fvlm_config.h"
#include "test.h"
#include "tokenizer.h"

static const char *corpus[] = {
    "lung shows no significant abnormalities.",
    "lung shows no significant abnormalities.",
    "heart shows no significant abnormalities.",
    "patchy ground-glass opacity in the right lower lobe.",
    "an opacity is seen in the left lung.",
    "centrilobular emphysema in both lungs.",
    "右肺下叶见磨玻璃影。",
    "双肺未见明显异常。",
    "双肺未见明显异常。",
};
enum { NCORPUS = sizeof corpus / sizeof corpus[0] };

static Tokenizer build(int vocab, int min_count)
{
    Tokenizer t;
    FvErr e = {0};
    TokConfig c = {vocab, min_count, 4};
    CHECK_OK(tok_build(&t, corpus, NCORPUS, &c, &e), &e);
    return t;
}

/* The token texts of an encoding, space-separated. */
static void spell(const Tokenizer *t, const char *text, char *out, size_t n, int max_len)
{
    int ids[128];
    int k = tok_encode(t, text, ids, max_len);
    out[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < k; i++)
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s", i ? " " : "",
                                t->tok[ids[i]]);
}

static void test_cjk_characters_are_tokens_and_frequent_words_whole(void)
{
    Tokenizer t = build(1000, 2);
    char s[1024];
    spell(&t, "双肺未见明显异常。", s, sizeof s, 64);
    CHECK_STR(s, "[CLS] 双 肺 未 见 明 显 异 常 。 [SEP]");
    spell(&t, "Lung shows NO significant abnormalities.", s, sizeof s, 64);
    CHECK_STR(s, "[CLS] lung shows no significant abnormalities . [SEP]");
    /* full-width forms fold to ASCII */
    spell(&t, "ＬＵＮＧ", s, sizeof s, 64);
    CHECK_STR(s, "[CLS] lung [SEP]");
    tok_free(&t);
}

static void test_rare_and_unseen_words_are_spelled_with_pieces(void)
{
    Tokenizer t = build(1000, 2);
    char s[1024];
    /* "emphysema" occurs once: below min_word_count, spelled from pieces */
    CHECK(tok_id(&t, "emphysema") < 0, "a rare word became a whole token");
    spell(&t, "emphysema", s, sizeof s, 64);
    CHECK(strncmp(s, "[CLS] emph", 10) == 0 && strstr(s, "##") && !strstr(s, "[UNK]"),
          "rare word spelled as '%s'", s);
    /* joining the pieces gives the word back */
    int ids[64], k = tok_encode(&t, "emphysema", ids, 64);
    char joined[64] = "";
    for (int i = 1; i < k - 1; i++) {
        const char *p = t.tok[ids[i]];
        strcat(joined, strncmp(p, "##", 2) == 0 ? p + 2 : p);
    }
    CHECK_STR(joined, "emphysema");
    /* an unseen ASCII word is spelled from letters, never [UNK] */
    spell(&t, "zygomatic", s, sizeof s, 64);
    CHECK(!strstr(s, "[UNK]"), "unseen word gave [UNK]: %s", s);
    /* an unseen CJK character is [UNK] */
    spell(&t, "胸", s, sizeof s, 64);
    CHECK_STR(s, "[CLS] [UNK] [SEP]");
    tok_free(&t);
}

static void test_encoding_is_cut_at_max_len_with_cls_and_sep(void)
{
    Tokenizer t = build(1000, 2);
    int ids[8];
    int k = tok_encode(&t, "lung shows no significant abnormalities . lung shows", ids, 6);
    CHECK_EQ_INT(k, 6);
    CHECK_EQ_INT(ids[0], TOK_CLS);
    CHECK_EQ_INT(ids[5], TOK_SEP);
    k = tok_encode(&t, "", ids, 6);
    CHECK_EQ_INT(k, 2);
    tok_free(&t);
}

static void test_vocabulary_size_order_and_json_round_trip(void)
{
    Tokenizer a = build(100, 2), b = build(100, 2);
    CHECK(a.n <= 100, "vocabulary of %d tokens above its limit 100", a.n);
    CHECK_EQ_INT(a.n, b.n);
    for (int i = 0; i < a.n && i < b.n; i++)
        CHECK(strcmp(a.tok[i], b.tok[i]) == 0, "token %d differs between two builds", i);
    CHECK_STR(a.tok[0], "[PAD]");
    CHECK_STR(a.tok[2], "[CLS]");
    /* letters and digits, alone and continuing, are always there */
    CHECK(tok_id(&a, "q") >= 0 && tok_id(&a, "##7") >= 0, "letters and digits missing");
    Buf j = {0};
    CHECK(tok_to_json(&a, &j) == 0, "out of memory");
    Tokenizer c;
    FvErr e = {0};
    CHECK_OK(tok_from_json(&c, j.data, &e), &e);
    CHECK_EQ_INT(c.n, a.n);
    int ia[64], ic[64];
    int ka = tok_encode(&a, "右肺 opacity emphysema", ia, 64), kc = tok_encode(&c, "右肺 opacity emphysema", ic, 64);
    CHECK(ka == kc && memcmp(ia, ic, (size_t)ka * sizeof *ia) == 0, "round trip changes encoding");
    tok_free(&c);
    CHECK(tok_from_json(&c, "[\"a\", \"b\"]", &e) == -1, "a vocabulary without specials loads");
    CHECK(tok_from_json(&c, "[\"[PAD]\",\"[UNK]\",\"[CLS]\",\"[SEP]\",\"x\",\"x\"]", &e) == -1 &&
              strstr(e.msg, "twice"), "a duplicate token loads: %s", e.msg);
    buf_free(&j);
    tok_free(&a);
    tok_free(&b);
}

int main(void)
{
    RUN(test_cjk_characters_are_tokens_and_frequent_words_whole);
    RUN(test_rare_and_unseen_words_are_spelled_with_pieces);
    RUN(test_encoding_is_cut_at_max_len_with_cls_and_sep);
    RUN(test_vocabulary_size_order_and_json_round_trip);
    return test_finish();
}
