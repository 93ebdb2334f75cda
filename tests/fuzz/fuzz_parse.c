/* The report parser over any text (the normaliser replaces bad bytes):
 * sections, sentences, mentions, findings, polarity, labels, and the JSON
 * that `fvlm parse-text` prints. One parser for the whole run: loading
 * the ontology and lexicons per input would be all the fuzzer measured. */
#include "fuzz.h"

#include "buf.h"
#include "parse.h"

static Parser *parser;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    FvErr e = {0};
    if (parser_new(&parser, &e)) {
        fprintf(stderr, "fuzz_parse: %s\n", e.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the language (auto, zh, en), as parse-text's --lang does. */
    int lang = size ? data[0] % 3 : 0;
    const char *text = size ? (const char *)data + 1 : "";
    size_t n = size ? size - 1 : 0;
    ParseResult r;
    memset(&r, 0, sizeof r);
    FvErr e = {0};
    parse_detect_lang(text, n);
    if (parse_report(parser, text, n, lang, &r, &e) == 0) {
        Buf b = {0};
        parse_result_json(parser, &r, &b, 0);
        buf_free(&b);
    }
    parse_result_free(&r);
    return 0;
}
