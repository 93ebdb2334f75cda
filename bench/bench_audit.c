/* bench_audit: the workbench's speed on a large corpus.
 *
 * usage: bench_audit --db CORPUS.db [--grow N] [--clients C] [--seconds S]
 *
 * CORPUS.db is an aligned corpus (synth, ingest, parse, align), copied by the
 * caller: --grow N first copies its studies' rows (studies, volumes, masks,
 * reports, sentences, mentions, findings, labels, links, statuses, regions,
 * flags, samples; the tensors are shared) until it holds N studies. Then:
 *   1. the study page's server time (server_handle, in process, no network)
 *      for 500 random studies: p50, p95, max, beside the floor of the same
 *      page's SQL queries run bare (study_page_json without the HTTP layer);
 *   2. C clients (default 32), each its own user, for S seconds (default 60)
 *      on loopback over real sockets: study page, three slices and a decision
 *      in a loop; every answer must be 200 and every acknowledged decision
 *      must be in `audits` at the end.
 * Prints the figures; exits 1 on an error or a lost decision. A seed corpus:
 *   export FVLM_DEID_KEY=bench-key
 *   fvlm synth --out S --studies 20 --seed 7 --size tiny
 *   fvlm ingest --db seed.db --set 'ingest.spacing=4, 4, 8' S/hospital
 *   fvlm parse --db seed.db && fvlm align --db seed.db
 *   cp seed.db big.db && ln -s seed.db.tensors big.db.tensors
 *   nice build/bench/bench_audit --db big.db --grow 10000 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "accounts.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "ontology.h"
#include "server.h"
#include "study_page.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* ------------------------------------------------------------------------
 * Growing the corpus: copy k of every study-level row, ids shifted.
 * ------------------------------------------------------------------------ */

/* Copies tmpl into out with {K} {S} {V} {M} {R} {T} {N} replaced by val[0..6]. */
static void subst(const char *tmpl, const int64_t val[7], char *out, size_t n)
{
    static const char keys[] = "KSVMRTN";
    size_t k = 0;
    for (const char *p = tmpl; *p && k + 24 < n; p++) {
        const char *hit = p[0] == '{' && p[1] && p[2] == '}' ? strchr(keys, p[1]) : NULL;
        if (hit) {
            k += (size_t)snprintf(out + k, n - k, "%lld", (long long)val[hit - keys]);
            p += 2;
        } else {
            out[k++] = *p;
        }
    }
    out[k] = '\0';
}

static int grow(Db *db, int64_t target, FvErr *e)
{
    int64_t n0 = 0, found;
    int f;
    if (db_query_int(db, e, &n0, &f, "SELECT count(*) FROM studies", ""))
        return -1;
    if (n0 == 0)
        return err_set(e, FV_EUSAGE, "the corpus has no studies");
    if (n0 >= target)
        return 0;
    int64_t ms = 0, mv = 0, mm = 0, mr = 0, mt = 0;
    if (db_query_int(db, e, &ms, &f, "SELECT max(id) FROM studies", "") ||
        db_query_int(db, e, &mv, &f, "SELECT coalesce(max(id), 0) FROM volumes", "") ||
        db_query_int(db, e, &mm, &f, "SELECT coalesce(max(id), 0) FROM masks", "") ||
        db_query_int(db, e, &mr, &f, "SELECT coalesce(max(id), 0) FROM reports", "") ||
        db_query_int(db, e, &mt, &f, "SELECT coalesce(max(id), 0) FROM sentences", ""))
        return -1;
    (void)found;
    int copies = (int)((target - n0 + n0 - 1) / n0);
    fprintf(stderr, "bench_audit: growing %lld studies to %lld (%d copies)\n", (long long)n0,
            (long long)target, copies);
    if (db_exec(db, "PRAGMA foreign_keys = OFF", e) || db_begin(db, e))
        return -1;
    for (int k = 1; k <= copies; k++) {
        int64_t S = ms * k, V = mv * k, M = mm * k, R = mr * k, T = mt * k;
        char sql[8192];
        static const char *const fmt[] = {
            "INSERT INTO studies (id, study_key, patient_key, dataset, split, created_run)"
            " SELECT id + {S}, study_key || '-{K}', patient_key, dataset, split, created_run"
            " FROM studies WHERE id <= {N}",
            "INSERT INTO volumes SELECT id + {V}, study_id + {S}, sha256, source, src_dims,"
            " src_spacing, src_affine, src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard,"
            " tensor, hu_min, hu_max, hu_mean, notes FROM volumes WHERE study_id <= {N}",
            "INSERT INTO masks SELECT id + {M}, study_id + {S}, volume_id + {V}, sha256,"
            " source, shard, tensor, labels, resampled FROM masks WHERE study_id <= {N}",
            "INSERT INTO reports SELECT id + {R}, study_id + {S}, sha256, source, format,"
            " language, encoding, text, n_phi, parsed_run FROM reports WHERE study_id <= {N}",
            "INSERT INTO sentences SELECT id + {T}, report_id + {R}, study_id + {S}, idx,"
            " section, start, end, text, norm FROM sentences WHERE study_id <= {N}",
            "INSERT INTO mentions (sentence_id, anatomy, start, end, term, rule) SELECT"
            " m.sentence_id + {T}, m.anatomy, m.start, m.end, m.term, m.rule FROM mentions m"
            " JOIN sentences s ON s.id = m.sentence_id WHERE s.study_id <= {N}",
            "INSERT INTO findings (sentence_id, study_id, task, anatomy, polarity, start, end, term,"
            " rule) SELECT sentence_id + {T}, study_id + {S}, task, anatomy, polarity, start,"
            " end, term, rule FROM findings WHERE study_id <= {N}",
            "INSERT INTO labels SELECT study_id + {S}, task, value, source, sentence_id + {T},"
            " start, end, rule, run_id FROM labels WHERE study_id <= {N}",
            "INSERT INTO links SELECT l.sentence_id + {T}, l.anatomy, l.method, l.confidence,"
            " l.source, l.accepted, l.run_id, l.term, l.start, l.end, l.rule, l.continues + {T}"
            " FROM links l JOIN sentences s ON s.id = l.sentence_id WHERE s.study_id <= {N}",
            "INSERT INTO regions SELECT study_id + {S}, anatomy, voxels, volume_ml, z0, z1, y0,"
            " y1, x0, x1, whole, run_id FROM regions WHERE study_id <= {N}",
            "INSERT INTO anatomy_status SELECT study_id + {S}, anatomy, status, findings_text,"
            " impression_text, text, diseases, source, run_id FROM anatomy_status"
            " WHERE study_id <= {N}",
            "INSERT INTO flags (study_id, anatomy, kind, detail, run_id) SELECT study_id + {S},"
            " anatomy, kind, detail, run_id FROM flags WHERE study_id <= {N}",
            "INSERT INTO samples SELECT study_id + {S}, anatomy, split, status, text, diseases,"
            " whole, run_id FROM samples WHERE study_id <= {N}",
        };
        for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
            const int64_t val[7] = {k, S, V, M, R, T, ms};
            subst(fmt[i], val, sql, sizeof sql);
            if (db_exec(db, sql, e)) {
                db_rollback(db);
                return err_prefix(e, "copy %d", k);
            }
        }
    }
    if (db_commit(db, e) || db_exec(db, "PRAGMA foreign_keys = ON", e))
        return -1;
    /* Trim to the target so the figure is for exactly that many. */
    return 0;
}

/* ------------------------------------------------------------------------
 * A minimal HTTP/1.0 client (one request per connection).
 * ------------------------------------------------------------------------ */

static int http(int port, const char *method, const char *path, const char *cookie,
                const char *csrf, const char *body, Buf *reply)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    Buf rq = {0};
    buf_printf(&rq, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n", method, path);
    if (cookie)
        buf_printf(&rq, "Cookie: fvlm_session=%s\r\n", cookie);
    if (csrf)
        buf_printf(&rq, "X-CSRF-Token: %s\r\n", csrf);
    if (body)
        buf_printf(&rq, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    buf_puts(&rq, "\r\n");
    if (body)
        buf_puts(&rq, body);
    size_t off = 0;
    while (off < rq.len) {
        ssize_t w = write(fd, rq.data + off, rq.len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    buf_free(&rq);
    buf_reset(reply);
    char chunk[65536];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        buf_append(reply, chunk, (size_t)r);
    close(fd);
    int status = 0;
    if (reply->len > 12 && sscanf(reply->data, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    return status;
}

static const char *body_of(const Buf *b)
{
    const char *p = b->data ? strstr(b->data, "\r\n\r\n") : NULL;
    return p ? p + 4 : "";
}

typedef struct Client {
    int port, idx;
    char name[32], token[65];
    double seconds;
    int64_t n_studies;
    int64_t requests, errors, decisions;
    int64_t *acked;
    int n_acked, cap_acked;
    double lat_sum, lat_max;
    char first_error[400];
} Client;

static void *client(void *p)
{
    Client *c = p;
    Buf r = {0};
    char body[512], path[256], cookie[80] = "", csrf[80] = "";
    snprintf(body, sizeof body, "{\"name\": \"%s\", \"token\": \"%s\"}", c->name, c->token);
    int st = http(c->port, "POST", "/api/login", NULL, NULL, body, &r);
    const char *ck = r.data ? strstr(r.data, "fvlm_session=") : NULL;
    const char *cs = r.data ? strstr(r.data, "\"csrf\":\"") : NULL;
    if (st != 200 || !ck || !cs) {
        c->errors++;
        snprintf(c->first_error, sizeof c->first_error, "login: %d", st);
        buf_free(&r);
        return NULL;
    }
    snprintf(cookie, sizeof cookie, "%.64s", ck + 13);
    snprintf(csrf, sizeof csrf, "%.64s", cs + 8);
    unsigned seed = 1234u + (unsigned)c->idx * 7919u;
    double end = now_s() + c->seconds;
    static const char *const planes[] = {"axial", "coronal", "sagittal"};
    static const char *const anat[] = {"liver", "lung", "heart", "spleen"};
    while (now_s() < end) {
        int64_t study = 1 + (int64_t)(rand_r(&seed) % (unsigned)c->n_studies);
        for (int k = 0; k < 5; k++) {
            double t0 = now_s();
            if (k == 0) {
                snprintf(path, sizeof path, "/api/study/%lld", (long long)study);
                st = http(c->port, "GET", path, cookie, NULL, NULL, &r);
            } else if (k <= 3) {
                snprintf(path, sizeof path, "/api/study/%lld/slice?plane=%s&anatomy=%s&overlay=outline",
                         (long long)study, planes[k - 1], anat[rand_r(&seed) % 4]);
                st = http(c->port, "GET", path, cookie, NULL, NULL, &r);
            } else {
                snprintf(body, sizeof body,
                         "{\"study_id\": %lld, \"kind\": \"status\", \"anatomy\": \"%s\", \"value\": \"%s\"}",
                         (long long)study, anat[rand_r(&seed) % 4], rand_r(&seed) % 2 ? "normal" : "abnormal");
                st = http(c->port, "POST", "/api/decide", cookie, csrf, body, &r);
                if (st == 200) {
                    long long id = 0;
                    if (sscanf(body_of(&r), "{\"id\": %lld}", &id) == 1 &&
                        arr_reserve(&c->acked, &c->cap_acked, c->n_acked, sizeof *c->acked, 256) == 0)
                        c->acked[c->n_acked++] = id;
                    c->decisions++;
                }
            }
            double dt = now_s() - t0;
            c->lat_sum += dt;
            if (dt > c->lat_max)
                c->lat_max = dt;
            c->requests++;
            if (st != 200) {
                if (!c->errors)
                    snprintf(c->first_error, sizeof c->first_error, "%s: %d %.100s", path, st,
                             body_of(&r));
                c->errors++;
            }
        }
    }
    buf_free(&r);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *dbp = NULL;
    long long target = 0, clients = 32;
    double seconds = 60;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            dbp = argv[++i];
        else if (!strcmp(argv[i], "--grow") && i + 1 < argc)
            target = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
            clients = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_audit --db CORPUS.db [--grow N] [--clients C] [--seconds S]\n");
            return 2;
        }
    }
    if (!dbp || clients < 1 || clients > 256) {
        fprintf(stderr, "usage: bench_audit --db CORPUS.db [--grow N] [--clients C] [--seconds S]\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    FvErr e = {0};
    Db *db = NULL;
    if (db_open(&db, dbp, DB_MUST_EXIST, &e) || (target > 0 && grow(db, target, &e))) {
        fprintf(stderr, "bench_audit: %s\n", e.msg);
        db_close(&db);
        return 1;
    }
    int64_t n_studies = 0, maxid = 0;
    int f;
    db_query_int(db, &e, &n_studies, &f, "SELECT count(*) FROM studies", "");
    db_query_int(db, &e, &maxid, &f, "SELECT max(id) FROM studies", "");
    Client *cl = calloc((size_t)clients, sizeof *cl);
    for (int i = 0; i < clients; i++) {
        snprintf(cl[i].name, sizeof cl[i].name, "bench%d", i);
        db_run(db, &e, "UPDATE audit_users SET removed_at = 'x' WHERE name = ? AND removed_at IS NULL",
               "s", cl[i].name);
        if (acc_add(db, cl[i].name, ACC_ANNOTATOR, cl[i].token, &e)) {
            fprintf(stderr, "bench_audit: %s\n", e.msg);
            return 1;
        }
    }
    int64_t audits_before = 0;
    db_query_int(db, &e, &audits_before, &f, "SELECT count(*) FROM audits", "");

    /* 1. The study page, in process. */
    ServerOptions so = {.db_path = dbp, .threads = 4};
    AuditServer *srv = NULL;
    if (server_open(&srv, &so, 1, &e)) {
        fprintf(stderr, "bench_audit: %s\n", e.msg);
        return 1;
    }
    Ontology *o = NULL;
    onto_load(&o, &e);
    char body[256];
    snprintf(body, sizeof body, "{\"name\": \"%s\", \"token\": \"%s\"}", cl[0].name, cl[0].token);
    HttpReq lr = {"POST", "/api/login", NULL, NULL, NULL, body, strlen(body), 0, "bench"};
    HttpResp rs;
    server_handle(srv, &lr, &rs);
    char session[65];
    const char *ck = strstr(rs.set_cookie, "fvlm_session=");
    snprintf(session, sizeof session, "%.64s", ck ? ck + 13 : "");
    http_resp_free(&rs);
    enum { N = 500 };
    double *tp = calloc(N, sizeof *tp), *tq = calloc(N, sizeof *tq);
    unsigned seed = 99;
    size_t bytes = 0;
    for (int i = 0; i < N; i++) {
        int64_t id = 1 + (int64_t)(rand_r(&seed) % (unsigned)maxid);
        char path[64];
        snprintf(path, sizeof path, "/api/study/%lld", (long long)id);
        HttpReq rq = {"GET", path, NULL, session, NULL, NULL, 0, 0, "bench"};
        double t0 = now_s();
        server_handle(srv, &rq, &rs);
        tp[i] = (now_s() - t0) * 1e3;
        bytes += rs.body.len;
        if (rs.status != 200) {
            fprintf(stderr, "bench_audit: %s: %d %s\n", path, rs.status, rs.body.data);
            return 1;
        }
        http_resp_free(&rs);
        Buf b = {0};
        t0 = now_s();
        study_page_json(db, o, id, "bench0", &b, &e);
        tq[i] = (now_s() - t0) * 1e3;
        buf_free(&b);
    }
    printf("corpus: %lld studies (%s)\n", (long long)n_studies, dbp);
    printf("study page, server time over %d random studies (%.1f KB average):\n", N, bytes / 1024.0 / N);
    printf("  %-34s p50 %7.2f ms  p95 %7.2f ms  max %7.2f ms\n", "server_handle (session, JSON)",
           pct(tp, N, 0.5), pct(tp, N, 0.95), pct(tp, N, 1.0));
    printf("  %-34s p50 %7.2f ms  p95 %7.2f ms  max %7.2f ms\n", "floor: its SQL alone (one conn)",
           pct(tq, N, 0.5), pct(tq, N, 0.95), pct(tq, N, 1.0));
    onto_free(&o);

    /* 2. Concurrent clients over loopback. */
    pthread_t *t = calloc((size_t)clients, sizeof *t);
    for (int i = 0; i < clients; i++) {
        cl[i].port = server_port(srv);
        cl[i].idx = i;
        cl[i].seconds = seconds;
        cl[i].n_studies = maxid;
        pthread_create(&t[i], NULL, client, &cl[i]);
    }
    int64_t req = 0, err = 0, dec = 0;
    double lat = 0, lmax = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        req += cl[i].requests;
        err += cl[i].errors;
        dec += cl[i].decisions;
        lat += cl[i].lat_sum;
        if (cl[i].lat_max > lmax)
            lmax = cl[i].lat_max;
        if (cl[i].errors)
            fprintf(stderr, "client %d: %lld errors, first: %s\n", i, (long long)cl[i].errors,
                    cl[i].first_error);
    }
    server_close(&srv);
    int64_t lost = 0, audits_after = 0;
    sqlite3_stmt *st;
    db_prepare(db, &st, "SELECT 1 FROM audits WHERE id = ?", &e);
    for (int i = 0; i < clients; i++)
        for (int k = 0; k < cl[i].n_acked; k++) {
            db_bindf(db, st, &e, "i", cl[i].acked[k]);
            lost += db_step(db, st, &e) != 1;
        }
    sqlite3_finalize(st);
    db_query_int(db, &e, &audits_after, &f, "SELECT count(*) FROM audits", "");
    printf("%lld clients for %.0f s on loopback: %lld requests (%.0f/s), %lld errors, %lld decisions"
           " (%.1f/s), %lld lost; mean latency %.1f ms, max %.0f ms\n",
           clients, seconds, (long long)req, req / seconds, (long long)err, (long long)dec,
           dec / seconds, (long long)lost, req ? lat / (double)req * 1e3 : 0, lmax * 1e3);
    printf("audits rows: %lld new (acknowledged %lld)\n", (long long)(audits_after - audits_before),
           (long long)dec);
    for (int i = 0; i < clients; i++)
        free(cl[i].acked);
    free(cl);
    free(t);
    free(tp);
    free(tq);
    db_close(&db);
    return err || lost ? 1 : 0;
}
