/* The RLE Lossless (PackBits byte planes) pixel codec: the input is an 8-byte prefix (rows, columns,
 * bits; see dcm_fuzz_wrap) and the compressed frames, wrapped in a minimal
 * DICOM file of transfer syntax 1.2.840.10008.1.2.5. */
#include "dcm_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return dcm_fuzz_codec("1.2.840.10008.1.2.5", data, size);
}
