/* safetensors files (volume and mask shards, checkpoints): the header's
 * length, JSON, dtypes, shapes and offsets against the file size, then
 * every tensor's bytes and the metadata, as train and eval read them. */
#include "fuzz.h"

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    StFile *f = NULL;
    FvErr e = {0};
    if (st_open(&f, fuzz_memfile(data, size), &e))
        return 0;
    for (int i = 0; i < f->n; i++) {
        const StTensor *t = &f->t[i];
        fuzz_touch(t->data, t->nbytes);
        const StTensor *c;
        FvErr ce = {0};
        st_get_checked(f, t->name, t->dtype, t->ndim, &c, &ce);
        st_get(f, t->name);
    }
    for (int i = 0; i < f->nmeta; i++)
        fuzz_touch(st_meta(f, f->meta_keys[i]), 1);
    st_close(&f);
    return 0;
}
