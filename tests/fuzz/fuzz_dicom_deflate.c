/* Deflated explicit VR little endian (1.2.840.10008.1.2.1.99): the input is
 * the raw deflate stream of a dataset, behind a meta header naming the
 * syntax, so the mutations hit the inflater and the inflated dataset. */
#include "dcm_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    DcmW w = {0};
    dw_meta(&w, "1.2.840.10008.1.2.1.99");
    dw_put(&w, data, size);
    dcm_fuzz_read(w.p, w.n);
    free(w.p);
    return 0;
}
