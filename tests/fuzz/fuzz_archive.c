/* The archive walker: every format and filter libarchive reads (tar, zip,
 * 7z, cpio, gzip, bzip2, xz, zstd, ...), members read through ingest's
 * MemberReader (sizes in entry headers untrusted, a per-member limit). */
#include "fuzz.h"

#include "walk.h"

enum { MEMBER_LIMIT = 4 << 20, MAX_MEMBERS = 256 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "%s", fuzz_memfile(data, size));
    char name[] = "fuzz";
    Unit u = {.type = UNIT_ARCHIVE, .path = path, .name = name};
    MemberReader *r = NULL;
    FvErr e = {0};
    if (members_open(&r, &u, MEMBER_LIMIT, &e))
        return 0;
    for (int i = 0; i < MAX_MEMBERS; i++) {
        Member m;
        int fatal = 0;
        int rc = members_next(r, &m, &fatal, &e);
        if (rc == 0 || fatal)
            break;
        if (rc == 1) {
            fuzz_touch(m.data, m.len);
            fuzz_touch(m.name, strlen(m.name));
        }
    }
    members_disk_bytes(r);
    members_close(&r);
    return 0;
}
