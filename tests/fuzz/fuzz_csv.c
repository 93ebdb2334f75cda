/* CSV tables (CT-RATE reports.csv, labels.csv, metadata.csv): the reader
 * in both modes, with small limits so the limit paths run too, then the
 * CT-RATE metadata loader over the same bytes. */
#include "fuzz.h"

#include "csv.h"
#include "ctrate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int mode = 0; mode < 3; mode++) {
        CsvReader r;
        FvErr e = {0};
        csv_open(&r, (const char *)data, size, "fuzz.csv", mode == 1 ? CSV_STRICT : 0);
        if (mode == 2) {
            r.max_fields = 7;
            r.max_record = 300;
        }
        if (csv_header(&r, &e) == 0) {
            int c = csv_col(&r, "VolumeName");
            while (csv_next(&r, &e) == 1) {
                for (int i = 0; i < r.nf; i++)
                    fuzz_touch(r.field[i], r.len[i] + 1);
                fuzz_touch(csv_field(&r, c), 1);
            }
        }
        csv_close(&r);
    }
    CtrateMetaTable t = {0};
    int bad = 0;
    FvErr e = {0};
    if (ctrate_meta_load(&t, (const char *)data, size, &bad, &e) == 0)
        for (int i = 0; i < t.n; i++) {
            double aff[4][4];
            FvErr ae = {0};
            ctrate_meta_affine(&t.rows[i], aff, &ae);
        }
    ctrate_meta_free(&t);
    return 0;
}
