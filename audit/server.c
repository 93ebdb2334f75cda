#include "server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "accounts.h"
#include "align.h"
#include "anatomy_meta.h"
#include "config.h"
#include "db.h"
#include "decide.h"
#include "deid.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "ontology.h"
#include "queue.h"
#include "render.h"
#include "run.h"
#include "schemas.h"
#include "stats.h"
#include "study_page.h"

/* The page, compiled in by tools/embed.c (audit/meson.build). */
extern const EmbeddedFile audit_static_files[];

enum {
    MAX_BODY = 64 * 1024,          /* bytes: a decision or a login is far smaller */
    MAX_SESSIONS = 1024,
    SESSION_IDLE_S = 12 * 3600,    /* a session unused this long ends */
    LOGIN_FAILS = 5,               /* failed logins per address ... */
    LOGIN_LOCK_S = 60,             /* ... before it waits this long */
    RATE_SLOTS = 512,
    MAX_THREAD_DBS = 64,
};
/* Token buckets: requests per second and burst, per session and per
 * address before login. A viewer scrolling through slices asks for a few
 * dozen images a second. */
static const double RATE_SESSION = 200, BURST_SESSION = 400;
static const double RATE_ANON = 50, BURST_ANON = 100;

typedef struct Session {
    char id[65], csrf[65];
    char who[72];
    int role;
    time_t last;
} Session;

typedef struct RateSlot {
    char key[128];
    double tokens, t;              /* bucket level, time of last refill (s) */
    int fails;                     /* failed logins in the window */
    time_t fail_start, locked_until;
} RateSlot;

struct AuditServer {
    char *db_path;
    char *deid_key;
    unsigned gen;                  /* tells thread-local connections of another server apart */
    struct MHD_Daemon *mhd;
    int port, tls;
    char *cert_pem, *key_pem;
    Ontology *o;
    AnatomyMetaTable meta;
    Config cfg;
    AlignOptions ao;
    RenderCache *cache;
    /* Writer: decisions and their re-alignment, one at a time. */
    pthread_mutex_t wlock;
    Db *wdb;
    Run run;
    /* Sessions and rate limits. */
    pthread_mutex_t slock;
    Session sess[MAX_SESSIONS];
    RateSlot rate[RATE_SLOTS];
    /* Reader connections, one per server thread. */
    pthread_mutex_t dlock;
    Db *dbs[MAX_THREAD_DBS];
    int n_dbs;
    int64_t n_decisions;
};

static unsigned g_gen;
static __thread Db *tl_db;
static __thread unsigned tl_gen;
static __thread const AuditServer *tl_srv;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The calling thread's read connection (opened on first use). */
static Db *reader(AuditServer *s, FvErr *e)
{
    if (tl_db && tl_gen == s->gen && tl_srv == s)
        return tl_db;
    Db *db = NULL;
    if (db_open(&db, s->db_path, DB_MUST_EXIST, e))
        return NULL;
    pthread_mutex_lock(&s->dlock);
    if (s->n_dbs == MAX_THREAD_DBS) {
        pthread_mutex_unlock(&s->dlock);
        db_close(&db);
        err_set(e, FV_ELIMIT, "audit server: more than %d threads", MAX_THREAD_DBS);
        return NULL;
    }
    s->dbs[s->n_dbs++] = db;
    pthread_mutex_unlock(&s->dlock);
    tl_db = db;
    tl_gen = s->gen;
    tl_srv = s;
    return db;
}

int server_addr_is_loopback(const char *a)
{
    if (!a)
        return 1;
    if (!strcmp(a, "localhost") || !strcmp(a, "::1"))
        return 1;
    struct in_addr in;
    if (inet_pton(AF_INET, a, &in) == 1)
        return (ntohl(in.s_addr) >> 24) == 127;
    return 0;
}

/* ------------------------------------------------------------------------
 * Query strings
 * ------------------------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes [p, end) into out ('+' is a space). */
static int pct_decode(const char *p, const char *end, char *out, size_t n)
{
    size_t k = 0;
    while (p < end) {
        int c = (unsigned char)*p;
        if (c == '%') {
            if (end - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0)
                return -1;
            c = hexval(p[1]) * 16 + hexval(p[2]);
            p += 3;
        } else {
            if (c == '+')
                c = ' ';
            p++;
        }
        if (c == 0 || k + 1 >= n)
            return -1;
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return 0;
}

int http_query_arg(const char *q, const char *name, char *out, size_t n)
{
    if (!q)
        return 0;
    size_t ln = strlen(name);
    const char *p = q;
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == ln && !memcmp(p, name, ln)) {
            if (!eq) {
                if (n)
                    out[0] = '\0';
                return 1;
            }
            return pct_decode(eq + 1, end, out, n) ? -1 : 1;
        }
        p = amp ? amp + 1 : end;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

static void reply_json_err(HttpResp *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_json_err(HttpResp *rs, int status, const char *fmt, ...)
{
    char msg[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_reset(&rs->body);
    JsonW w;
    jw_init(&w, &rs->body, 0);
    jw_obj(&w);
    jw_key(&w, "error");
    jw_str(&w, msg);
    jw_obj_end(&w);
    rs->status = status;
    rs->type = "application/json; charset=utf-8";
}

static int status_of(const FvErr *e)
{
    switch (e->code) {
    case FV_EUSAGE: return 400;
    case FV_ENOTFOUND: return 404;
    case FV_ELIMIT: return 413;
    default: return 500;
    }
}

static void reply_err(HttpResp *rs, const FvErr *e)
{
    int st = status_of(e);
    if (st == 500)
        log_error("audit server: %s", e->msg);
    /* A server fault is logged in full; the client gets its kind only. */
    reply_json_err(rs, st, "%s", st == 500 ? "internal error (see the server's log)" : e->msg);
}

static void reply_ok_json(HttpResp *rs)
{
    rs->status = rs->body.failed ? 500 : 200;
    rs->type = "application/json; charset=utf-8";
}

void http_resp_free(HttpResp *rs)
{
    buf_free(&rs->body);
}

/* ------------------------------------------------------------------------
 * Sessions and limits (under slock)
 * ------------------------------------------------------------------------ */

static Session *session_find(AuditServer *s, const char *id, time_t now)
{
    if (!id || strlen(id) != 64)
        return NULL;
    for (int i = 0; i < MAX_SESSIONS; i++) {
        Session *x = &s->sess[i];
        if (!x->id[0])
            continue;
        if (now - x->last > SESSION_IDLE_S) {
            memset(x, 0, sizeof *x);
            continue;
        }
        /* Fixed-time comparison of the cookie. */
        unsigned d = 0;
        for (int k = 0; k < 64; k++)
            d |= (unsigned)(x->id[k] ^ id[k]);
        if (d == 0) {
            x->last = now;
            return x;
        }
    }
    return NULL;
}

static RateSlot *rate_slot(AuditServer *s, const char *key, double t)
{
    RateSlot *free_slot = NULL, *oldest = &s->rate[0];
    for (int i = 0; i < RATE_SLOTS; i++) {
        RateSlot *r = &s->rate[i];
        if (r->key[0] && !strcmp(r->key, key))
            return r;
        if (!r->key[0] && !free_slot)
            free_slot = r;
        if (r->t < oldest->t)
            oldest = r;
    }
    /* A new key takes a free slot, else the one unused longest. */
    RateSlot *r = free_slot ? free_slot : oldest;
    memset(r, 0, sizeof *r);
    snprintf(r->key, sizeof r->key, "%s", key);
    r->t = t;
    r->tokens = -1; /* filled on first use */
    return r;
}

/* 1 when a request under key may go ahead now. */
static int rate_take(AuditServer *s, const char *key, double rate, double burst)
{
    double t = mono_s();
    pthread_mutex_lock(&s->slock);
    RateSlot *r = rate_slot(s, key, t);
    if (r->tokens < 0)
        r->tokens = burst;
    r->tokens = fmin(burst, r->tokens + (t - r->t) * rate);
    r->t = t;
    int ok = r->tokens >= 1;
    if (ok)
        r->tokens -= 1;
    pthread_mutex_unlock(&s->slock);
    return ok;
}

/* ------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

typedef struct Who {
    char name[72];
    int role;
    char csrf[65];
} Who;

static void h_static(const char *name, HttpResp *rs)
{
    for (const EmbeddedFile *f = audit_static_files; f->name; f++) {
        if (strcmp(f->name, name))
            continue;
        const char *dot = strrchr(name, '.');
        rs->type = !dot                        ? "application/octet-stream"
                   : !strcmp(dot, ".html")     ? "text/html; charset=utf-8"
                   : !strcmp(dot, ".js")       ? "text/javascript; charset=utf-8"
                   : !strcmp(dot, ".css")      ? "text/css; charset=utf-8"
                                               : "application/octet-stream";
        buf_append(&rs->body, f->data, f->size);
        rs->status = 200;
        rs->cacheable = 1;
        return;
    }
    reply_json_err(rs, 404, "no such page");
}

static int body_json(const HttpReq *rq, JsonValue **v, HttpResp *rs)
{
    FvErr e = {0};
    if (!rq->body || rq->body_len == 0) {
        reply_json_err(rs, 400, "the request has no JSON body");
        return -1;
    }
    if (json_parse(rq->body, rq->body_len, v, &e) || (*v)->type != JSON_OBJ) {
        json_free(v);
        reply_json_err(rs, 400, "the body is not a JSON object: %s", e.msg[0] ? e.msg : "");
        return -1;
    }
    return 0;
}

static void h_login(AuditServer *s, const HttpReq *rq, HttpResp *rs)
{
    char key[96];
    snprintf(key, sizeof key, "login:%s", rq->client ? rq->client : "?");
    time_t now = time(NULL);
    pthread_mutex_lock(&s->slock);
    RateSlot *r = rate_slot(s, key, mono_s());
    int locked = r->locked_until > now;
    pthread_mutex_unlock(&s->slock);
    if (locked) {
        reply_json_err(rs, 429, "too many failed logins from this address: wait a minute");
        return;
    }
    JsonValue *v = NULL;
    if (body_json(rq, &v, rs))
        return;
    const char *name = json_get_str(v, "name", "");
    const char *token = json_get_str(v, "token", "");
    FvErr e = {0};
    Db *db = reader(s, &e);
    int role = 0, ok = 0;
    if (!db || (ok = acc_check(db, name, token, &role, &e)) < 0) {
        json_free(&v);
        reply_err(rs, &e);
        return;
    }
    if (!ok) {
        pthread_mutex_lock(&s->slock);
        r = rate_slot(s, key, mono_s());
        if (now - r->fail_start > LOGIN_LOCK_S) {
            r->fail_start = now;
            r->fails = 0;
        }
        if (++r->fails >= LOGIN_FAILS) {
            r->locked_until = now + LOGIN_LOCK_S;
            r->fails = 0;
        }
        pthread_mutex_unlock(&s->slock);
        json_free(&v);
        reply_json_err(rs, 401, "wrong name or token");
        return;
    }
    Session x = {0};
    if (acc_random_hex(x.id, 32, &e) || acc_random_hex(x.csrf, 32, &e)) {
        json_free(&v);
        reply_err(rs, &e);
        return;
    }
    snprintf(x.who, sizeof x.who, "%s", name);
    x.role = role;
    x.last = now;
    json_free(&v);
    pthread_mutex_lock(&s->slock);
    Session *slot = NULL;
    for (int i = 0; i < MAX_SESSIONS && !slot; i++)
        if (!s->sess[i].id[0] || now - s->sess[i].last > SESSION_IDLE_S)
            slot = &s->sess[i];
    if (!slot) { /* full: the session unused longest gives way */
        slot = &s->sess[0];
        for (int i = 1; i < MAX_SESSIONS; i++)
            if (s->sess[i].last < slot->last)
                slot = &s->sess[i];
    }
    *slot = x;
    pthread_mutex_unlock(&s->slock);
    snprintf(rs->set_cookie, sizeof rs->set_cookie,
             "fvlm_session=%s; Path=/; HttpOnly; SameSite=Strict%s", x.id, s->tls ? "; Secure" : "");
    JsonW w;
    jw_init(&w, &rs->body, 0);
    jw_obj(&w);
    jw_key(&w, "name"); jw_str(&w, x.who);
    jw_key(&w, "role"); jw_str(&w, acc_role_name(x.role));
    jw_key(&w, "csrf"); jw_str(&w, x.csrf);
    jw_obj_end(&w);
    reply_ok_json(rs);
}

static void h_logout(AuditServer *s, const HttpReq *rq, HttpResp *rs)
{
    pthread_mutex_lock(&s->slock);
    Session *x = session_find(s, rq->session, time(NULL));
    if (x)
        memset(x, 0, sizeof *x);
    pthread_mutex_unlock(&s->slock);
    snprintf(rs->set_cookie, sizeof rs->set_cookie,
             "fvlm_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    buf_puts(&rs->body, "{}");
    reply_ok_json(rs);
}

/* "/api/study/123" or "/api/study/123/slice": the id and what follows. */
static int parse_study_path(const char *p, int64_t *id, const char **rest)
{
    const char *pre = "/api/study/";
    size_t lp = strlen(pre);
    if (strncmp(p, pre, lp))
        return -1;
    p += lp;
    int64_t v = 0;
    int digits = 0;
    while (isdigit((unsigned char)*p) && digits < 15) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || v <= 0 || (*p && *p != '/'))
        return -1;
    *id = v;
    *rest = p;
    return 0;
}

static int arg_double(const HttpReq *rq, const char *name, double *out, HttpResp *rs)
{
    char v[64], *end;
    int r = http_query_arg(rq->query, name, v, sizeof v);
    if (r == 0)
        return 0;
    errno = 0;
    double d = r > 0 ? strtod(v, &end) : 0;
    if (r < 0 || end == v || *end || errno || !isfinite(d)) {
        reply_json_err(rs, 400, "parameter %s: expected a number", name);
        return -1;
    }
    *out = d;
    return 1;
}

static void h_slice(AuditServer *s, int64_t id, const HttpReq *rq, HttpResp *rs, int centre)
{
    char plane[32] = "axial", anatomy[96] = "", overlay[32] = "outline", preset[32] = "";
    if (http_query_arg(rq->query, "plane", plane, sizeof plane) < 0 ||
        http_query_arg(rq->query, "anatomy", anatomy, sizeof anatomy) < 0 ||
        http_query_arg(rq->query, "overlay", overlay, sizeof overlay) < 0 ||
        http_query_arg(rq->query, "preset", preset, sizeof preset) < 0) {
        reply_json_err(rs, 400, "a parameter is too long or badly encoded");
        return;
    }
    FvErr e = {0};
    Db *db = reader(s, &e);
    if (!db) {
        reply_err(rs, &e);
        return;
    }
    RenderStudy st;
    if (render_study_load(db, s->o, id, anatomy[0] ? anatomy : NULL, &st, &e)) {
        reply_err(rs, &e);
        return;
    }
    RenderReq req;
    render_req_init(&req);
    render_req_from_study(&req, &st);
    req.cache = s->cache;
    if (centre) {
        int64_t c[3];
        if (render_anatomy_centre(&req, c, &e)) {
            reply_err(rs, &e);
            return;
        }
        buf_printf(&rs->body, "{\"z\": %lld, \"y\": %lld, \"x\": %lld}", (long long)c[0],
                   (long long)c[1], (long long)c[2]);
        reply_ok_json(rs);
        return;
    }
    double idx = 0;
    if (render_plane_parse(plane, &req.plane, &e) || render_overlay_parse(overlay, &req.overlay, &e) ||
        (preset[0] && render_window_preset(preset, &req.wc, &req.ww, &e))) {
        reply_err(rs, &e);
        return;
    }
    int r1 = arg_double(rq, "i", &idx, rs);
    if (r1 < 0 || arg_double(rq, "wc", &req.wc, rs) < 0 || arg_double(rq, "ww", &req.ww, rs) < 0)
        return;
    if (r1 == 0) /* no index: the middle slice */
        idx = (double)(st.dims[req.plane == RENDER_AXIAL ? 0 : req.plane == RENDER_CORONAL ? 1 : 2] / 2);
    if (idx != floor(idx) || fabs(idx) > 1e9) {
        reply_json_err(rs, 400, "parameter i: expected a whole slice index");
        return;
    }
    req.index = (int64_t)idx;
    if (render_slice_png(&req, &rs->body, &e)) {
        reply_err(rs, &e);
        return;
    }
    rs->status = 200;
    rs->type = "image/png";
}

static int64_t json_int_field(const JsonValue *v, const char *k)
{
    const JsonValue *x = json_get(v, k);
    if (!x)
        return 0;
    if (x->type == JSON_NUM && x->is_int)
        return x->i;
    if (x->type == JSON_STR) {
        char *end;
        long long n = strtoll(x->str, &end, 10);
        return *end ? -1 : n;
    }
    return -1;
}

/* Re-aligns a study after a decision (under wlock), and records how far
 * decisions are applied. */
static int realign_locked(AuditServer *s, int64_t study, FvErr *e)
{
    Realign ra = {s->wdb, &s->run, s->o, &s->meta, &s->ao};
    if (decide_realign(&ra, study, e))
        return -1;
    return db_run(s->wdb, e,
                  "INSERT INTO meta (key, value) VALUES ('audit.applied_id',"
                  " (SELECT coalesce(max(id), 0) FROM audits)) ON CONFLICT (key) DO UPDATE"
                  " SET value = excluded.value",
                  "");
}

static void h_decide(AuditServer *s, const Who *u, const HttpReq *rq, HttpResp *rs)
{
    JsonValue *v = NULL;
    if (body_json(rq, &v, rs))
        return;
    Decision d = {0};
    d.study_id = json_int_field(v, "study_id");
    d.sentence_id = json_int_field(v, "sentence_id");
    d.kind = json_get_str(v, "kind", NULL);
    d.anatomy = json_get_str(v, "anatomy", NULL);
    d.task = json_get_str(v, "task", NULL);
    d.flag = json_get_str(v, "flag", NULL);
    d.value = json_get_str(v, "value", NULL);
    d.comment = json_get_str(v, "comment", NULL);
    d.queue = json_get_str(v, "queue", NULL);
    if (d.queue && queue_order_parse(d.queue) < 0)
        d.queue = NULL;
    if (d.study_id <= 0) {
        json_free(&v);
        reply_json_err(rs, 400, "study_id: expected a study id");
        return;
    }
    FvErr e = {0};
    int64_t id = 0;
    pthread_mutex_lock(&s->wlock);
    int rc = decide_record(s->wdb, s->o, u->name, u->role, &d, &id, &e);
    if (rc == 0 && strcmp(d.kind, "done"))
        rc = realign_locked(s, d.study_id, &e);
    if (rc == 0)
        s->n_decisions++;
    pthread_mutex_unlock(&s->wlock);
    json_free(&v);
    if (rc) {
        reply_err(rs, &e);
        return;
    }
    buf_printf(&rs->body, "{\"id\": %lld}", (long long)id);
    reply_ok_json(rs);
}

static void h_undo(AuditServer *s, const Who *u, HttpResp *rs)
{
    FvErr e = {0};
    int64_t study = 0;
    pthread_mutex_lock(&s->wlock);
    int rc = decide_undo(s->wdb, u->name, u->role, &study, &e);
    if (rc == 0)
        rc = realign_locked(s, study, &e);
    pthread_mutex_unlock(&s->wlock);
    if (rc) {
        reply_err(rs, &e);
        return;
    }
    buf_printf(&rs->body, "{\"study_id\": %lld}", (long long)study);
    reply_ok_json(rs);
}

void server_handle(AuditServer *s, const HttpReq *rq, HttpResp *rs)
{
    memset(rs, 0, sizeof *rs);
    const char *m = rq->method ? rq->method : "";
    const char *p = rq->path ? rq->path : "";
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST");
    if (rq->body_too_big) {
        reply_json_err(rs, 413, "request body above %d bytes", MAX_BODY);
        return;
    }
    if (!get && !post) {
        reply_json_err(rs, 405, "method not allowed");
        return;
    }
    /* The page itself holds no data: it answers without a session. */
    if (get && (!strcmp(p, "/") || !strcmp(p, "/index.html"))) {
        h_static("index.html", rs);
        return;
    }
    if (get && !strncmp(p, "/static/", 8)) {
        h_static(p + 8, rs);
        return;
    }
    if (strncmp(p, "/api/", 5)) {
        reply_json_err(rs, 404, "no such page");
        return;
    }
    Who u = {0};
    time_t now = time(NULL);
    pthread_mutex_lock(&s->slock);
    Session *x = session_find(s, rq->session, now);
    if (x) {
        snprintf(u.name, sizeof u.name, "%s", x->who);
        u.role = x->role;
        memcpy(u.csrf, x->csrf, sizeof u.csrf);
    }
    pthread_mutex_unlock(&s->slock);
    char rkey[96];
    snprintf(rkey, sizeof rkey, "%s:%s", x ? "user" : "addr", x ? u.name : rq->client ? rq->client : "?");
    if (!rate_take(s, rkey, x ? RATE_SESSION : RATE_ANON, x ? BURST_SESSION : BURST_ANON)) {
        reply_json_err(rs, 429, "too many requests: slow down");
        return;
    }
    if (post && !strcmp(p, "/api/login")) {
        h_login(s, rq, rs);
        return;
    }
    if (!x) {
        reply_json_err(rs, 401, "log in first");
        return;
    }
    if (post) {
        unsigned d = rq->csrf && strlen(rq->csrf) == 64 ? 0 : 1;
        for (int k = 0; k < 64 && !d; k++)
            d |= (unsigned)(rq->csrf[k] ^ u.csrf[k]);
        if (d) {
            reply_json_err(rs, 403, "missing or wrong CSRF token (reload the page)");
            return;
        }
        if (!strcmp(p, "/api/logout"))
            h_logout(s, rq, rs);
        else if (!strcmp(p, "/api/decide"))
            h_decide(s, &u, rq, rs);
        else if (!strcmp(p, "/api/undo"))
            h_undo(s, &u, rs);
        else
            reply_json_err(rs, 404, "no such action");
        return;
    }
    FvErr e = {0};
    Db *db = reader(s, &e);
    if (!db) {
        reply_err(rs, &e);
        return;
    }
    int64_t id;
    const char *rest;
    int rc = 0;
    if (!strcmp(p, "/api/me")) {
        JsonW w;
        jw_init(&w, &rs->body, 0);
        jw_obj(&w);
        jw_key(&w, "name"); jw_str(&w, u.name);
        jw_key(&w, "role"); jw_str(&w, acc_role_name(u.role));
        jw_key(&w, "csrf"); jw_str(&w, u.csrf);
        jw_key(&w, "accession_search"); jw_bool(&w, s->deid_key != NULL);
        jw_obj_end(&w);
    } else if (!strcmp(p, "/api/ontology")) {
        ontology_json(s->o, &rs->body);
    } else if (!strcmp(p, "/api/queue")) {
        rc = queue_json(db, u.name, &rs->body, &e);
    } else if (!strcmp(p, "/api/next")) {
        char a[32] = "-1";
        if (http_query_arg(rq->query, "after", a, sizeof a) < 0) {
            reply_json_err(rs, 400, "parameter after: expected a position");
            return;
        }
        char *end;
        long long after = strtoll(a, &end, 10);
        if (*end) {
            reply_json_err(rs, 400, "parameter after: expected a position");
            return;
        }
        int64_t next = 0, pos = -1;
        int found = 0;
        rc = queue_next(db, u.name, after, &next, &e);
        if (rc == 0 && next)
            rc = db_query_int(db, &e, &pos, &found,
                              "SELECT pos FROM audit_queue WHERE who = ? AND study_id = ?", "si",
                              u.name, next);
        if (rc == 0)
            buf_printf(&rs->body, "{\"study_id\": %lld, \"pos\": %lld}", (long long)next,
                       (long long)(next ? pos : -1));
    } else if (!strcmp(p, "/api/search")) {
        char q[256];
        int r = http_query_arg(rq->query, "q", q, sizeof q);
        if (r <= 0) {
            reply_json_err(rs, 400, "parameter q: type a study id, key or accession");
            return;
        }
        rc = queue_search(db, q, s->deid_key, &rs->body, &e);
        explicit_bzero(q, sizeof q);
    } else if (!strcmp(p, "/api/stats")) {
        rc = stats_write(db, 1, &rs->body, &e);
    } else if (!strcmp(p, "/api/export")) {
        char f[16] = "jsonl";
        if (http_query_arg(rq->query, "format", f, sizeof f) < 0 ||
            (strcmp(f, "jsonl") && strcmp(f, "csv"))) {
            reply_json_err(rs, 400, "format: jsonl or csv");
            return;
        }
        rc = stats_export(db, !strcmp(f, "csv"), &rs->body, &e);
        if (rc == 0) {
            rs->status = 200;
            rs->type = !strcmp(f, "csv") ? "text/csv; charset=utf-8" : "application/x-ndjson";
            return;
        }
    } else if (parse_study_path(p, &id, &rest) == 0) {
        if (!*rest)
            rc = study_page_json(db, s->o, id, u.name, &rs->body, &e);
        else if (!strcmp(rest, "/slice") || !strcmp(rest, "/centre")) {
            h_slice(s, id, rq, rs, rest[1] == 'c');
            return;
        } else {
            reply_json_err(rs, 404, "no such page");
            return;
        }
    } else {
        reply_json_err(rs, 404, "no such page");
        return;
    }
    if (rc) {
        reply_err(rs, &e);
        return;
    }
    reply_ok_json(rs);
}

/* ------------------------------------------------------------------------
 * HTTP (libmicrohttpd)
 * ------------------------------------------------------------------------ */

typedef struct ConnState {
    Buf body;
    int too_big;
} ConnState;

typedef struct QueryBuild {
    Buf b;
} QueryBuild;

static void pct_encode(Buf *b, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            buf_putc(b, (char)c);
        else
            buf_printf(b, "%%%02X", c);
    }
}

/* MHD has parsed the query already: it is put back together (encoded) so
 * the handlers see one raw string, as the tests give them. */
static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    QueryBuild *q = cls;
    if (q->b.len)
        buf_putc(&q->b, '&');
    pct_encode(&q->b, key);
    if (value) {
        buf_putc(&q->b, '=');
        pct_encode(&q->b, value);
    }
    return q->b.len > 8192 ? MHD_NO : MHD_YES;
}

static const char *const security_headers[][2] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:;"
     " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Resource-Policy", "same-origin"},
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    AuditServer *s = cls;
    ConnState *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs)))
            return MHD_NO;
        *con_cls = cs;
        /* A body announced above the limit is refused before it is read. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > MAX_BODY) {
            static const char msg[] = "{\"error\":\"request body above 65536 bytes\"}";
            struct MHD_Response *r = MHD_create_response_from_buffer(
                sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
            if (!r)
                return MHD_NO;
            MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
            MHD_add_response_header(r, "Connection", "close");
            enum MHD_Result ret = MHD_queue_response(c, 413, r);
            MHD_destroy_response(r);
            return ret;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (cs->body.len + *upload_size > MAX_BODY)
            cs->too_big = 1;
        else if (buf_append(&cs->body, upload_data, *upload_size))
            cs->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    char client[64] = "?";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, client,
                      sizeof client);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, client,
                      sizeof client);
    }
    QueryBuild q = {{0}};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, &q);
    HttpReq rq = {
        .method = method,
        .path = url,
        .query = q.b.data,
        .session = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "fvlm_session"),
        .csrf = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token"),
        .body = cs->body.data,
        .body_len = cs->body.len,
        .body_too_big = cs->too_big || q.b.failed || q.b.len > 8192,
        .client = client,
    };
    HttpResp rs;
    server_handle(s, &rq, &rs);
    buf_free(&q.b);
    if (rs.body.failed) {
        buf_free(&rs.body);
        rs.status = 500;
        rs.type = "text/plain";
    }
    size_t len = rs.body.len;
    char *data = buf_steal(&rs.body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data ? data : (char *)"",
                                                             data ? MHD_RESPMEM_MUST_FREE
                                                                  : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", rs.type ? rs.type : "application/octet-stream");
    MHD_add_response_header(r, "Cache-Control", rs.cacheable ? "no-cache" : "no-store");
    for (size_t i = 0; i < sizeof security_headers / sizeof security_headers[0]; i++)
        MHD_add_response_header(r, security_headers[i][0], security_headers[i][1]);
    if (rs.set_cookie[0])
        MHD_add_response_header(r, "Set-Cookie", rs.set_cookie);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs.status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    ConnState *cs = *con_cls;
    if (cs) {
        buf_free(&cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

/* Quiet: a malformed request is the client's problem, not a log line. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (log_get_level() >= LOG_DEBUG) {
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        log_debug("http: %s", msg);
    }
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

/* The align settings of the corpus's last align run, so a decision changes
 * texts exactly as `fvlm align` would. */
static int align_config_load(AuditServer *s, FvErr *e)
{
    config_init(&s->cfg);
    sqlite3_stmt *st;
    if (db_prepare(s->wdb, &st,
                   "SELECT config FROM runs WHERE stage = 'align' AND status = 'ok'"
                   " AND json_valid(config) ORDER BY id DESC LIMIT 1",
                   e))
        return -1;
    int rc = db_step(s->wdb, st, e);
    if (rc == 1) {
        const char *cfg = (const char *)sqlite3_column_text(st, 0);
        JsonValue *v = NULL;
        FvErr je = {0};
        if (cfg && json_parse(cfg, strlen(cfg), &v, &je) == 0 && v->type == JSON_OBJ) {
            for (size_t i = 0; i < v->len && rc >= 0; i++)
                if (!strncmp(v->keys[i], "align.", 6) && v->items[i].type == JSON_STR &&
                    config_set(&s->cfg, v->keys[i], v->items[i].str, e))
                    rc = -1;
        }
        json_free(&v);
    }
    sqlite3_finalize(st);
    if (rc < 0)
        return -1;
    return align_options_from_config(s->o, &s->cfg, &s->ao, e);
}

/* Decisions recorded after the last one applied (the server stopped
 * between recording and re-aligning): their studies are aligned again. */
static int catch_up(AuditServer *s, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(s->wdb, &st,
                   "SELECT DISTINCT study_id FROM audits WHERE study_id IS NOT NULL AND id >"
                   " coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'audit.applied_id'), 0)",
                   e))
        return -1;
    int64_t *ids = NULL;
    int n = 0, cap = 0, r, rc = 0;
    while ((r = db_step(s->wdb, st, e)) == 1) {
        if (arr_reserve(&ids, &cap, n, sizeof *ids, 16)) {
            rc = err_set(e, FV_ENOMEM, "audit server: out of memory");
            break;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (r < 0)
        rc = -1;
    if (n)
        log_info("audit: applying the decisions on %d studies recorded since the last start", n);
    for (int i = 0; i < n && rc == 0; i++)
        rc = realign_locked(s, ids[i], e);
    free(ids);
    return rc;
}

static char *read_pem(const char *path, FvErr *e)
{
    char *data = NULL, *text;
    size_t len = 0;
    if (fs_read_file(path, 1 << 20, &data, &len, e))
        return NULL;
    /* A PEM is text: a NUL-terminated copy for libmicrohttpd. */
    if ((text = malloc(len + 1))) {
        memcpy(text, data, len);
        text[len] = '\0';
    } else {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
    }
    free(data);
    return text;
}

int server_open(AuditServer **out, const ServerOptions *opt, int listen, FvErr *e)
{
    *out = NULL;
    const char *bind = opt->bind ? opt->bind : "127.0.0.1";
    if (!strcmp(bind, "localhost"))
        bind = "127.0.0.1";
    if (!server_addr_is_loopback(bind) && !opt->public_ok)
        return err_set(e, FV_EUSAGE,
                       "--bind %s is not a loopback address: annotators' data would be reachable"
                       " from the network; add --public (with --cert and --key for TLS)", bind);
    if (!opt->cert != !opt->key)
        return err_set(e, FV_EUSAGE, "--cert and --key go together");
    AuditServer *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(e, FV_ENOMEM, "audit server: out of memory");
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->slock, NULL);
    pthread_mutex_init(&s->dlock, NULL);
    config_init(&s->cfg);
    s->gen = __atomic_add_fetch(&g_gen, 1, __ATOMIC_SEQ_CST);
    *out = s;
    if (!(s->db_path = strdup(opt->db_path)) ||
        (opt->deid_key && !(s->deid_key = strdup(opt->deid_key))))
        return err_set(e, FV_ENOMEM, "audit server: out of memory");
    if (onto_load(&s->o, e) || anatomy_meta_load(s->o, &s->meta, e) ||
        db_open(&s->wdb, opt->db_path, DB_MUST_EXIST, e) ||
        /* Accession search hashes what is typed: another key's hashes would
         * match nothing, which must not read as "no such study". */
        (s->deid_key && deid_check_corpus(s->wdb, s->deid_key, e)) || align_config_load(s, e) ||
        render_cache_new(&s->cache, 8, e))
        return -1;
    Buf cfg = {0};
    config_to_json(&s->cfg, &cfg);
    static char *const no_argv[] = {(char *)"audit", NULL};
    int rc = run_begin(&s->run, s->wdb, "audit", opt->argv ? opt->argc : 1,
                       opt->argv ? (char **)opt->argv : (char **)no_argv, cfg.data, -1, e);
    buf_free(&cfg);
    if (rc)
        return -1;
    pthread_mutex_lock(&s->wlock);
    rc = catch_up(s, e);
    pthread_mutex_unlock(&s->wlock);
    if (rc || !listen)
        return rc;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (opt->cert) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
            return err_set(e, FV_EUNSUPPORTED, "this libmicrohttpd has no TLS (GnuTLS)");
        if (!(s->cert_pem = read_pem(opt->cert, e)) || !(s->key_pem = read_pem(opt->key, e)))
            return -1;
        flags |= MHD_USE_TLS;
        s->tls = 1;
    }
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)opt->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, bind, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)opt->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return err_set(e, FV_EUSAGE, "--bind '%.100s': expected an IPv4 or IPv6 address", bind);
    }
    unsigned threads = opt->threads > 0 ? (unsigned)opt->threads : 4;
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)opt->port, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)128,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_ARRAY, s->tls ? tls_opts : &tls_opts[2],
        MHD_OPTION_END);
    if (!s->mhd)
        return err_set(e, FV_EIO, "cannot listen on %s port %d (in use? not this machine's address?)",
                       bind, opt->port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : opt->port;
    return 0;
}

int server_port(const AuditServer *s)
{
    return s->port;
}

int server_tls(const AuditServer *s)
{
    return s->tls;
}

void server_close(AuditServer **sp)
{
    AuditServer *s = *sp;
    if (!s)
        return;
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    if (s->run.id) {
        FvErr e = {0};
        char counts[96];
        snprintf(counts, sizeof counts, "{\"decisions\": %lld}", (long long)s->n_decisions);
        if (run_finish(&s->run, "ok", counts, &e))
            log_error("%s", e.msg);
    }
    for (int i = 0; i < s->n_dbs; i++)
        db_close(&s->dbs[i]);
    db_close(&s->wdb);
    render_cache_free(&s->cache);
    align_options_free(&s->ao);
    config_free(&s->cfg);
    anatomy_meta_free(&s->meta);
    onto_free(&s->o);
    free(s->db_path);
    if (s->deid_key) {
        explicit_bzero(s->deid_key, strlen(s->deid_key));
        free(s->deid_key);
    }
    free(s->cert_pem);
    if (s->key_pem) {
        explicit_bzero(s->key_pem, strlen(s->key_pem));
        free(s->key_pem);
    }
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->slock);
    pthread_mutex_destroy(&s->dlock);
    free(s);
    *sp = NULL;
}
