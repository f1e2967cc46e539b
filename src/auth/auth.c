/* auth.c - the request-time verifier: turns a credential into a principal (key id + role).
 *
 * Keys are checked against a cache of api_keys rows so the hot path never waits on SQLite.
 *
 * Invariants:
 *   1. The cache holds rows as they are in the store, including "no such key" and revoked
 *      rows (so a flood of unknown ids does not reach the database either).
 *   2. The cache is emptied when a key is revoked through this handle (auth_revoke) and, at
 *      most revalidate_ms later, when another process committed to the database (SQLite's
 *      data_version changes); so `modeld keys revoke` takes effect on a running server.
 *   3. The cache never holds more than cache_max entries: when full it is emptied (refilling
 *      costs one query per active key, and a full cache means many distinct ids are in use).
 *   4. Secrets are compared in constant time (sodium_memcmp on the hashes); the JWT secret
 *      lives in locked memory that is wiped on close.
 */
#include "auth/auth_int.h"

#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MIN 32
#define SECRET_FILE_MAX 1024

typedef struct cache_entry {
    char id[STORE_KEY_ID_MAX];
    int exists;
    store_key row;
    struct cache_entry *next;
} cache_entry;

struct auth {
    store *st;                    /* one reference, owned */
    const md_clock *clock;
    uint8_t *secret;              /* sodium_malloc'd */
    size_t secret_len;
    int64_t jwt_ttl_s;
    int64_t refresh_ttl_s;
    int64_t revalidate_ns;        /* < 0: every request */
    size_t cache_max;
    pthread_rwlock_t lock;        /* guards the cache */
    cache_entry **buckets;
    size_t nbuckets;              /* power of two */
    size_t count;
    uint64_t gen;                 /* under lock: bumped by every clear (see lookup) */
    uint8_t hkey[crypto_shorthash_KEYBYTES];   /* random: ids are attacker-chosen */
    atomic_uint_fast64_t last_check_ns;
    uint64_t data_version;        /* under lock */
};

/* ---- the JWT secret ------------------------------------------------------------------ */

static int set_secret(auth *a, const void *p, size_t n, md_err *err)
{
    if (n < SECRET_MIN)
        return md_fail(err, MD_E_INVALID_PARAM, "jwt_secret", "must be at least %d bytes",
                       SECRET_MIN);
    a->secret = sodium_malloc(n);
    if (!a->secret)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    memcpy(a->secret, p, n);
    a->secret_len = n;
    return MD_OK;
}

/* Create <dir>/jwt.secret with 32 random bytes as hex, mode 0600. The file is written under a
 * temporary name and link()ed into place, so another process starting at the same moment
 * sees either no file or a complete one; if it won the race (EEXIST), we read theirs. */
static int create_secret_file(const char *path, md_err *err)
{
    if (access(path, F_OK) == 0)
        return MD_OK;
    char tmp[4096 + 64];
    unsigned char raw[32];
    char hex[65];
    randombytes_buf(raw, 8);
    sodium_bin2hex(hex, sizeof hex, raw, 8);
    snprintf(tmp, sizeof tmp, "%s.%s.tmp", path, hex);
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    hex[64] = '\n';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, hex, sizeof hex) == (ssize_t)sizeof hex && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    ok = ok && (link(tmp, path) == 0 || errno == EEXIST);
    int saved = errno;
    unlink(tmp);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(hex, sizeof hex);
    if (ok)
        return MD_OK;
    md_log(MD_LOG_ERROR, "auth: cannot create %s: %s", path, strerror(saved));
    return md_fail(err, MD_E_IO, "jwt_secret", "cannot create the JWT secret file");
}

static int load_secret_file(auth *a, const char *path, md_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[SECRET_FILE_MAX + 1];
    struct stat sb;
    ssize_t n = -1;
    if (fd >= 0 && fstat(fd, &sb) == 0) {
        if (sb.st_mode & 077)
            md_log(MD_LOG_WARN, "auth: %s is readable by others; chmod 600 it", path);
        n = read(fd, buf, SECRET_FILE_MAX);
    }
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        md_log(MD_LOG_ERROR, "auth: cannot read %s: %s", path, strerror(errno));
        return md_fail(err, MD_E_IO, "jwt_secret", "cannot read the JWT secret file");
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    int rc = set_secret(a, buf, (size_t)n, err);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

static int init_secret(auth *a, const auth_opts *o, md_err *err)
{
    const char *s = o->jwt_secret ? o->jwt_secret : getenv("MODELD_JWT_SECRET");
    if (s && s[0])
        return set_secret(a, s, strlen(s), err);
    const char *dir = store_data_dir(a->st);
    size_t cap = strlen(dir) + sizeof "/jwt.secret";
    char *path = malloc(cap);
    if (!path)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    snprintf(path, cap, "%s/jwt.secret", dir);
    int rc = create_secret_file(path, err);
    if (rc == MD_OK)
        rc = load_secret_file(a, path, err);
    free(path);
    return rc;
}

/* ---- open / close -------------------------------------------------------------------- */

int auth_open(const auth_opts *o, auth **out, md_err *err)
{
    *out = NULL;
    if (!o || !o->store)
        return md_fail(err, MD_E_INVALID_PARAM, "store", "a store is required");
    if (sodium_init() < 0)
        return md_fail(err, MD_E_INTERNAL, NULL, "crypto library failed to start");
    auth *a = calloc(1, sizeof *a);
    if (!a)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    a->st = store_ref(o->store);
    a->clock = o->clock ? o->clock : md_clock_system();
    a->jwt_ttl_s = o->jwt_ttl_s > 0 ? o->jwt_ttl_s : 900;
    a->refresh_ttl_s = o->refresh_ttl_s > 0 ? o->refresh_ttl_s : 30 * 24 * 3600;
    a->revalidate_ns = o->revalidate_ms < 0 ? -1 : (o->revalidate_ms ? o->revalidate_ms : 100) * 1000000;
    a->cache_max = o->cache_max ? o->cache_max : 4096;
    a->nbuckets = 64;
    while (a->nbuckets < a->cache_max && a->nbuckets < (1u << 20))
        a->nbuckets <<= 1;
    a->buckets = calloc(a->nbuckets, sizeof *a->buckets);
    randombytes_buf(a->hkey, sizeof a->hkey);
    pthread_rwlock_init(&a->lock, NULL);
    int rc = a->buckets ? init_secret(a, o, err) : md_fail(err, MD_E_NOMEM, NULL, NULL);
    if (rc == MD_OK)
        rc = store_data_version(a->st, &a->data_version, err);
    if (rc != MD_OK) {
        auth_close(a);
        return rc;
    }
    atomic_init(&a->last_check_ns, md_clock_now_ns(a->clock));
    *out = a;
    return MD_OK;
}

/* Drop every cached entry. Write lock held. */
static void cache_clear(auth *a)
{
    for (size_t i = 0; i < a->nbuckets; i++) {
        cache_entry *e = a->buckets[i];
        while (e) {
            cache_entry *next = e->next;
            free(e);
            e = next;
        }
        a->buckets[i] = NULL;
    }
    a->count = 0;
    a->gen++;
}

void auth_close(auth *a)
{
    if (!a)
        return;
    if (a->buckets)
        cache_clear(a);
    free(a->buckets);
    sodium_free(a->secret);
    pthread_rwlock_destroy(&a->lock);
    store_unref(a->st);
    free(a);
}

/* ---- the key cache ------------------------------------------------------------------- */

static size_t bucket_of(const auth *a, const char *id)
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t v;
    crypto_shorthash(h, (const unsigned char *)id, strlen(id), a->hkey);
    memcpy(&v, h, sizeof v);
    return (size_t)(v & (a->nbuckets - 1));
}

/* Invariant 2: notice commits by other processes, at most every revalidate_ns. */
static void revalidate(auth *a)
{
    uint64_t now = md_clock_now_ns(a->clock);
    if (a->revalidate_ns >= 0) {
        uint_fast64_t last = atomic_load(&a->last_check_ns);
        if (now >= last && now - last < (uint64_t)a->revalidate_ns)
            return;
        /* One thread checks; the others go on with the cache as it is. */
        if (!atomic_compare_exchange_strong(&a->last_check_ns, &last, now))
            return;
    }
    uint64_t v = 0;
    if (store_data_version(a->st, &v, NULL) != MD_OK)
        return;
    pthread_rwlock_wrlock(&a->lock);
    if (v != a->data_version) {
        cache_clear(a);
        a->data_version = v;
    }
    pthread_rwlock_unlock(&a->lock);
}

static int cache_find(auth *a, const char *id, size_t b, int *exists, store_key *row)
{
    for (cache_entry *e = a->buckets[b]; e; e = e->next) {
        if (strcmp(e->id, id) == 0) {
            *exists = e->exists;
            *row = e->row;
            return 1;
        }
    }
    return 0;
}

static void cache_insert(auth *a, const char *id, size_t b, int exists, const store_key *row,
                         uint64_t gen)
{
    int dummy;
    store_key tmp;
    pthread_rwlock_wrlock(&a->lock);
    /* A clear since we read the store means our row may predate a revocation: drop it. */
    if (gen == a->gen && !cache_find(a, id, b, &dummy, &tmp)) {
        if (a->count >= a->cache_max)
            cache_clear(a);   /* invariant 3 */
        cache_entry *e = calloc(1, sizeof *e);
        if (e) {
            snprintf(e->id, sizeof e->id, "%s", id);
            e->exists = exists;
            if (exists)
                e->row = *row;
            e->next = a->buckets[b];
            a->buckets[b] = e;
            a->count++;
        }
    }
    pthread_rwlock_unlock(&a->lock);
}

/* The row of key id: MD_OK (*exists says whether there is one) or MD_E_IO. */
static int lookup(auth *a, const char *id, int *exists, store_key *row, md_err *err)
{
    revalidate(a);
    size_t b = bucket_of(a, id);
    pthread_rwlock_rdlock(&a->lock);
    int hit = cache_find(a, id, b, exists, row);
    uint64_t gen = a->gen;
    pthread_rwlock_unlock(&a->lock);
    if (hit)
        return MD_OK;
    md_err e;
    int rc = store_keys_get(a->st, id, row, &e);
    if (rc != MD_OK && rc != MD_E_NOT_FOUND)
        return md_fail(err, MD_E_IO, NULL, "storage error");
    *exists = rc == MD_OK;
    cache_insert(a, id, b, *exists, row, gen);
    return MD_OK;
}

int auth__lookup(auth *a, const char *id, int *exists, store_key *row, md_err *err)
{
    return lookup(a, id, exists, row, err);
}

store *auth__store(const auth *a) { return a->st; }
int64_t auth__now_ms(const auth *a) { return md_clock_wall_ms(a->clock); }
int64_t auth__refresh_ttl_s(const auth *a) { return a->refresh_ttl_s; }

/* ---- checking credentials ------------------------------------------------------------ */

static int check_key(auth *a, const char *cred, size_t len, auth_principal *out, md_err *err)
{
    char id[AUTH_KEY_ID_LEN + 1];
    if (auth__parse_key(cred, len, id) != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid API key");
    int exists = 0;
    store_key row;
    int rc = lookup(a, id, &exists, &row, err);
    if (rc != MD_OK)
        return rc;
    uint8_t h[STORE_HASH_LEN];
    auth__key_hash(cred, len, h);
    if (!exists || sodium_memcmp(h, row.hash, STORE_HASH_LEN) != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid API key");
    if (row.revoked_ms != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "API key revoked");
    memset(out, 0, sizeof *out);
    memcpy(out->key_id, id, sizeof id);
    out->role = (auth_role)row.role;
    return MD_OK;
}

static int check_jwt(auth *a, const char *cred, size_t len, auth_principal *out, md_err *err)
{
    auth_jwt_claims c;
    int64_t now_s = md_clock_wall_ms(a->clock) / 1000;
    int rc = auth_jwt_verify(cred, len, a->secret, a->secret_len, now_s, &c, err);
    if (rc != MD_OK)
        return rc;
    /* Only our ids can name a key; anything else is refused before the cache or store. */
    char id[AUTH_KEY_ID_LEN + 1];
    if (strlen(c.sub) != AUTH_KEY_ID_LEN || strspn(c.sub, "0123456789abcdef") != AUTH_KEY_ID_LEN)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "the token's API key is unknown or revoked");
    memcpy(id, c.sub, sizeof id);
    int exists = 0;
    store_key row;
    rc = lookup(a, id, &exists, &row, err);
    if (rc != MD_OK)
        return rc;
    if (!exists || row.revoked_ms != 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "the token's API key is unknown or revoked");
    memset(out, 0, sizeof *out);
    snprintf(out->key_id, sizeof out->key_id, "%s", c.sub);
    /* A key whose role was lowered since the token was issued gets its new role. */
    out->role = c.role < (auth_role)row.role ? c.role : (auth_role)row.role;
    out->via_jwt = 1;
    out->expires_ms = c.exp * 1000;
    return MD_OK;
}

int auth_check_credential(auth *a, const char *cred, size_t len, auth_principal *out,
                          md_err *err)
{
    size_t plen = sizeof AUTH__KEY_PREFIX - 1;
    if (!cred || len == 0)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "missing credentials");
    if (len >= plen && memcmp(cred, AUTH__KEY_PREFIX, plen) == 0)
        return check_key(a, cred, len, out, err);
    if (memchr(cred, '.', len))
        return check_jwt(a, cred, len, out, err);
    return md_fail(err, MD_E_UNAUTHORIZED, NULL, "invalid credentials");
}

int auth_check_headers(auth *a, const char *authorization, const char *x_api_key,
                       auth_principal *out, md_err *err)
{
    const char *cred;
    size_t n;
    int rc = auth_pick_credential(authorization, x_api_key, &cred, &n, err);
    return rc ? rc : auth_check_credential(a, cred, n, out, err);
}

int auth_require(const auth_principal *p, auth_role need, md_err *err)
{
    if (need <= AUTH_ROLE_NONE)
        return MD_OK;
    if (!p || p->role <= AUTH_ROLE_NONE)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "missing credentials");
    if (p->role < need)
        return md_fail(err, MD_E_FORBIDDEN, NULL, "this needs the %s role", auth_role_name(need));
    return MD_OK;
}

int auth_issue_token(auth *a, const auth_principal *p, char *out, size_t cap,
                     int64_t *expires_in_s, md_err *err)
{
    if (!p || p->role <= AUTH_ROLE_NONE || !p->key_id[0])
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "missing credentials");
    auth_jwt_claims c = {.role = p->role};
    snprintf(c.sub, sizeof c.sub, "%s", p->key_id);
    c.iat = md_clock_wall_ms(a->clock) / 1000;
    c.exp = c.iat + a->jwt_ttl_s;
    if (p->via_jwt && p->expires_ms / 1000 < c.exp)
        c.exp = p->expires_ms / 1000;   /* a token cannot mint a longer-lived one */
    if (c.exp <= c.iat)
        return md_fail(err, MD_E_UNAUTHORIZED, NULL, "token expired");
    int rc = auth_jwt_sign(&c, a->secret, a->secret_len, out, cap, err);
    if (rc == MD_OK && expires_in_s)
        *expires_in_s = c.exp - c.iat;
    return rc;
}

int auth_revoke(auth *a, const char *key_id, md_err *err)
{
    int rc = store_keys_revoke(a->st, key_id, err);
    if (rc != MD_OK)
        return rc;
    pthread_rwlock_wrlock(&a->lock);
    cache_clear(a);
    pthread_rwlock_unlock(&a->lock);
    return MD_OK;
}
