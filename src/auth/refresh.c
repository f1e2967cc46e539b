/* refresh.c - rotating, single-use refresh tokens with reuse detection (auth.h).
 *
 * A family starts at POST /api/auth/token (auth_refresh_issue) and grows by one token per
 * POST /api/auth/refresh (auth_refresh). What a presented token's row says decides:
 *
 *     unknown hash / wrong shape ......... 401 "invalid refresh token"
 *     revoked (family reuse, key revoked)  401 "refresh token revoked"
 *     used ............................... reuse: revoke the family, 401
 *     expired ............................ 401 "refresh token expired"
 *     key gone or revoked ................ 401 "API key revoked"
 *     live ............................... store_refresh_rotate (compare-and-set); losing the
 *                                          race to a concurrent use is reuse too
 *
 * Invariants:
 *   1. Tokens exist in memory only: the store has their BLAKE2b-256; buffers that held one are
 *      wiped (sodium_memzero) before they go out of scope.
 *   2. A token yields at most one successor (store_refresh_rotate's compare-and-set), so a
 *      stolen token and its rightful holder cannot both keep a family alive: the second one
 *      to present it revokes the family for both.
 *   3. The access token is minted from the key's current row (its role now), never from the
 *      role at issue time.
 */
#include "auth/auth_int.h"

#include "base/log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define PREFIX_LEN (sizeof AUTH_REFRESH_PREFIX - 1)
#define TOKEN_LEN (PREFIX_LEN + AUTH__SECRET_B64_LEN)

/* A new random token into out (cap >= TOKEN_LEN + 1) and its hash. */
static void make_token(char *out, uint8_t hash[STORE_HASH_LEN])
{
    uint8_t raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(out, AUTH_REFRESH_PREFIX, PREFIX_LEN);
    sodium_bin2base64(out + PREFIX_LEN, AUTH__SECRET_B64_LEN + 1, raw, sizeof raw, AUTH__B64);
    sodium_memzero(raw, sizeof raw);
    auth__key_hash(out, TOKEN_LEN, hash);
}

/* 0 when tok has the shape of a refresh token ("mdr_" + 43 base64url characters). */
static int check_shape(const char *tok, size_t len)
{
    if (!tok || len != TOKEN_LEN || memcmp(tok, AUTH_REFRESH_PREFIX, PREFIX_LEN) != 0)
        return -1;
    for (size_t i = PREFIX_LEN; i < len; i++) {
        char c = tok[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_';
        if (!ok)
            return -1;
    }
    return 0;
}

/* The row for a new token of family / key, expiring refresh_ttl from now. */
static void fill_row(auth *a, const char *family, const char *key_id, store_refresh *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->family, sizeof r->family, "%s", family);
    snprintf(r->key_id, sizeof r->key_id, "%s", key_id);
    r->created_ms = auth__now_ms(a);
    r->expires_ms = r->created_ms + auth__refresh_ttl_s(a) * 1000;
}

int auth_refresh_issue(auth *a, const auth_principal *p, char *out, size_t cap,
                       int64_t *expires_in_s, char *family, md_err *err)
{
    if (!p || p->role <= AUTH_ROLE_NONE || !p->key_id[0])
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "missing credentials");
    if (p->via_jwt)
        return md_fail(err, MD_E_FORBIDDEN, NULL, "refresh tokens are issued for API keys only");
    if (cap < TOKEN_LEN + 1)
        return md_fail(err, MD_E_TOO_LARGE, NULL, "refresh token buffer too small");
    uint8_t fam[16];
    char fam_hex[sizeof fam * 2 + 1];
    randombytes_buf(fam, sizeof fam);
    sodium_bin2hex(fam_hex, sizeof fam_hex, fam, sizeof fam);
    store_refresh row;
    fill_row(a, fam_hex, p->key_id, &row);
    make_token(out, row.hash);
    int rc = store_refresh_insert(auth__store(a), &row, err);
    if (rc != MD_OK) {
        sodium_memzero(out, cap);
        return rc;
    }
    if (expires_in_s)
        *expires_in_s = auth__refresh_ttl_s(a);
    if (family)
        memcpy(family, fam_hex, sizeof fam_hex);
    return MD_OK;
}

/* A used (or lost-the-race) token came back: revoke its family (invariant 2). */
static int reuse(auth *a, auth_refresh_result *out, md_err *err)
{
    size_t n = 0;
    md_err e;
    out->reuse = 1;
    if (store_refresh_revoke_family(auth__store(a), out->family, auth__now_ms(a), &n, &e) != MD_OK)
        md_log(MD_LOG_ERROR, "auth: cannot revoke refresh family %s: %s", out->family,
               md_err_message(&e));
    md_log(MD_LOG_WARN, "auth: refresh token reuse for key %s: family %s revoked (%zu tokens)",
           out->key_id, out->family, n);
    return md_fail(err, MD_E_UNAUTHORIZED, NULL,
                   "refresh token reuse detected; its family is revoked");
}

/* The state checks of the table at the top, on the stored row of the presented token. */
static int check_row(auth *a, const store_refresh *row, auth_refresh_result *out, store_key *key,
                     md_err *err)
{
    if (row->revoked_ms != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "refresh token revoked");
    if (row->used_ms != 0)
        return reuse(a, out, err);
    if (row->expires_ms <= auth__now_ms(a))
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "refresh token expired");
    int exists = 0;
    int rc = auth__lookup(a, row->key_id, &exists, key, err);
    if (rc != MD_OK)
        return rc;
    if (!exists || key->revoked_ms != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "API key revoked");
    return MD_OK;
}

/* Store the successor of hash and mint the access token for key (invariant 3). */
static int rotate(auth *a, const uint8_t hash[STORE_HASH_LEN], const store_key *key,
                  auth_refresh_result *out, md_err *err)
{
    store_refresh next;
    fill_row(a, out->family, key->id, &next);
    make_token(out->refresh_token, next.hash);
    int rc = store_refresh_rotate(auth__store(a), hash, next.created_ms, &next, err);
    if (rc == MD_E_CONFLICT)
        return reuse(a, out, err);
    if (rc != MD_OK)
        return rc;
    out->refresh_expires_in_s = auth__refresh_ttl_s(a);
    out->role = (auth_role)key->role;
    auth_principal p = {.role = out->role};
    snprintf(p.key_id, sizeof p.key_id, "%s", key->id);
    return auth_issue_token(a, &p, out->access_token, sizeof out->access_token, &out->expires_in_s,
                            err);
}

int auth_refresh(auth *a, const char *tok, size_t len, auth_refresh_result *out, md_err *err)
{
    memset(out, 0, sizeof *out);
    if (check_shape(tok, len) != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid refresh token");
    uint8_t hash[STORE_HASH_LEN];
    auth__key_hash(tok, len, hash);
    store_refresh row;
    int rc = store_refresh_get(auth__store(a), hash, &row, err);
    if (rc == MD_E_NOT_FOUND)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid refresh token");
    if (rc != MD_OK)
        return rc;
    /* The row was found by the hash of the whole token: its 256 random bits are the check. */
    snprintf(out->key_id, sizeof out->key_id, "%s", row.key_id);
    snprintf(out->family, sizeof out->family, "%s", row.family);
    store_key key;
    rc = check_row(a, &row, out, &key, err);
    if (rc == MD_OK)
        rc = rotate(a, hash, &key, out, err);
    if (rc != MD_OK)
        sodium_memzero(out->refresh_token, sizeof out->refresh_token);
    return rc;
}
