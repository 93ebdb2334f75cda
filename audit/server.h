/* server: the annotators' workbench over HTTP (libmicrohttpd).
 *
 * The page (audit/static/: index.html, app.js, app.css, viewer.js,
 * viewer.css) is compiled into the binary; everything else is the JSON API
 * and the slice PNGs, all behind a session:
 *   POST /api/login {name, token}  -> session cookie (HttpOnly,
 *                                     SameSite=Strict; Secure under TLS)
 *                                     and {name, role, csrf}
 *   POST /api/logout
 *   GET  /api/me                    {name, role, csrf}
 *   GET  /api/ontology              anatomies, tasks, flags
 *   GET  /api/queue                 the user's queue
 *   GET  /api/next?after=POS        {study_id, pos} of the next undone study
 *   GET  /api/search?q=TEXT         study id, key prefix, or accession (keyed hash)
 *   GET  /api/study/ID              study_page.h
 *   GET  /api/study/ID/slice?plane=&i=&wc=&ww=&anatomy=&overlay=   image/png
 *   GET  /api/study/ID/centre?anatomy=A   {z, y, x}
 *   POST /api/decide {study_id, kind, sentence_id, anatomy, task, flag, value,
 *                     comment, queue}
 *   POST /api/undo
 *   GET  /api/stats                 stats.h
 *   GET  /api/export?format=jsonl|csv
 * Every POST but login carries the session's CSRF token in X-CSRF-Token.
 * Failed logins: 5 per client address, then 429 for 60 s. Requests: a token
 * bucket per session (per address before login); bodies above 64 KiB: 413.
 * No request path reaches the file system: routes are matched exactly and
 * the static files are in memory. Decisions are serialised on one writer
 * connection; reads use one connection per server thread. */
#ifndef FVLM_AUDIT_SERVER_H
#define FVLM_AUDIT_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

typedef struct AuditServer AuditServer;

typedef struct ServerOptions {
    const char *db_path;
    const char *bind;        /* IP address; default 127.0.0.1 */
    int port;                /* 0: any free port (server_port says which) */
    int public_ok;           /* --public: a non-loopback address is allowed */
    const char *cert, *key;  /* PEM files: TLS (both or neither) */
    const char *deid_key;    /* for accession search; NULL: search by id and key only */
    int threads;             /* 0: 4 */
    const char *const *argv; /* the command line, for the run record */
    int argc;
} ServerOptions;

/* 1 when the address is loopback (127.0.0.0/8, ::1, localhost). */
int server_addr_is_loopback(const char *addr);

/* Opens the corpus, re-applies decisions recorded after the last applied
 * one (a crash between recording and applying), and, when listen is 1,
 * starts listening. listen 0 gives a server for server_handle only (tests). */
int server_open(AuditServer **out, const ServerOptions *opt, int listen, FvErr *e);
/* The port listened on, 0 when not listening. */
int server_port(const AuditServer *s);
int server_tls(const AuditServer *s);
/* Stops listening, finishes the run record and closes everything. */
void server_close(AuditServer **s);

/* One request as the handlers see it (the HTTP layer, or a test). */
typedef struct HttpReq {
    const char *method;      /* GET, POST, ... */
    const char *path;        /* without the query */
    const char *query;       /* raw a=1&b=2 (percent-encoded), or NULL */
    const char *session;     /* the session cookie's value, or NULL */
    const char *csrf;        /* X-CSRF-Token, or NULL */
    const char *body;
    size_t body_len;
    int body_too_big;        /* the body passed the limit (413) */
    const char *client;      /* client address, for rate limits */
} HttpReq;

typedef struct HttpResp {
    int status;
    const char *type;        /* Content-Type */
    Buf body;                /* owned */
    char set_cookie[256];    /* "" for none */
    int cacheable;           /* static files: may be cached */
} HttpResp;

/* Answers one request. Never fails: errors become 4xx/5xx with a JSON
 * {"error": "..."} body. Thread-safe. */
void server_handle(AuditServer *s, const HttpReq *rq, HttpResp *rs);
void http_resp_free(HttpResp *rs);

/* The value of `name` in a raw query string, percent-decoded into out.
 * Returns 1 when present, 0 when absent, -1 when it does not fit or is not
 * valid percent-encoding. */
int http_query_arg(const char *query, const char *name, char *out, size_t n);

#endif
