#include "faultvfs.h"

#include <stdlib.h>
#include <string.h>

#include "fvlm_config.h"

#if FVLM_FAULT_VFS

#include <sqlite3.h>

/* ------------------------------------------------------------ the shim */

typedef struct FaultFile {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
} FaultFile;

static sqlite3_vfs *g_real;
static sqlite3_vfs g_vfs;
static sqlite3_io_methods g_methods;
static long g_after;      /* the first failing write/sync/truncate, 1-based */
static long g_count;      /* writes, syncs and truncates so far */
static int g_fail_code;   /* SQLITE_IOERR_WRITE or SQLITE_FULL */

/* One more mutating operation: does it fail? (SQLite serialises the calls
 * of one connection; fvlm's stages write through one.) */
static int fail_now(int code)
{
    if (++g_count < g_after)
        return 0;
    return g_fail_code == SQLITE_FULL ? SQLITE_FULL : code;
}

#define REAL(f) (((FaultFile *)(f))->real)

static int f_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    int rc = fail_now(SQLITE_IOERR_WRITE);
    return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = fail_now(SQLITE_IOERR_TRUNCATE);
    return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
    int rc = fail_now(SQLITE_IOERR_FSYNC);
    return rc ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_check(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    FaultFile *f = (FaultFile *)file;
    f->real = (sqlite3_file *)(f + 1);
    int rc = g_real->xOpen(g_real, name, f->real, flags, out);
    /* A file the real VFS did not open has no methods: SQLite then calls nothing on it. */
    f->base.pMethods = f->real->pMethods ? &g_methods : NULL;
    return rc;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync)
{
    return g_real->xDelete(g_real, name, sync);
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return g_real->xAccess(g_real, name, flags, out);
}
static int v_full(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return g_real->xFullPathname(g_real, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *name) { return g_real->xDlOpen(g_real, name); }
static void v_dlerror(sqlite3_vfs *v, int n, char *out) { g_real->xDlError(g_real, n, out); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return g_real->xDlSym(g_real, h, sym);
}
static void v_dlclose(sqlite3_vfs *v, void *h) { g_real->xDlClose(g_real, h); }
static int v_random(sqlite3_vfs *v, int n, char *out) { return g_real->xRandomness(g_real, n, out); }
static int v_sleep(sqlite3_vfs *v, int us) { return g_real->xSleep(g_real, us); }
static int v_time(sqlite3_vfs *v, double *out) { return g_real->xCurrentTime(g_real, out); }
static int v_lasterr(sqlite3_vfs *v, int n, char *out)
{
    return g_real->xGetLastError ? g_real->xGetLastError(g_real, n, out) : 0;
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    return g_real->xCurrentTimeInt64(g_real, out);
}

int faultvfs_install(FvErr *e)
{
    static int done;
    const char *s = getenv("FVLM_FAULT_VFS");
    if (!s || done)
        return 0;
    const char *colon = strchr(s, ':');
    char *end = NULL;
    long n = colon ? strtol(colon + 1, &end, 10) : 0;
    int full = colon && (size_t)(colon - s) == 4 && !strncmp(s, "full", 4);
    int io = colon && (size_t)(colon - s) == 2 && !strncmp(s, "io", 2);
    if ((!full && !io) || !end || *end || n < 1)
        return err_set(e, FV_EUSAGE, "FVLM_FAULT_VFS='%s': expected io:N or full:N (N >= 1)", s);
    if (!(g_real = sqlite3_vfs_find(NULL)))
        return err_set(e, FV_EINTERNAL, "FVLM_FAULT_VFS: no default SQLite VFS");
    g_after = n;
    g_fail_code = full ? SQLITE_FULL : SQLITE_IOERR;
    g_methods = (sqlite3_io_methods){
        .iVersion = 3, .xClose = f_close, .xRead = f_read, .xWrite = f_write,
        .xTruncate = f_truncate, .xSync = f_sync, .xFileSize = f_size, .xLock = f_lock,
        .xUnlock = f_unlock, .xCheckReservedLock = f_check, .xFileControl = f_fcntl,
        .xSectorSize = f_sector, .xDeviceCharacteristics = f_devchar, .xShmMap = f_shm_map,
        .xShmLock = f_shm_lock, .xShmBarrier = f_shm_barrier, .xShmUnmap = f_shm_unmap,
        .xFetch = f_fetch, .xUnfetch = f_unfetch};
    g_vfs = (sqlite3_vfs){
        .iVersion = 2, .szOsFile = (int)sizeof(FaultFile) + g_real->szOsFile,
        .mxPathname = g_real->mxPathname, .zName = "fvlm-fault", .xOpen = f_open,
        .xDelete = v_delete, .xAccess = v_access, .xFullPathname = v_full, .xDlOpen = v_dlopen,
        .xDlError = v_dlerror, .xDlSym = v_dlsym, .xDlClose = v_dlclose, .xRandomness = v_random,
        .xSleep = v_sleep, .xCurrentTime = v_time, .xGetLastError = v_lasterr,
        .xCurrentTimeInt64 = v_time64};
    if (sqlite3_vfs_register(&g_vfs, 1) != SQLITE_OK)
        return err_set(e, FV_EINTERNAL, "FVLM_FAULT_VFS: cannot register the fault VFS");
    done = 1;
    return 0;
}

#else

int faultvfs_install(FvErr *e)
{
    const char *s = getenv("FVLM_FAULT_VFS");
    if (s)
        return err_set(e, FV_EUSAGE,
                       "FVLM_FAULT_VFS is set but this build has no fault injection "
                       "(configured with -Dfault_vfs=false)");
    return 0;
}

#endif
