/* fuzz.h: what the libFuzzer harnesses of tests/fuzz share.
 *
 * Each fuzz_<reader>.c defines LLVMFuzzerTestOneInput and feeds the bytes
 * to one reader of untrusted input the way ingest, parse, train or eval
 * do, then touches what the reader returned, so ASan and UBSan see every
 * byte it claims to have produced. A reader may reject any input; it must
 * never crash, leak, read out of bounds or overflow. */
#ifndef FVLM_TESTS_FUZZ_H
#define FVLM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Readers that take a path (libarchive, safetensors' mmap) read the input
 * from one memory file, rewritten for each input: no disk, no races
 * between parallel fuzzers. Returns its /proc path, or aborts (a broken
 * harness must not pass as a clean run). */
static inline const char *fuzz_memfile(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fvlm-fuzz", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz memfile");
        abort();
    }
    return path;
}

/* Reads every byte of a buffer, so ASan checks that all the bytes a reader
 * says it produced are really there (a length larger than the allocation). */
static inline unsigned fuzz_touch(const void *p, size_t n)
{
    const volatile unsigned char *c = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += c[i];
    return s;
}

#endif
