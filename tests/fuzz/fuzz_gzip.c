/* gzip streams: the bounded inflater (libdeflate's one-shot path, zlib's
 * for several members or a lying trailer) and the header peek. */
#include "fuzz.h"

#include "gz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char head[540];
    size_t got = 0;
    FvErr e = {0};
    if (gz_peek(data, size, head, sizeof head, &got, &e) == 0)
        fuzz_touch(head, got);
    /* expect: unknown, then what the caller would have derived from a header (too small
     * and too large), each under a limit the stream may exceed */
    size_t expects[3] = {0, 100, size * 4 + 1};
    for (int i = 0; i < 3; i++) {
        unsigned char *out = NULL;
        size_t outlen = 0;
        FvErr ie = {0};
        if (gz_inflate(data, size, expects[i], 1u << 22, &out, &outlen, &ie) == 0)
            fuzz_touch(out, outlen + 1); /* NUL-terminated past outlen */
        free(out);
    }
    return 0;
}
