/* Report files' bytes to text: UTF-8, UTF-8 with a BOM, UTF-16 with a BOM,
 * GB18030 (through iconv, accepted only when it reads as Chinese), then
 * the language guess and the line-end normalisation ingest applies; and
 * the same bytes as a DICOM SR text in each Specific Character Set. */
#include "fuzz.h"

#include "buf.h"
#include "report_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Buf b = {0};
    const char *enc = NULL;
    FvErr e = {0};
    if (report_decode(data, size, 1u << 20, &b, &enc, &e) == 0 && b.data) {
        fuzz_touch(b.data, b.len + 1);
        report_language(b.data, b.len);
        report_normalize(&b);
        fuzz_touch(b.data, b.len);
    }
    buf_free(&b);
    /* The first byte picks the charset so one input reaches each decoder. */
    static const char *charsets[] = {"", "ISO_IR 192", "GB18030", "GBK", "ISO_IR 100",
                                     "ISO_IR 101", "ISO_IR 144", "ISO_IR 148", "ISO 2022 IR 58",
                                     "\\ISO 2022 IR 87", "ISO_IR 6\\ISO_IR 100", "nonsense"};
    if (size) {
        const char *cs = charsets[data[0] % (sizeof charsets / sizeof *charsets)];
        Buf d = {0};
        FvErr de = {0};
        if (report_decode_dicom(data + 1, size - 1, cs, &d, &enc, &de) == 0 && d.data)
            fuzz_touch(d.data, d.len);
        buf_free(&d);
    }
    return 0;
}
