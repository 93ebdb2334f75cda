#include "error.h"

#include <stdio.h>
#include <string.h>

int err_set(FvErr *e, int code, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code ? code : FV_EINTERNAL;
    /* A message is one line: newlines from external text would break logs. */
    for (char *p = e->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

int err_prefix(FvErr *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    char head[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    /* Context plus message may exceed the buffer: keep the start (the
     * context) and cut the tail; a truncated message is marked. */
    int n = snprintf(e->msg, sizeof e->msg, "%s: %s", head, old);
    if (n >= (int)sizeof e->msg)
        memcpy(e->msg + sizeof e->msg - 4, "...", 4);
    if (!e->code)
        e->code = FV_EINTERNAL;
    return -1;
}

void err_clear(FvErr *e)
{
    if (e) {
        e->code = FV_OK;
        e->msg[0] = '\0';
    }
}

const char *err_code_name(int code)
{
    switch (code) {
    case FV_OK: return "ok";
    case FV_EIO: return "io";
    case FV_EFORMAT: return "format";
    case FV_ENOMEM: return "memory";
    case FV_ELIMIT: return "limit";
    case FV_EUNSUPPORTED: return "unsupported";
    case FV_EDB: return "database";
    case FV_EUSAGE: return "usage";
    case FV_ENOTFOUND: return "not-found";
    case FV_EDAMAGED: return "damaged";
    default: return "internal";
    }
}
