/* A whole DICOM file: the dataset tree (every transfer syntax, deflated
 * included), the image attributes, each frame's geometry, the first frames'
 * pixels in whatever codec the file names, a structured report's text. */
#include "dcm_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dcm_fuzz_read(data, size);
    return 0;
}
