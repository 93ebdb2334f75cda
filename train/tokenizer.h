/* tokenizer: the text vocabulary of a model, built from its training corpus.
 *
 * Text is cut into units: every CJK character is a unit (Chinese reports
 * have no spaces, and characters carry the meaning); runs of Latin letters
 * and digits are words (ASCII lower-cased; full-width forms folded to
 * ASCII first); any other non-space character (punctuation, symbols) is a
 * unit of its own. Frequent words are tokens; a rare or unseen word is cut
 * into sub-word pieces by greedy longest match, WordPiece style ("##" marks
 * a piece that continues a word). Single letters and digits, alone and as
 * "##" pieces, are always in the vocabulary, so any ASCII word can be
 * spelled; a unit that still cannot be spelled becomes [UNK].
 *
 * The vocabulary is ordered: the four special tokens, the single-character
 * units and pieces, then words and longer pieces by falling frequency (ties
 * by byte order), cut at the configured size. It is stored with the model as
 * a JSON array of strings (tok_to_json / tok_from_json). */
#ifndef FVLM_TOKENIZER_H
#define FVLM_TOKENIZER_H

#include "buf.h"
#include "error.h"
#include "strindex.h"

enum { TOK_PAD = 0, TOK_UNK = 1, TOK_CLS = 2, TOK_SEP = 3, TOK_NSPECIAL = 4 };

typedef struct Tokenizer {
    char **tok;      /* id -> token text */
    int n;
    StrIndex ix;     /* token text -> id */
} Tokenizer;

typedef struct TokConfig {
    int vocab_size;      /* at most this many tokens, specials included */
    int min_word_count;  /* a word seen fewer times is spelled with pieces */
    int max_piece_len;   /* longest piece, in characters */
} TokConfig;

/* Builds the vocabulary from n texts (UTF-8; invalid bytes are skipped). */
int tok_build(Tokenizer *t, const char *const *texts, int n, const TokConfig *cfg, FvErr *e);
/* Token ids of text: [CLS] units... [SEP], cut to max_len ids (>= 2).
 * Returns the count. */
int tok_encode(const Tokenizer *t, const char *text, int *ids, int max_len);
/* Id of one token's text, or -1. */
int tok_id(const Tokenizer *t, const char *s);
int tok_to_json(const Tokenizer *t, Buf *b);
int tok_from_json(Tokenizer *t, const char *json, FvErr *e);
void tok_free(Tokenizer *t);

#endif
