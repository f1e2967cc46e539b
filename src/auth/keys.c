/* keys.c - making API keys and the role names.
 *
 * A key is "mdk_<id>_<secret>": <id> is 12 random hex digits (public: listings, audit log,
 * JWT sub), <secret> 32 random bytes in base64url. The store keeps only BLAKE2b-256 of the
 * whole key string; a 256-bit random secret needs no salt or slow hash, since there is
 * nothing to guess from a dictionary.
 */
#include "auth/auth_int.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char *const role_names[] = {"none", "read", "write", "admin"};

const char *auth_role_name(auth_role r)
{
    return (r >= AUTH_ROLE_NONE && r <= AUTH_ROLE_ADMIN) ? role_names[r] : "none";
}

int auth_role_parse(const char *s, auth_role *out, md_err *err)
{
    for (int r = AUTH_ROLE_READ; r <= AUTH_ROLE_ADMIN; r++) {
        if (s && strcmp(s, role_names[r]) == 0) {
            *out = (auth_role)r;
            return MD_OK;
        }
    }
    return md_fail(err, MD_E_INVALID_PARAM, "role", "must be read, write or admin");
}

void auth__key_hash(const char *key, size_t n, uint8_t out[STORE_HASH_LEN])
{
    crypto_generichash(out, STORE_HASH_LEN, (const unsigned char *)key, n, NULL, 0);
}

int auth_key_name_check(const char *name, md_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= STORE_NAME_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "name", "must be 1..%d characters",
                       STORE_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return md_fail(err, MD_E_INVALID_PARAM, "name", "must not contain control characters");
    return MD_OK;
}

/* Fill k with a fresh random id and secret and its row (not yet stored). */
static void make_key(auth_new_key *k, auth_role role, const char *name, int64_t now_ms)
{
    unsigned char id[AUTH_KEY_ID_LEN / 2], secret[32];
    char id_hex[AUTH_KEY_ID_LEN + 1], secret_b64[sodium_base64_ENCODED_LEN(32, AUTH__B64)];
    randombytes_buf(id, sizeof id);
    randombytes_buf(secret, sizeof secret);
    sodium_bin2hex(id_hex, sizeof id_hex, id, sizeof id);
    sodium_bin2base64(secret_b64, sizeof secret_b64, secret, sizeof secret, AUTH__B64);
    memset(k, 0, sizeof *k);
    snprintf(k->key, sizeof k->key, "%s%s_%s", AUTH__KEY_PREFIX, id_hex, secret_b64);
    memcpy(k->row.id, id_hex, sizeof id_hex);
    snprintf(k->row.name, sizeof k->row.name, "%s", name);
    k->row.role = role;
    k->row.created_ms = now_ms;
    auth__key_hash(k->key, strlen(k->key), k->row.hash);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(secret_b64, sizeof secret_b64);
}

int auth_key_create(store *s, auth_role role, const char *name, auth_new_key *out, md_err *err)
{
    if (role < AUTH_ROLE_READ || role > AUTH_ROLE_ADMIN)
        return md_fail(err, MD_E_INVALID_PARAM, "role", "must be read, write or admin");
    int rc = auth_key_name_check(name, err);
    if (rc != MD_OK)
        return rc;
    if (sodium_init() < 0)
        return md_fail(err, MD_E_INTERNAL, NULL, "crypto library failed to start");
    /* A 48-bit id collides with an existing one only by extreme bad luck; retry anyway. */
    for (int attempt = 0; attempt < 4; attempt++) {
        make_key(out, role, name, md_wall_ms());
        rc = store_keys_insert(s, &out->row, err);
        if (rc != MD_E_CONFLICT)
            break;
    }
    if (rc != MD_OK)
        auth_new_key_wipe(out);
    return rc;
}

int auth_key_bootstrap(store *s, auth_new_key *out, int *created, md_err *err)
{
    *created = 0;
    size_t n = 0;
    int rc = store_keys_count_active(s, &n, err);
    if (rc != MD_OK || n > 0)
        return rc;
    rc = auth_key_create(s, AUTH_ROLE_ADMIN, "bootstrap-admin", out, err);
    if (rc == MD_OK)
        *created = 1;
    return rc;
}

void auth_new_key_wipe(auth_new_key *k) { sodium_memzero(k->key, sizeof k->key); }

int auth__parse_key(const char *cred, size_t len, char id[AUTH_KEY_ID_LEN + 1])
{
    size_t plen = sizeof AUTH__KEY_PREFIX - 1;
    if (len != plen + AUTH_KEY_ID_LEN + 1 + AUTH__SECRET_B64_LEN ||
        memcmp(cred, AUTH__KEY_PREFIX, plen) != 0 || cred[plen + AUTH_KEY_ID_LEN] != '_')
        return -1;
    for (size_t i = 0; i < AUTH_KEY_ID_LEN; i++) {
        char c = cred[plen + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        id[i] = c;
    }
    id[AUTH_KEY_ID_LEN] = '\0';
    return 0;
}
