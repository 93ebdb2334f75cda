#include "accounts.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "json.h"
#include "sha256.h"

int acc_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

const char *acc_role_name(int role)
{
    return role == ACC_LEAD ? "lead" : "annotator";
}

int acc_random(void *out, size_t n, FvErr *e)
{
    unsigned char *p = out;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return err_set(e, FV_EIO, "getrandom: %s", strerror(errno));
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int acc_random_hex(char *hex, size_t n, FvErr *e)
{
    unsigned char raw[64];
    if (n > sizeof raw)
        return err_set(e, FV_EINTERNAL, "acc_random_hex: %zu bytes asked, at most %zu", n,
                       sizeof raw);
    if (acc_random(raw, n, e))
        return -1;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static void token_hash(const char *salt, const char *token, char hex[65])
{
    unsigned char mac[32];
    hmac_sha256(salt, strlen(salt), token, strlen(token), mac);
    sha256_to_hex(mac, hex);
}

int acc_add(Db *db, const char *name, int role, char token[65], FvErr *e)
{
    if (!acc_name_ok(name))
        return err_set(e, FV_EUSAGE, "user name '%.80s': use 1 to 64 of A-Z a-z 0-9 . _ -", name);
    int64_t active = 0;
    int found = 0;
    if (db_query_int(db, e, &active, &found,
                     "SELECT removed_at IS NULL FROM audit_users WHERE name = ?", "s", name))
        return -1;
    if (found && active)
        return err_set(e, FV_EUSAGE, "user '%s' exists (fvlm audit user remove %s first)", name,
                       name);
    char salt[33], hash[65], now[32];
    if (acc_random_hex(salt, 16, e) || acc_random_hex(token, 32, e))
        return -1;
    token_hash(salt, token, hash);
    db_now_iso(now, sizeof now);
    if (found)
        return db_run(db, e,
                      "UPDATE audit_users SET role = ?, salt = ?, token_hash = ?, created_at = ?,"
                      " removed_at = NULL WHERE name = ?",
                      "sssss", acc_role_name(role), salt, hash, now, name);
    return db_run(db, e,
                  "INSERT INTO audit_users (name, role, salt, token_hash, created_at)"
                  " VALUES (?, ?, ?, ?, ?)",
                  "sssss", name, acc_role_name(role), salt, hash, now);
}

int acc_remove(Db *db, const char *name, FvErr *e)
{
    char now[32];
    db_now_iso(now, sizeof now);
    if (db_run(db, e, "UPDATE audit_users SET removed_at = ? WHERE name = ? AND removed_at IS NULL",
               "ss", now, name))
        return -1;
    if (sqlite3_changes(db->h) == 0)
        return err_set(e, FV_ENOTFOUND, "no active user '%.80s' (fvlm audit user list)", name);
    return 0;
}

int acc_list(Db *db, int json, Buf *out, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT name, role, created_at, removed_at,"
                   " (SELECT count(*) FROM audits a WHERE a.who = u.name AND a.kind <> 'undo')"
                   " FROM audit_users u ORDER BY name",
                   e))
        return -1;
    JsonW w;
    jw_init(&w, out, 0);
    if (json)
        jw_arr(&w);
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *role = (const char *)sqlite3_column_text(st, 1);
        const char *created = (const char *)sqlite3_column_text(st, 2);
        const char *removed = (const char *)sqlite3_column_text(st, 3);
        int64_t n = sqlite3_column_int64(st, 4);
        if (json) {
            jw_obj(&w);
            jw_key(&w, "name"); jw_str(&w, name);
            jw_key(&w, "role"); jw_str(&w, role);
            jw_key(&w, "created_at"); jw_str(&w, created);
            jw_key(&w, "removed_at"); jw_str(&w, removed);
            jw_key(&w, "decisions"); jw_int(&w, n);
            jw_obj_end(&w);
        } else {
            buf_printf(out, "%-20s %-9s created %s%s%s  %lld decisions\n", name, role, created,
                       removed ? "  removed " : "", removed ? removed : "", (long long)n);
        }
    }
    sqlite3_finalize(st);
    if (json) {
        jw_arr_end(&w);
        buf_putc(out, '\n');
    }
    if (rc < 0)
        return -1;
    return out->failed ? err_set(e, FV_ENOMEM, "audit user list: out of memory") : 0;
}

int acc_check(Db *db, const char *name, const char *token, int *role, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT salt, token_hash, role FROM audit_users WHERE name = ?"
                   " AND removed_at IS NULL",
                   e))
        return -1;
    int rc = db_bindf(db, st, e, "s", name) ? -1 : db_step(db, st, e);
    int ok = 0;
    if (rc == 1) {
        const char *salt = (const char *)sqlite3_column_text(st, 0);
        const char *want = (const char *)sqlite3_column_text(st, 1);
        const char *r = (const char *)sqlite3_column_text(st, 2);
        char got[65];
        token_hash(salt ? salt : "", token, got);
        /* Compare every byte, so the time taken says nothing about where a
         * guess went wrong. */
        int whole = want && strlen(want) == 64;
        unsigned diff = whole ? 0 : 1;
        for (int i = 0; i < 64 && whole; i++)
            diff |= (unsigned)(got[i] ^ want[i]);
        ok = diff == 0;
        if (ok && role)
            *role = r && !strcmp(r, "lead") ? ACC_LEAD : ACC_ANNOTATOR;
    }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : ok;
}
