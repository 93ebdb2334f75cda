/* NIfTI-1/-2 and Analyze headers and voxel data (.nii, .nii.gz, the .hdr of
 * a pair), read as a CT and as a mask, then the mask's label table. */
#include "fuzz.h"

#include "nifti.h"
#include "vol.h"

enum { MAX_VOXELS = 1 << 22 }; /* 4 Mi voxels: big enough for every path, small enough for RSS */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int mask = 0; mask <= 1; mask++) {
        NiftiHeader h;
        memset(&h, 0, sizeof h);
        Vol v;
        FvErr e = {0};
        unsigned char *hb = NULL;
        size_t hl = 0;
        /* A pair's header names no data of its own: hand it the same bytes as .img. */
        int rc = nifti_load(data, size, NULL, 0, mask, MAX_VOXELS, &h, &v, &hb, &hl, &e);
        if (rc && h.pair) {
            free(hb);
            hb = NULL;
            rc = nifti_load(data, size, data, size, mask, MAX_VOXELS, &h, &v, &hb, &hl, &e);
        }
        if (rc == 0) {
            fuzz_touch(v.data, (size_t)vol_count(&v) * vol_type_size(v.type));
            NiftiLabel *labels = NULL;
            FvErr le = {0};
            int nl = nifti_label_table(&h, hb, hl, &labels, &le);
            for (int i = 0; i < nl; i++)
                fuzz_touch(labels[i].name, strlen(labels[i].name));
            free(labels);
            vol_free(&v);
        }
        free(hb);
    }
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        unsigned char *out = NULL;
        size_t outlen = 0;
        FvErr e = {0};
        if (nifti_inflate(data, size, MAX_VOXELS, &out, &outlen, &e) == 0)
            fuzz_touch(out, outlen);
        free(out);
    }
    return 0;
}
