/* accounts: the workbench's users and their login tokens.
 *
 * A token is 32 random bytes (getrandom) in hex, printed once by
 * `fvlm audit user add`; the corpus keeps only a random 16-byte salt and
 * HMAC-SHA256(salt, token), so a copied corpus gives nobody a login. Removing
 * a user keeps the row (decisions name it) and stops its logins. */
#ifndef FVLM_AUDIT_ACCOUNTS_H
#define FVLM_AUDIT_ACCOUNTS_H

#include <stddef.h>

#include "buf.h"
#include "db.h"
#include "error.h"

enum { ACC_ANNOTATOR = 0, ACC_LEAD = 1 };

/* Names: 1 to 64 characters of [A-Za-z0-9._-]. */
int acc_name_ok(const char *name);

/* Fills out with n random bytes from the kernel (getrandom). */
int acc_random(void *out, size_t n, FvErr *e);
/* n random bytes as 2n hex digits + NUL into hex. */
int acc_random_hex(char *hex, size_t n, FvErr *e);

/* Adds a user; token receives the new token (64 hex + NUL). FV_EUSAGE when
 * the name is taken by an active user (a removed one is given a new token). */
int acc_add(Db *db, const char *name, int role, char token[65], FvErr *e);
/* FV_ENOTFOUND when there is no active user of that name. */
int acc_remove(Db *db, const char *name, FvErr *e);
/* Appends one line per user (name, role, created, removed) or a JSON array. */
int acc_list(Db *db, int json, Buf *out, FvErr *e);
/* 1 when the name and token match an active user (role set), 0 when not,
 * -1 on a database error. Constant time in the token comparison. */
int acc_check(Db *db, const char *name, const char *token, int *role, FvErr *e);

const char *acc_role_name(int role);

#endif
