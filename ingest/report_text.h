/* report_text: report text from bytes: encoding, format, language.
 *
 * Encodings: UTF-8 ("utf-8"), UTF-8 with a byte order mark ("utf-8-bom"),
 * UTF-16 with a BOM ("utf-16le"/"utf-16be"), and GB18030 (which includes
 * GBK and GB2312) converted through iconv. GB18030 decodes almost any byte
 * string, so it is accepted only when the result reads as Chinese (at least
 * 30% of the letters are Han characters); anything else is "unknown
 * encoding". The stored text is UTF-8 with LF line ends.
 *
 * CT-RATE rows are composed as "Findings: <Findings_EN>\n\nImpression:
 * <Impressions_EN>", with "Not given." read as an empty section, so parse's
 * section splitter sees both sections. */
#ifndef FVLM_INGEST_REPORT_TEXT_H
#define FVLM_INGEST_REPORT_TEXT_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

/* Decodes n bytes of a report file into UTF-8 (appended to out); sets
 * *encoding to a static name. FV_ELIMIT over max_bytes; FV_EFORMAT for an
 * unknown encoding, naming the first offending byte. */
int report_decode(const unsigned char *p, size_t n, size_t max_bytes, Buf *out,
                  const char **encoding, FvErr *e);

/* Text in a DICOM Specific Character Set (ISO_IR 192, GB18030, GBK, ISO_IR
 * 100, ...) to UTF-8. */
int report_decode_dicom(const unsigned char *p, size_t n, const char *charset, Buf *out,
                        const char **encoding, FvErr *e);

/* "zh" when Han characters are at least a tenth of the letters, else "en". */
const char *report_language(const char *text, size_t n);

/* The CT-RATE composition (see above). */
void report_compose_ctrate(const char *findings, const char *impression, Buf *out);

/* Normalises line ends to LF and trims trailing blank space (in place). */
void report_normalize(Buf *b);

#endif
