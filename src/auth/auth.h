/* auth.h - who is calling: API keys, JWTs and roles.
 *
 * API keys look like "mdk_<id>_<secret>": <id> (12 hex digits) is public and shown by
 * `modeld keys list`; the whole key is shown once at creation and only its hash is stored.
 * A JWT (HS256, claims sub = key id, role, iat, exp) is obtained with POST /api/auth/token and
 * is accepted wherever a key is; it dies with its key (revoking the key rejects its tokens).
 *
 * Roles are ordered: read < write < admin. A route declares the least role it needs and calls
 * auth_require() with the caller's principal.
 *
 * The auth handle keeps an in-memory cache of key rows so the request hot path does not touch
 * the database; the cache is dropped when a key is revoked through this handle, and when
 * another process (`modeld keys revoke`) changes the database, noticed within revalidate_ms.
 * All comparisons of secrets are constant-time. An auth handle is thread-safe.
 *
 * Errors: MD_E_UNAUTHORIZED (missing/invalid/expired/revoked credentials, 401),
 * MD_E_FORBIDDEN (role too low, 403), MD_E_IO (storage), MD_E_INVALID_PARAM (bad arguments).
 */
#ifndef MD_AUTH_AUTH_H
#define MD_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "base/err.h"
#include "store/store.h"

typedef enum auth_role {
    AUTH_ROLE_NONE = 0,   /* unauthenticated (only public routes) */
    AUTH_ROLE_READ = 1,
    AUTH_ROLE_WRITE = 2,
    AUTH_ROLE_ADMIN = 3,
} auth_role;

/* "read" | "write" | "admin" ("none" for AUTH_ROLE_NONE). Borrowed, static storage. */
const char *auth_role_name(auth_role r);
/* Parse a role name (case-sensitive); MD_E_INVALID_PARAM naming field "role" otherwise. */
int auth_role_parse(const char *s, auth_role *out, md_err *err);

/* ---- keys (keys.c) -------------------------------------------------------------------- */

#define AUTH_KEY_ID_LEN 12           /* hex digits of the public id */
#define AUTH_KEY_MAX 96              /* room for a whole key string + NUL */
#define AUTH_JWT_MAX 1024            /* longest token accepted or issued (jwt.c) */

typedef struct auth_new_key {
    char key[AUTH_KEY_MAX];          /* the secret key: show once, never log, then wipe */
    store_key row;                   /* what was stored (id, name, role, created) */
} auth_new_key;

/* Create a key with a random id and secret (libsodium) and store its hash. name: 1..127
 * printable characters (MD_E_INVALID_PARAM "name"); role must be read/write/admin ("role"). */
int auth_key_create(store *s, auth_role role, const char *name, auth_new_key *out, md_err *err);
/* MD_OK when name is acceptable for a key (1..127 bytes, no control characters), else
 * MD_E_INVALID_PARAM naming field "name". */
int auth_key_name_check(const char *name, md_err *err);
/* If the store has no active key, create an admin key named "bootstrap-admin" and set
 * *created = 1 (serve prints out->key once); else *created = 0 and out is untouched. */
int auth_key_bootstrap(store *s, auth_new_key *out, int *created, md_err *err);
/* Wipe a key string from memory (sodium_memzero). */
void auth_new_key_wipe(auth_new_key *k);

/* ---- the verifier (auth.c) ------------------------------------------------------------ */

typedef struct auth auth;

typedef struct auth_opts {
    store *store;               /* borrowed; auth takes its own reference */
    const md_clock *clock;      /* NULL = system clock; JWT times use wall_ms */
    const char *jwt_secret;     /* NULL = env MODELD_JWT_SECRET, else <data_dir>/jwt.secret
                                 * (created with 32 random bytes, mode 0600); >= 32 chars */
    int64_t jwt_ttl_s;          /* lifetime of issued tokens; 0 = 900 */
    int64_t refresh_ttl_s;      /* lifetime of each refresh token (sliding: every rotation
                                 * gets a full one); 0 = 30 days */
    int64_t revalidate_ms;      /* how often the cache checks for changes by other processes;
                                 * 0 = 100; negative = on every request (tests) */
    size_t cache_max;           /* cached key rows; 0 = 4096 */
} auth_opts;

/* *out is new; free with auth_close(). Fails with MD_E_INVALID_PARAM ("jwt_secret") when the
 * secret from env or options is shorter than 32 bytes, MD_E_IO when the file cannot be made. */
int auth_open(const auth_opts *o, auth **out, md_err *err);
void auth_close(auth *a);   /* NULL is a no-op */

typedef struct auth_principal {
    char key_id[STORE_KEY_ID_MAX];   /* the key, or the JWT's sub */
    auth_role role;
    int via_jwt;                     /* 1 when authenticated by a token */
    int64_t expires_ms;              /* JWT exp (ms), 0 for keys */
} auth_principal;

/* Authenticate a request from its headers (either may be NULL): "Authorization: Bearer <key or
 * JWT>" or "X-API-Key: <key>" (see auth_pick_credential). MD_E_UNAUTHORIZED when both are
 * absent or invalid, MD_E_BAD_REQUEST when they carry different credentials. */
int auth_check_headers(auth *a, const char *authorization, const char *x_api_key,
                       auth_principal *out, md_err *err);
/* Authenticate one credential: an API key ("mdk_...") or a JWT. */
int auth_check_credential(auth *a, const char *cred, size_t len, auth_principal *out,
                          md_err *err);
/* MD_OK when p's role >= need, else MD_E_FORBIDDEN (MD_E_UNAUTHORIZED when p is NULL or has no
 * role and need > NONE). */
int auth_require(const auth_principal *p, auth_role need, md_err *err);

/* Issue a JWT for an authenticated principal (a token cannot be exchanged for a longer one:
 * its exp is capped by the presenting token's). out gets the token, *expires_in_s its life. */
int auth_issue_token(auth *a, const auth_principal *p, char *out, size_t cap,
                     int64_t *expires_in_s, md_err *err);

/* Revoke a key in the store and drop it from the cache at once. */
int auth_revoke(auth *a, const char *key_id, md_err *err);

/* ---- refresh tokens (refresh.c) ------------------------------------------------------ */

/* A refresh token is "mdr_" + 43 base64url characters (32 random bytes); only its BLAKE2b-256
 * is stored (store_refresh), bound to its key and to a family: every token rotated from one
 * issue. Single use: POST /api/auth/refresh marks the presented token used and hands out its
 * successor; presenting a used token again means it was copied, so the whole family is revoked.
 * Revoking the key revokes its tokens (store_keys_revoke), and a refresh checks the key too. */
#define AUTH_REFRESH_PREFIX "mdr_"
#define AUTH_REFRESH_MAX 64

/* Start a new family for an API-key principal: out gets the token (show once), *expires_in_s
 * its life. MD_E_UNAUTHORIZED for a principal without a key; MD_E_FORBIDDEN when p came by a
 * JWT (a token must not outlive the credential that minted it, and a refresh token would).
 * family (may be NULL, >= STORE_FAMILY_MAX bytes) gets the new family id. */
int auth_refresh_issue(auth *a, const auth_principal *p, char *out, size_t cap,
                       int64_t *expires_in_s, char *family, md_err *err);

typedef struct auth_refresh_result {
    char access_token[AUTH_JWT_MAX];        /* a new JWT for the key, its current role */
    int64_t expires_in_s;
    char refresh_token[AUTH_REFRESH_MAX];   /* the successor: show once */
    int64_t refresh_expires_in_s;
    char key_id[STORE_KEY_ID_MAX];          /* the key the token acts for ("" when unknown) */
    char family[STORE_FAMILY_MAX];
    auth_role role;
    int reuse;                              /* 1: a used token came back, family revoked */
} auth_refresh_result;

/* Rotate: check tok (len bytes) and answer a new JWT and a new refresh token. Everything that
 * is not a live token of an active key is MD_E_UNAUTHORIZED with a message that says which
 * ("invalid refresh token", "refresh token expired", "refresh token revoked", "API key
 * revoked", "refresh token reuse detected; its family is revoked"); out->key_id / family /
 * reuse are filled as far as known, for the audit log. MD_E_IO for storage errors. */
int auth_refresh(auth *a, const char *tok, size_t len, auth_refresh_result *out, md_err *err);

/* ---- header parsing (header.c) -------------------------------------------------------- */

/* Extract the credential of an Authorization header value: scheme "Bearer" (any case), one or
 * more spaces, then a token of 1..4096 visible ASCII characters with surrounding spaces trimmed.
 * *tok points into hdr (borrowed). MD_E_UNAUTHORIZED for anything else. */
int auth_parse_authorization(const char *hdr, size_t len, const char **tok, size_t *tok_len);

/* The one credential of a request's Authorization / X-API-Key header values (either may be
 * NULL; X-API-Key is trimmed of spaces and tabs). Both present with the same credential is
 * fine; with different ones MD_E_BAD_REQUEST (field "Authorization", the message names both
 * headers); a malformed Authorization or no credential at all MD_E_UNAUTHORIZED. *cred points
 * into one of the header values (borrowed). */
int auth_pick_credential(const char *authorization, const char *x_api_key, const char **cred,
                         size_t *cred_len, md_err *err);

/* ---- JWT HS256 (jwt.c) ---------------------------------------------------------------- */


typedef struct auth_jwt_claims {
    char sub[STORE_KEY_ID_MAX];
    auth_role role;
    int64_t iat;   /* seconds since the epoch */
    int64_t exp;
} auth_jwt_claims;

/* Sign claims with HMAC-SHA256 over header.payload (base64url, no padding). */
int auth_jwt_sign(const auth_jwt_claims *c, const uint8_t *secret, size_t secret_len,
                  char *out, size_t cap, md_err *err);
/* Verify a token: header must be exactly alg HS256 (alg "none" and any other are refused),
 * signature checked in constant time before the payload is parsed, claims sub/role/iat/exp all
 * required, exp > now_s (and iat <= now_s + 60 s skew). MD_E_UNAUTHORIZED with a message saying
 * which check failed ("token expired", "bad signature", ...). */
int auth_jwt_verify(const char *tok, size_t len, const uint8_t *secret, size_t secret_len,
                    int64_t now_s, auth_jwt_claims *out, md_err *err);

#endif
