/* auth_int.h - internals shared by the files of src/auth/. */
#ifndef MD_AUTH_AUTH_INT_H
#define MD_AUTH_AUTH_INT_H

#include "auth/auth.h"

#define AUTH__KEY_PREFIX "mdk_"
#define AUTH__B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define AUTH__SECRET_B64_LEN 43   /* 32 bytes in base64url without padding */

/* BLAKE2b-256 of a whole key string: what api_keys.hash holds. */
void auth__key_hash(const char *key, size_t n, uint8_t out[STORE_HASH_LEN]);
/* Check the shape of "mdk_<12 hex>_<43 base64url>" and copy out the id; -1 when malformed. */
int auth__parse_key(const char *cred, size_t len, char id[AUTH_KEY_ID_LEN + 1]);

/* The key row of id through the verifier's cache: MD_OK (*exists says whether there is one)
 * or MD_E_IO. */
int auth__lookup(auth *a, const char *id, int *exists, store_key *row, md_err *err);
/* The verifier's store (borrowed), clock reading and refresh token lifetime. */
store *auth__store(const auth *a);
int64_t auth__now_ms(const auth *a);
int64_t auth__refresh_ttl_s(const auth *a);

#endif
