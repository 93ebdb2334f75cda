/* error: errors as values.
 *
 * Library functions return 0 on success and -1 on failure, filling an FvErr
 * with a code and a one-line message that says what failed, on which item
 * (file, member, row, offset) and why. Callers add context on the way up with
 * err_prefix(), so the final line reads "archive.tar.gz:study1/ct.nii: bad
 * header: dim[1] = -3 is negative". Only tools/ writes to stdout and exits;
 * libraries return the error and may log on stderr through lib/log (warnings,
 * progress, and run_error's one line per failed item of a long run). */
#ifndef FVLM_ERROR_H
#define FVLM_ERROR_H

#include <stdarg.h>

enum {
    FV_OK = 0,
    FV_EIO,          /* reading or writing a file failed */
    FV_EFORMAT,      /* input bytes are not what their format requires */
    FV_ENOMEM,       /* allocation failed */
    FV_ELIMIT,       /* input asks for more than a configured limit */
    FV_EUNSUPPORTED, /* valid input that this build does not handle */
    FV_EDB,          /* SQLite reported an error */
    FV_EUSAGE,       /* bad argument or configuration */
    FV_ENOTFOUND,    /* a named item does not exist */
    FV_EINTERNAL,    /* a broken invariant: a bug */
    FV_EDAMAGED,     /* a stored file no longer matches its recorded hash (bit rot, a
                      * bad disk): the run stops rather than use or skip it */
};

typedef struct FvErr {
    int code;        /* FV_OK when no error is set */
    char msg[1024];  /* one line, no trailing newline */
} FvErr;

/* Sets code and message (printf format). Returns -1 so a function can say
 * `return err_set(e, FV_EIO, "%s: %s", path, strerror(errno));`.
 * e may be NULL (the error is then dropped). */
int err_set(FvErr *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "<formatted>: " to the message already set. Returns -1. */
int err_prefix(FvErr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void err_clear(FvErr *e);

/* Short name of a code: "io", "format", ... */
const char *err_code_name(int code);

#endif
