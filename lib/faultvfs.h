/* faultvfs: SQLite I/O errors on demand, for the fault tests.
 *
 * FVLM_FAULT_VFS=<kind>:<N> makes the N-th write, sync or truncate of any
 * SQLite file of this process (N >= 1) and every one after it fail, as a
 * bad disk (kind "io": SQLITE_IOERR_WRITE) or a full one (kind "full":
 * SQLITE_FULL) would. The shim wraps the default VFS and forwards all else,
 * so reads, locks, WAL shared memory and mmap behave as usual. Unset, it
 * is never registered and costs one getenv per database opened.
 *
 * Built only with -Dfault_vfs=true (the default, so the test suite can run
 * it; a packager may turn it off). Without it, a set FVLM_FAULT_VFS is an
 * error, so a test never passes by injecting nothing. */
#ifndef FVLM_FAULTVFS_H
#define FVLM_FAULTVFS_H

#include "error.h"

/* Registers the shim as the default VFS when FVLM_FAULT_VFS is set (once
 * per process). Returns 0, or -1 for a malformed value or a build without it. */
int faultvfs_install(FvErr *e);

#endif
