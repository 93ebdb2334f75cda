/* fvlm parse-text: parse one report read from stdin and print the result as
 * JSON (sections, sentences with offsets, mentions, findings with polarity and
 * rule, and a top-level `labels` object). No database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "log.h"
#include "parse.h"
#include "report_text.h"

static const char *help =
    "usage: fvlm parse-text [--lang zh|en|auto] [--compact] < report.txt\n\n"
    "Parses one radiology report (Chinese or English) from standard input and\n"
    "prints JSON: language, warnings, sections, sentences (byte offsets into the\n"
    "text, original and normalised), anatomy mentions, findings with\n"
    "polarity (1 present, 0 absent, -1 uncertain) and the rule that decided each,\n"
    "and `labels`: {task id: 1|0|-1} aggregated over the report (present wins over\n"
    "uncertain, uncertain over absent; unmentioned tasks are left out).\n"
    "The rules are built in; FVLM_SCHEMAS=DIR reads them from DIR instead.\n\n"
    "Encodings are read as `fvlm ingest` reads report files: UTF-8 (offsets are\n"
    "into the input bytes), UTF-8 with a byte order mark, UTF-16 with one, and\n"
    "GB18030/GBK/GB2312 when the text reads as Chinese (offsets are then into the\n"
    "UTF-8 text, as the corpus stores it). Other bytes are parsed as UTF-8 with\n"
    "the invalid sequences replaced, with a warning.\n\n"
    "options:\n"
    "  --lang L           zh, en or auto (default: auto, from the text)\n"
    "  --compact          one line of JSON instead of indented output\n"
    "  --quiet            no warnings on stderr\n"
    "  --help             this help\n";

enum { OPT_LANG = OPT_FIRST_PRIVATE, OPT_COMPACT };

/* stdin is read whole, up to this many bytes */
#define PARSE_TEXT_LIMIT ((size_t)256 << 20)

int cmd_parse_text(int argc, char **argv)
{
    static const struct option opts[] = {
        {"lang", required_argument, 0, OPT_LANG},
        {"compact", no_argument, 0, OPT_COMPACT},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    CliCommon cc;
    cli_common_init(&cc);
    int lang = PARSE_LANG_AUTO, pretty = 1, opt, code;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "parse-text", help, &code)) != CLI_DONE) {
        if (opt == OPT_LANG) {
            if (!strcmp(optarg, "zh"))
                lang = PARSE_LANG_ZH;
            else if (!strcmp(optarg, "en"))
                lang = PARSE_LANG_EN;
            else if (!strcmp(optarg, "auto"))
                lang = PARSE_LANG_AUTO;
            else
                return cli_usage("parse-text", "--lang must be zh, en or auto, not '%s'", optarg);
        } else if (opt == OPT_COMPACT) {
            pretty = 0;
        } else {
            return code; /* CLI_EXIT */
        }
    }
    if (optind < argc)
        return cli_usage("parse-text", "unexpected argument '%s' (the report is read from stdin)",
                         argv[optind]);
    Buf in = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (in.len + got > PARSE_TEXT_LIMIT) {
            buf_free(&in);
            log_error("stdin: report larger than %zu bytes", PARSE_TEXT_LIMIT);
            return EXIT_FAIL;
        }
        if (buf_append(&in, chunk, got)) {
            buf_free(&in);
            log_error("stdin: out of memory");
            return EXIT_FAIL;
        }
    }
    if (ferror(stdin)) {
        buf_free(&in);
        log_error("stdin: read error");
        return EXIT_FAIL;
    }
    FvErr e = {0};
    Parser *p;
    if (parser_new(&p, &e)) {
        buf_free(&in);
        return cli_fail(&e);
    }
    /* the text as ingest would store it; plain UTF-8 is parsed as given, so
     * offsets stay byte offsets into the input */
    Buf dec = {0};
    const char *encoding = "utf-8", *text = in.data ? in.data : "";
    size_t len = in.len;
    FvErr de = {0};
    if (report_decode((const unsigned char *)text, len, PARSE_TEXT_LIMIT, &dec, &encoding, &de) == 0) {
        if (strcmp(encoding, "utf-8")) {
            log_warn("stdin: read as %s; offsets are into its UTF-8 text", encoding);
            text = dec.data ? dec.data : "";
            len = dec.len;
        }
    } else if (de.code == FV_ENOMEM) {
        buf_free(&in);
        parser_free(&p);
        return cli_fail(&de);
    } else {
        log_warn("stdin: %s; expected UTF-8 (with or without a byte order mark), UTF-16 with a "
                 "byte order mark, or GB18030: parsed as UTF-8 with the invalid bytes replaced",
                 de.msg);
    }
    ParseResult r = {0};
    int rc = EXIT_OK;
    if (parse_report(p, text, len, lang, &r, &e)) {
        rc = cli_fail(&e);
    } else {
        for (int i = 0; i < r.nwarn; i++)
            log_warn("stdin: %s", r.warn[i]);
        Buf out = {0};
        parse_result_json(p, &r, &out, pretty);
        buf_putc(&out, '\n');
        rc = cli_write(&out);
    }
    parse_result_free(&r);
    parser_free(&p);
    buf_free(&in);
    buf_free(&dec);
    return rc;
}
