/* sentences: sections and sentences of a normalised report.
 *
 * Sections start at headings (parse_sections.tsv) at line starts; text before
 * the first heading is 'other', a report without headings is all 'findings'.
 * Sentences end at 。！？； and line breaks in Chinese, at . ! ? in English
 * (not after an abbreviation of parse_abbrev.tsv, inside a decimal "1.5", after
 * a list number "1." or before a lower-case word), and a numbered item ("1."
 * "2、" "（3）") starts a new one. A sentence longer than PARSE_MAX_SENTENCE
 * bytes is cut at a clause boundary. Private to parse/. */
#ifndef FVLM_PARSE_SENTENCES_H
#define FVLM_PARSE_SENTENCES_H

#include <stddef.h>

#include "error.h"
#include "parse.h"

/* Fills r->sec from r->norm. */
int sent_find_sections(const Parser *p, ParseResult *r, FvErr *e);
/* Appends the sentences of one section to r->sent. */
int sent_split_section(const Parser *p, ParseResult *r, const ParseSection *sec, FvErr *e);
/* Appends normalised bytes [a, b) as a sentence (trimmed; nothing when it has
 * no letter, digit or CJK character). */
int sent_add(ParseResult *r, int sec, size_t a, size_t b, FvErr *e);
/* 1 when [a, b) holds a letter, digit or non-ASCII character. */
int sent_has_content(const char *s, size_t a, size_t b);

#endif
