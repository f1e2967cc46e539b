/* store.h - durable state of modeld: API keys, the audit log, uploads, conversion results,
 * jobs, schedules, stored datasets and the blobs they name.
 *
 * The store is the only code that knows how state is kept: callers see plain C structs and
 * MD_E_* codes, never SQL. Two back ends run the same SQL (src/store/db.h): the default keeps
 * <data_dir>/modeld.db (SQLite, WAL mode); store_opts.url "postgres://..." keeps the metadata in
 * PostgreSQL, shared by several nodes. Either way the numbered migrations are applied at open,
 * and the content-addressed blobs are files under <data_dir>/blobs/ (or store_opts.blob_dir).
 *
 * Threading: a store handle may be used from any number of threads at once; calls are
 * serialised inside the store. Several processes (the server and `modeld keys`) may open the
 * same data dir at the same time; the busy timeout covers their short write locks.
 *
 * Errors: every function returns MD_OK or an MD_E_* code and fills err (may be NULL) with a
 * client-safe message. Storage failures are MD_E_IO, or MD_E_STORAGE_FULL when the disk or the
 * quota is full (ENOSPC, EDQUOT, SQLITE_FULL: any write may give it), MD_E_UNAVAILABLE when the
 * PostgreSQL server cannot be reached (503 + Retry-After); their detail (database text,
 * paths, errno) goes to the log only.
 *
 * Ownership: "new" results must be freed by the caller with the named function (or free());
 * structs filled by value own nothing. Strings passed in are borrowed for the call only.
 */
#ifndef MD_STORE_STORE_H
#define MD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"

typedef struct store store;

typedef struct store_opts {
    const char *data_dir;       /* required; created (0700) when missing */
    const char *url;            /* the database: NULL, "" or "sqlite:[path]" (default: SQLite at
                                 * <data_dir>/modeld.db), or "postgres://..." (a libpq URI;
                                 * several nodes may share it) */
    const char *blob_dir;       /* NULL = <data_dir>/blobs; nodes sharing a PostgreSQL store
                                 * point this at one shared directory */
    int pool_size;              /* PostgreSQL connections; 0 = 4 */
    const md_clock *clock;      /* NULL = md_clock_system(); used for created/expiry times */
    int busy_timeout_ms;        /* 0 = 5000 */
    int64_t upload_ttl_ms;      /* unreferenced uploads expire this long after last use; 0 = 1 h */
    int migrate_to;             /* 0 = latest; tests pass an older version to build the
                                 * "existing database" a later open must migrate */
    bool results_fsync;         /* true: fsync result blobs like uploads; false (default): see
                                 * "Durability" at store_results_create */
    const struct store_keyring *keyring; /* borrowed, outlives the store; NULL (default) = blobs
                                 * in plain text. Set: every blob put is encrypted under its
                                 * write key (blob_crypt.c) and store_blob_read decrypts; plain
                                 * blobs from before stay readable. Path readers
                                 * (store_blob_path) do NOT decrypt yet: see INTERFACE_CHANGES */
} store_opts;

/* ---- lifetime (store.c) --------------------------------------------------------------- */

/* Open (creating when needed) the store under o->data_dir and apply pending migrations in one
 * transaction. *out is new with one reference; release it with store_unref(). */
int store_open(const store_opts *o, store **out, md_err *err);
/* Take one more reference (for a thread or subsystem that outlives its creator). Returns s. */
store *store_ref(store *s);
/* Drop a reference; the last one closes the database (checkpointing the WAL). NULL is a no-op. */
void store_unref(store *s);

/* Readiness probe: a trivial query on the database (MD_E_UNAVAILABLE: PostgreSQL is down). */
int store_ping(store *s, md_err *err);
/* Readiness probe for writes: MD_E_STORAGE_FULL (field "store", message starting "unwritable")
 * when the data dir's (or a separate blob dir's) file system has less than min_free_bytes available to us (statvfs) or a
 * one-block write to <data_dir>/.write-probe fails for lack of space; MD_E_IO for another
 * failure. Cheap enough for every GET /api/ready (one small write, no fsync). */
int store_check_writable(store *s, uint64_t min_free_bytes, md_err *err);
/* Bytes available to us on the file system of the data dir, or of the blob dir when that is
 * elsewhere and has less (statvfs; the figure store_check_writable compares with its minimum).
 * MD_E_IO when statvfs fails. */
int store_free_bytes(store *s, uint64_t *out, md_err *err);
/* "sqlite" or "postgresql": the back end store_opts.url chose (static string). */
const char *store_backend(const store *s);
/* Schema version now in the database (the highest applied migration). */
int store_schema_version(store *s, int *out, md_err *err);
/* Highest migration this build knows. */
int store_schema_latest(void);
/* Borrowed until store_unref of the last reference. */
const char *store_data_dir(const store *s);
/* Changes whenever another connection (another process, e.g. `modeld keys revoke`) committed
 * since the last call (PostgreSQL: whenever api_keys gained or revoked a key); used by auth to
 * drop its key cache. */
int store_data_version(store *s, uint64_t *out, md_err *err);

/* ---- API keys (keys.c) ---------------------------------------------------------------- */

#define STORE_KEY_ID_MAX 32
#define STORE_NAME_MAX 128
#define STORE_HASH_LEN 32

typedef struct store_key {
    char id[STORE_KEY_ID_MAX];     /* public id / prefix shown in listings */
    char name[STORE_NAME_MAX];
    int role;                      /* auth_role value; the store does not interpret it */
    uint8_t hash[STORE_HASH_LEN];  /* hash of the secret key; the key itself is never stored */
    int64_t created_ms;
    int64_t revoked_ms;            /* 0 = active */
} store_key;

/* Insert a new key row (created_ms is taken from k). MD_E_CONFLICT when the id exists. */
int store_keys_insert(store *s, const store_key *k, md_err *err);
/* MD_E_NOT_FOUND when there is no such id (revoked keys are still found). */
int store_keys_get(store *s, const char *id, store_key *out, md_err *err);
/* All keys, oldest first. *out is new (free() it; NULL when *n == 0). */
int store_keys_list(store *s, store_key **out, size_t *n, md_err *err);
/* Mark a key revoked at the store clock's now, and every refresh token of the key with it (one
 * transaction). MD_E_NOT_FOUND for an unknown id; revoking a revoked key is MD_OK and keeps the
 * first revocation time. */
int store_keys_revoke(store *s, const char *id, md_err *err);
/* Number of keys not revoked. */
int store_keys_count_active(store *s, size_t *n, md_err *err);

/* ---- encryption at rest: keyring and encrypted blob files (blob_crypt.c) ---------------
 *
 * Building blocks of issue 13's encryption at rest: XChaCha20-Poly1305 (libsodium
 * secretstream) in chunks of STORE_CRYPT_CHUNK plaintext bytes, a key id in each file's header,
 * one write key and any number of older read keys. A reader or writer holds one chunk in
 * memory whatever the blob's size; a wrong or missing key, an edited or a truncated file is an
 * MD_E_IO with a message saying which, never garbage. store_opts.keyring turns it on for the
 * store's blob puts and store_blob_read (see there). */

#define STORE_CRYPT_CHUNK ((size_t)64 * 1024)
#define STORE_KEY_ID_HEX 17   /* a key id in hex + NUL */

typedef struct store_keyring store_keyring;
/* *out is new and empty (store_keyring_free). */
int store_keyring_new(store_keyring **out, md_err *err);
void store_keyring_free(store_keyring *kr);   /* wipes the keys; NULL is a no-op */
/* Add a 32-byte key given raw (n == 32), as 64 hex digits or as base64 (standard or URL-safe,
 * padding optional; surrounding whitespace ignored). The first key added is the write key, the
 * others are only read (rotation: new key first, then the old ones). Adding a key twice is a
 * no-op. MD_E_INVALID_PARAM naming source (e.g. "MODELD_ENCRYPTION_KEY") when malformed. */
int store_keyring_add(store_keyring *kr, const void *key, size_t n, const char *source,
                      md_err *err);
/* The same with the contents of a file (field "encryption_key_file" in errors). */
int store_keyring_add_file(store_keyring *kr, const char *path, md_err *err);
size_t store_keyring_size(const store_keyring *kr);
/* The write key's id in hex ("" when the keyring is empty or NULL). */
void store_keyring_write_id(const store_keyring *kr, char out[STORE_KEY_ID_HEX]);

/* Encrypt a stream into fd (borrowed, written sequentially) under kr's write key: open writes
 * the header; write buffers and writes whole chunks; finish writes the last chunk. Free with
 * store_crypt_writer_free (also after a failure). */
typedef struct store_crypt_writer store_crypt_writer;
int store_crypt_writer_open(const store_keyring *kr, int fd, store_crypt_writer **out,
                            md_err *err);
int store_crypt_write(store_crypt_writer *w, const void *data, size_t n, md_err *err);
int store_crypt_writer_finish(store_crypt_writer *w, md_err *err);
void store_crypt_writer_free(store_crypt_writer *w);

/* 1 when the file at fd starts with the encrypted-blob header (pread, offset unchanged). */
int store_crypt_is_encrypted(int fd);
/* Decrypt the file at fd (steals fd: closed by store_crypt_reader_free, also on failure) with
 * the key its header names. store_crypt_read fills up to cap bytes (fewer only at the end;
 * *got == 0 means the end), each checked before it is returned. */
typedef struct store_crypt_reader store_crypt_reader;
int store_crypt_reader_open(const store_keyring *kr, int fd, store_crypt_reader **out,
                            md_err *err);
/* Plaintext size, from the file's size (checked against the content as it is read). */
uint64_t store_crypt_reader_size(const store_crypt_reader *r);
int store_crypt_read(store_crypt_reader *r, void *buf, size_t cap, size_t *got, md_err *err);
void store_crypt_reader_free(store_crypt_reader *r);

/* ---- refresh tokens (refresh.c) ------------------------------------------------------- */

#define STORE_FAMILY_MAX 40

/* One refresh token as stored: only the hash of the token, never the token. */
typedef struct store_refresh {
    uint8_t hash[STORE_HASH_LEN];    /* BLAKE2b-256 of the whole token string */
    char family[STORE_FAMILY_MAX];   /* the chain of tokens rotated from one issue */
    char key_id[STORE_KEY_ID_MAX];   /* the API key it acts for */
    int64_t created_ms;
    int64_t expires_ms;
    int64_t used_ms;                 /* 0 = not yet presented */
    int64_t revoked_ms;              /* 0 = not revoked (family reuse or key revoked) */
} store_refresh;

/* Insert a new token row (used_ms / revoked_ms stored as 0). MD_E_CONFLICT for a hash that
 * exists already. */
int store_refresh_insert(store *s, const store_refresh *r, md_err *err);
/* The row of a token hash; MD_E_NOT_FOUND (field "refresh_token") when there is none. */
int store_refresh_get(store *s, const uint8_t hash[STORE_HASH_LEN], store_refresh *out,
                      md_err *err);
/* Rotate in one transaction: mark old_hash used at now_ms, only if it is still unused and not
 * revoked (a compare-and-set, so of two concurrent presentations exactly one wins), and insert
 * next. MD_E_CONFLICT (field "refresh_token") when old_hash was already used or revoked: the
 * caller treats that as reuse. */
int store_refresh_rotate(store *s, const uint8_t old_hash[STORE_HASH_LEN], int64_t now_ms,
                         const store_refresh *next, md_err *err);
/* Revoke every token of a family at now_ms (already revoked ones keep their time). *n (may be
 * NULL) gets how many were revoked now. */
int store_refresh_revoke_family(store *s, const char *family, int64_t now_ms, size_t *n,
                                md_err *err);
/* Delete the rows that expired before before_ms (the sweeper's retention). *n (may be NULL)
 * gets how many. */
int store_refresh_sweep(store *s, int64_t before_ms, size_t *n, md_err *err);

/* ---- audit log (audit.c) -------------------------------------------------------------- */

typedef struct store_audit_entry {
    int64_t id;                  /* increasing; use as the paging cursor */
    int64_t time_ms;             /* wall clock, ms since the epoch */
    char who[STORE_KEY_ID_MAX];  /* key id, or "anonymous" */
    char method[16];
    char route[256];             /* route pattern or path, truncated to fit */
    int status;
    char request_id[64];
} store_audit_entry;

/* Append one record. Strings may be NULL (stored as ""); long ones are truncated. */
int store_audit_append(store *s, const char *who, const char *method, const char *route,
                       int status, const char *request_id, int64_t time_ms, md_err *err);

/* Append n records in one transaction: all or none are stored. The id field of the entries is
 * ignored (ids are assigned in array order); strings are truncated as above, "" stays "". */
int store_audit_append_many(store *s, const store_audit_entry *e, size_t n, md_err *err);

typedef struct store_audit_page {
    int64_t before_id;  /* 0 = start at the newest; else only entries with id < before_id */
    size_t offset;      /* entries to skip after the cursor (plain limit/offset paging) */
    size_t limit;       /* 1..1000; 0 = 50 */
} store_audit_page;

/* Entries newest first. *out is new (free() it; NULL when *n == 0). *next_before is the cursor
 * for the next page: pass it as before_id with offset 0 (0 when this page is the last).
 * MD_E_INVALID_PARAM (field "limit", "before" or "offset") for limit > 1000 or negatives. */
int store_audit_list(store *s, const store_audit_page *p, store_audit_entry **out, size_t *n,
                     int64_t *next_before, md_err *err);
/* Total number of records. */
int store_audit_count(store *s, int64_t *n, md_err *err);

/* ---- blobs (blob.c) ------------------------------------------------------------------- */

#define STORE_SHA256_HEX 65  /* 64 hex digits + NUL */

/* Write data as <data>/blobs/ab/cd/<sha256> (tmp file + fsync + rename), once per content:
 * an existing blob is left alone. hex gets the SHA-256 in lower-case hex. */
int store_blob_put(store *s, const void *data, size_t n, char hex[STORE_SHA256_HEX], md_err *err);
/* Large blobs, never held in memory (bulk uploads and results):
 * store_blob_tmp makes an empty file under blobs/tmp (swept after an hour when left behind)
 * for the caller to write; *path is new (free() it), the file is the caller's.
 * store_blob_adopt makes the file at path a blob: its bytes are hashed in blocks, fsync'd, and
 * the file renamed into place (copied, when path is on another file system). Steals the file on
 * MD_OK (it is gone from path); on an error the file stays where it was, the caller's. path
 * must not be written any more. size (may be NULL) gets its length.
 * store_blob_put_range copies the len bytes at off of fd (borrowed; read with pread) into a
 * new blob, in blocks: a part of a spooled multipart body. MD_E_IO when fd is shorter. */
int store_blob_tmp(store *s, char **path, md_err *err);
int store_blob_adopt(store *s, const char *path, char hex[STORE_SHA256_HEX], uint64_t *size,
                     md_err *err);
int store_blob_put_range(store *s, int fd, uint64_t off, uint64_t len, char hex[STORE_SHA256_HEX],
                         md_err *err);
/* Read a blob. MD_E_FILE_NOT_FOUND when absent, MD_E_TOO_LARGE when bigger than max.
 * *data is new (free() it). */
int store_blob_read(store *s, const char *hex, size_t max, uint8_t **data, size_t *n,
                    md_err *err);
/* Path of a blob (for sendfile-style responses); MD_E_INVALID_PARAM for a malformed hash,
 * MD_E_TOO_LARGE when cap is too small. Does not check that the file exists. */
int store_blob_path(const store *s, const char *hex, char *out, size_t cap, md_err *err);

/* ---- uploads (uploads.c) -------------------------------------------------------------- */

#define STORE_FILE_ID_MAX 40

typedef struct store_upload {
    char file_id[STORE_FILE_ID_MAX];  /* random, e.g. "f_3a9c…"; what clients refer to */
    char sha256[STORE_SHA256_HEX];    /* content hash = blob name */
    char filename[256];               /* client-given name, sanitised by the caller */
    char format[16];                  /* "png", "jpeg", ... */
    int width, height;
    int64_t size;                     /* bytes */
    int64_t created_ms;
    int64_t last_used_ms;
    int64_t expires_ms;               /* last_used_ms + upload TTL */
} store_upload;

/* Store the bytes as a blob (deduplicated by hash) and record a new upload of them. The
 * metadata fields of meta (filename, format, width, height) are copied; file_id, sha256, size
 * and times are filled in *out. */
int store_uploads_create(store *s, const void *data, size_t n, const store_upload *meta,
                         store_upload *out, md_err *err);
/* MD_E_FILE_NOT_FOUND for an unknown or expired id. */
int store_uploads_get(store *s, const char *file_id, store_upload *out, md_err *err);
/* Mark an upload used now, pushing its expiry to now + TTL (a conversion that reads it). */
int store_uploads_touch(store *s, const char *file_id, md_err *err);

/* ---- conversion results (results.c) --------------------------------------------------- */

#define STORE_RESULT_ID_MAX 40
#define STORE_RESULT_META_MAX (64 * 1024)

typedef struct store_result {
    char result_id[STORE_RESULT_ID_MAX];  /* random, "r_<hex>" */
    char file_id[STORE_FILE_ID_MAX];      /* the upload it came from (may have expired since) */
    char svg_sha256[STORE_SHA256_HEX];    /* the SVG bytes, a blob (deduplicated like uploads) */
    int64_t svg_bytes;
    int64_t created_ms, expires_ms;       /* expires = created + ttl_ms */
} store_result;

/* Store svg as a blob and insert a result row expiring ttl_ms (> 0) from now. meta_json (text,
 * at most STORE_RESULT_META_MAX bytes: ssim, timings, parameters...) is kept verbatim; NULL is
 * stored as "{}". file_id may be NULL or "". Fills *out.
 *
 * Durability: results are derived data (converting the upload again re-creates them, and the
 * API caches answers anyway), so unless store_opts.results_fsync is set the SVG blob is written
 * to a tmp file and renamed into place without fsync(2): readers still see it whole or not at
 * all, and a result costs no disk flush (the fsync was ~8 ms of the ~10 ms this call took).
 * The price: after a power loss (not a process crash) a recent result's file may be empty or
 * short. store_results_get then answers MD_E_NOT_FOUND, as for an expired result, and never
 * hands out a truncated SVG. (The row is in SQLite, WAL with synchronous=NORMAL: a power loss
 * may drop the last commits but never leaves a half row.) Uploads are user data and are always
 * fsync'd. */
int store_results_create(store *s, const char *file_id, const void *svg, size_t n,
                         const char *meta_json, int64_t ttl_ms, store_result *out, md_err *err);
/* MD_E_NOT_FOUND (field "result_id") for an unknown or expired id, even before a sweep, and
 * for a result whose SVG blob is missing or does not have svg_bytes bytes (torn by a power loss,
 * see Durability above). *meta_json is new (free() it); pass NULL when it is not wanted. */
int store_results_get(store *s, const char *result_id, store_result *out, char **meta_json,
                      md_err *err);

/* ---- model registry state (models.c) ------------------------------------------------- */

#define STORE_MODEL_NAME_MAX 64
#define STORE_MODEL_VERSION_MAX 32

/* What the model registry remembers of one model across restarts. */
typedef struct store_model_state {
    char name[STORE_MODEL_NAME_MAX];
    char active_version[STORE_MODEL_VERSION_MAX]; /* "" = none */
    char canary_version[STORE_MODEL_VERSION_MAX]; /* "" = no canary */
    double canary_percent;                        /* 0..100; 0 when no canary */
    int64_t updated_ms;                           /* wall clock of the last change */
    char previous_version[STORE_MODEL_VERSION_MAX]; /* the active one before active_version
                                                       ("" = none): what mdl_rollback returns
                                                       to when no standby is loaded */
} store_model_state;

/* MD_E_NOT_FOUND (field "name") when nothing is remembered for name. */
int store_models_get(store *s, const char *name, store_model_state *out, md_err *err);
/* Insert or replace the row of st->name; updated_ms is set to the store clock's now (the field
 * of st is ignored). MD_E_INVALID_PARAM for an empty or too long name or version. */
int store_models_set(store *s, const store_model_state *st, md_err *err);
/* Every remembered model, by name. *out is new (free() it; NULL when *n == 0). */
int store_models_list(store *s, store_model_state **out, size_t *n, md_err *err);
/* Forget a model; deleting an unknown name is MD_OK. */
int store_models_delete(store *s, const char *name, md_err *err);

/* ---- durable jobs (jobs.c) ------------------------------------------------------------ */
/* The rows of src/jobs' queue. The store only keeps them and applies each transition as one
 * compare-and-set statement (the WHERE clause names the state, and for a running job the
 * lease owner, that the transition starts from), so two processes can never both claim a job
 * or both finish it; the state machine itself is drawn and checked in src/jobs/jobs.c.
 * "Changed" below means the row matched: a transition whose starting state no longer holds
 * answers MD_E_CONFLICT and changes nothing. */

#define STORE_JOB_ID_MAX 40
#define STORE_JOB_KIND_MAX 32
#define STORE_JOB_PARAMS_MAX 4096   /* params JSON, bytes */
#define STORE_JOB_META_MAX 4096     /* result metadata JSON, bytes */
#define STORE_JOB_STAGE_MAX 64
#define STORE_JOB_WORKER_MAX 96

typedef enum store_job_state {
    STORE_JOB_QUEUED = 0,
    STORE_JOB_PROCESSING,
    STORE_JOB_SUCCESS,
    STORE_JOB_FAILURE,
    STORE_JOB_CANCELLED,
    STORE_JOB__NSTATES
} store_job_state;

/* "QUEUED" ... "CANCELLED" (the API's names, also the database's). Static storage. */
const char *store_job_state_name(int state);
/* The state named s, or -1. */
int store_job_state_parse(const char *s);

typedef struct store_job {
    char id[STORE_JOB_ID_MAX];             /* "j_<hex>" */
    char kind[STORE_JOB_KIND_MAX];         /* "enhance", "predict-bulk", ... */
    char owner[STORE_KEY_ID_MAX];          /* key id of the submitter ("" = anonymous) */
    char batch_id[STORE_JOB_ID_MAX];       /* "" = none */
    char params[STORE_JOB_PARAMS_MAX];     /* JSON object, verbatim */
    char input_sha256[STORE_SHA256_HEX];   /* the input blob; "" = none (or swept) */
    int64_t input_bytes;
    char input_name[256];                  /* client-given file name */
    int state;                             /* store_job_state */
    double progress;                       /* 0..1 */
    char stage[STORE_JOB_STAGE_MAX];
    int attempts, max_attempts;            /* attempts = claims so far */
    char lease_owner[STORE_JOB_WORKER_MAX];/* "" when not PROCESSING */
    int64_t lease_expires_ms;
    int cancel_requested;                  /* a running job was asked to stop */
    int64_t created_ms, started_ms, completed_ms;  /* 0 = not yet */
    char error_code[32];                   /* md_err_name of the failure, "" = none */
    char error_message[320];
    char result_sha256[STORE_SHA256_HEX];  /* the result blob, "" = none */
    int64_t result_bytes;
    char result_meta[STORE_JOB_META_MAX];  /* JSON object, verbatim ("{}" = none) */
    int64_t input_ttl_ms, result_ttl_ms;   /* retention once terminal */
    int64_t expires_ms;                    /* 0 while not terminal; the sweep deletes the row */
    int64_t seq;                           /* bumped by every change: pollers compare it */
    char traceparent[56];                  /* W3C traceparent of the submitting request, "" = none */
} store_job;

typedef struct store_batch {
    char id[STORE_JOB_ID_MAX];             /* "b_<hex>" */
    char owner[STORE_KEY_ID_MAX];
    char kind[STORE_JOB_KIND_MAX];
    int total;
    int64_t created_ms;
} store_batch;

/* Insert n QUEUED jobs (ids, created_ms, seq filled in the array) in one transaction, with
 * their batch row first when batch is not NULL (its id and created_ms are filled, and each
 * job's batch_id set to it): all or nothing. Input blobs must already be put. max_queued > 0
 * refuses with MD_E_OVERLOADED when more than max_queued - n jobs are QUEUED or PROCESSING. */
int store_jobs_insert(store *s, store_job *jobs, size_t n, store_batch *batch, size_t max_queued,
                      md_err *err);
/* MD_E_NOT_FOUND (field "job_id") for an unknown id. */
int store_jobs_get(store *s, const char *id, store_job *out, md_err *err);
/* The oldest QUEUED job whose kind is one of kinds[0..nkinds): QUEUED -> PROCESSING, attempts
 * + 1, leased to worker until now + lease_ms. MD_E_NOT_FOUND when none is waiting. */
int store_jobs_claim(store *s, const char *const *kinds, size_t nkinds, const char *worker,
                     int64_t lease_ms, store_job *out, md_err *err);
/* Extend the lease and record progress (progress < 0 keeps it; stage NULL keeps it).
 * *cancel_requested (may be NULL) gets the row's flag. MD_E_CONFLICT when the job is no longer
 * PROCESSING under this worker (the lease was lost). */
int store_jobs_renew(store *s, const char *id, const char *worker, int64_t lease_ms,
                     double progress, const char *stage, int *cancel_requested, md_err *err);
/* PROCESSING (under worker) -> SUCCESS with the result blob (hex may be "" for none) and
 * meta JSON (NULL = "{}"). */
int store_jobs_succeed(store *s, const char *id, const char *worker, const char *result_hex,
                       int64_t result_bytes, const char *meta, md_err *err);
/* PROCESSING (under worker) -> FAILURE, CANCELLED, or QUEUED (to_state; a release to QUEUED
 * with refund gives back the attempt, as when a server shuts down mid-job). */
int store_jobs_finish(store *s, const char *id, const char *worker, int to_state,
                      const char *error_code, const char *error_message, int refund,
                      md_err *err);
/* QUEUED -> CANCELLED at once (*state_out = CANCELLED); PROCESSING: sets cancel_requested
 * (*state_out = PROCESSING); a terminal job is left alone (*state_out = its state). */
int store_jobs_cancel(store *s, const char *id, int *state_out, md_err *err);
/* Leases that ran out before now: PROCESSING -> QUEUED, or -> FAILURE once attempts reached
 * max_attempts. Also any lease whose owner starts with owner_prefix (non-NULL: a worker
 * prefix of this host's dead process) regardless of its expiry. Counts in *requeued and
 * *failed (may be NULL). */
int store_jobs_expire(store *s, const char *owner_prefix, size_t *requeued, size_t *failed,
                      md_err *err);
/* The distinct lease owners of PROCESSING jobs (for recovery of dead local processes).
 * *out is new (free(); NULL when *n == 0), STORE_JOB_WORKER_MAX chars each. */
int store_jobs_lease_owners(store *s, char (**out)[STORE_JOB_WORKER_MAX], size_t *n,
                            md_err *err);
/* The jobs of a batch, in submission order. *out is new (free(); NULL when *n == 0). */
int store_jobs_list_batch(store *s, const char *batch_id, store_job **out, size_t *n,
                          md_err *err);
typedef struct store_job_filter {
    const char *kind;    /* NULL = any */
    const char *owner;   /* NULL = any */
    int state;           /* store_job_state, or -1 = any */
    int64_t before;      /* paging cursor: 0 = from the newest; else the next_cursor of a page */
    size_t limit;        /* 1..1000; 0 = 50 */
} store_job_filter;

/* Jobs newest first (by submission), filtered. *out is new (free(); NULL when *n == 0);
 * *next_cursor (may be NULL) is the before of the next page, 0 when this one is the last.
 * MD_E_INVALID_PARAM (field "limit" / "state" / "before") out of range. For the admin listing
 * of bulk jobs (issue 11). */
int store_jobs_list(store *s, const store_job_filter *f, store_job **out, size_t *n,
                    int64_t *next_cursor, md_err *err);
/* MD_E_NOT_FOUND (field "batch_id") for an unknown id. */
int store_batches_get(store *s, const char *id, store_batch *out, md_err *err);
/* Numbers of jobs per state (counts[STORE_JOB__NSTATES]), all kinds when kind is NULL. */
int store_jobs_count(store *s, const char *kind, int64_t counts[STORE_JOB__NSTATES],
                     md_err *err);
/* The seq of each id (0 for a row that no longer exists), for subscribers that poll. */
int store_jobs_seqs(store *s, const char *const *ids, size_t n, int64_t *seqs, md_err *err);
/* Remove a terminal job now (DELETE /api/v1/jobs/{id} after its cancel): MD_E_CONFLICT
 * while it is QUEUED or PROCESSING. Its blobs go at the next sweep. */
int store_jobs_delete(store *s, const char *id, md_err *err);

/* ---- retention (sweep.c) -------------------------------------------------------------- */

typedef struct store_sweep_stats {
    size_t rows_deleted;   /* expired upload and result rows */
    size_t blobs_deleted;  /* blob files no longer referenced by any row */
    size_t tmp_deleted;    /* stale temporary files left by a crash */
} store_sweep_stats;

/* Delete expired rows (expiry <= store clock's wall now) and the blobs no row references any
 * more. Safe to call from a timer thread while requests run; st may be NULL. */
int store_sweep(store *s, store_sweep_stats *st, md_err *err);


/* ---- prediction log and feedback (predictions.c) ---------------------------------------- */

#define STORE_PREDICTION_ID_MAX 40
#define STORE_PREDICTION_JSON_MAX (1 << 20) /* inputs or outputs of one logged prediction */

typedef struct store_prediction {
    char id[STORE_PREDICTION_ID_MAX]; /* "p_<32 hex>" */
    char model[64];
    char version[33];
    char *inputs;  /* JSON text; borrowed when adding, new (store_predictions_free) when listed */
    char *outputs; /* JSON text; likewise */
    char *actual;  /* listed only: the feedback's JSON text, NULL when none */
    int64_t time_ms;
} store_prediction;

/* "p_" + 32 random hex digits into out (STORE_PREDICTION_ID_MAX). */
void store_prediction_id(char out[STORE_PREDICTION_ID_MAX]);
/* Log n predictions in one transaction (inputs/outputs borrowed for the call: copied when
 * queued). With the write-behind log started (store_predlog_start, below) the rows are queued
 * and committed by its writer, whole, with others; MD_OK then means accepted. MD_E_TOO_LARGE
 * naming "inputs" / "outputs" past STORE_PREDICTION_JSON_MAX; MD_E_IO, MD_E_STORAGE_FULL. */
int store_predictions_add(store *s, const store_prediction *p, size_t n, md_err *err);
/* One model's logged predictions with from_ms <= time_ms < to_ms (to_ms 0 = no bound), newest
 * first, skipping offset, at most limit (1..10000) with their feedback. *out new
 * (store_predictions_free), *n rows. */
int store_predictions_list(store *s, const char *model, int64_t from_ms, int64_t to_ms,
                           size_t offset, size_t limit, store_prediction **out, size_t *n,
                           md_err *err);
void store_predictions_free(store_prediction *p, size_t n);
/* Record the outcome of a logged prediction of model (actual: JSON text, borrowed; a second
 * feedback replaces the first). MD_E_NOT_FOUND (field "prediction_id") when that model logged
 * no such prediction. */
int store_feedback_put(store *s, const char *model, const char *prediction_id, const char *actual,
                       int64_t time_ms, md_err *err);
/* The logged predictions of model that have feedback (retraining from "feedback"), oldest
 * first, skipping offset, at most limit (1..10000), each with its actual. *out new
 * (store_predictions_free). */
int store_feedback_list(store *s, const char *model, size_t offset, size_t limit,
                        store_prediction **out, size_t *n, md_err *err);
/* How many logged predictions of model have feedback. */
int store_feedback_count(store *s, const char *model, int64_t *n, md_err *err);

/* ---- write-behind prediction log (predlog.c) ----------------------------------------------
 * With store_predlog_start, store_predictions_add copies its rows into a bounded queue and
 * returns; one writer thread commits them in order, up to batch_rows per transaction, at most
 * flush_ms after the oldest arrived. A full queue makes the caller wait up to wait_ms, then
 * write inline (after the queued rows); nothing is dropped for lack of room. The readers here
 * (list, feedback put/list/count) first wait for the rows queued before them, so the API sees
 * every answered prediction. store_predlog_stop (or the last store_unref) writes what is
 * queued. A process killed with SIGKILL loses the queued rows (at most one flush window):
 * the database then holds a prefix of the accepted rows, never part of a row or of a group. */
typedef struct store_predlog_opts {
    int64_t flush_ms;  /* > 0: write behind, at most this long after a row arrived; 0: inline */
    size_t batch_rows; /* rows per transaction (whole groups; one larger group alone); 0 = 256 */
    size_t max_rows;   /* queue bound in rows; 0 = 8192 */
    size_t max_bytes;  /* queue bound in bytes of JSON; 0 = 64 MiB */
    int64_t wait_ms;   /* how long a full queue holds a caller before it writes inline; 0 = 250 */
} store_predlog_opts;

#define STORE_PREDLOG_NBUCKETS 12
typedef struct store_predlog_stats {
    uint64_t queued_rows;  /* waiting now */
    uint64_t rows_written; /* committed by the writer */
    uint64_t rows_inline;  /* committed by callers that found the queue full or stopped */
    uint64_t rows_failed;  /* lost to a failed write (each logged as an error) */
    uint64_t batches;      /* transactions committed */
    uint64_t waits;        /* callers that waited for room */
    double flush_seconds_sum;
    uint64_t flush_buckets[STORE_PREDLOG_NBUCKETS + 1]; /* per bucket (not cumulative), +Inf last */
    int64_t flush_ms;
} store_predlog_stats;

/* Start the writer (o->flush_ms <= 0: nothing to start, MD_OK). Call once, before the store is
 * shared between threads. */
int store_predlog_start(store *s, const store_predlog_opts *o, md_err *err);
/* Write what is queued and stop the writer; later rows are written inline. Idempotent; NULL
 * and a store without a writer are no-ops. */
void store_predlog_stop(store *s);
/* The counters (all 0 without a writer). */
void store_predlog_stats_get(store *s, store_predlog_stats *out);
/* Prometheus families modeld_predict_log_* appended to out (an http_collector_fn; ctx: the
 * store, borrowed): queued rows, rows committed by path, failed rows, full-queue waits, and the
 * flush latency histogram. */
void store_predlog_metrics(md_buf *out, void *ctx);
/* ---- schedules (schedules.c, issue 11 §4) -------------------------------------------------- */

#define STORE_SCHED_ID_MAX 40
#define STORE_SCHED_CRON_MAX 256
#define STORE_SCHED_URL_MAX 1024

/* One schedule (value type). The store does not interpret cron, model or input: src/jobs
 * validates them and computes next_run_ms. */
typedef struct store_schedule {
    char id[STORE_SCHED_ID_MAX];          /* "s_<hex>", set by store_schedule_add */
    char owner[STORE_KEY_ID_MAX];         /* key id of the creator */
    char kind[STORE_JOB_KIND_MAX];        /* kind of the jobs it submits */
    char model[64];                       /* model name */
    char cron[STORE_SCHED_CRON_MAX];      /* the 5-field expression */
    char input[STORE_JOB_ID_MAX];         /* stored dataset (upload) id */
    char callback_url[STORE_SCHED_URL_MAX]; /* "" = none */
    int64_t last_run_ms;                  /* 0 = never ran */
    char last_job_id[STORE_JOB_ID_MAX];   /* job of the last run, "" = none */
    int64_t next_run_ms;                  /* when it fires next (wall ms) */
    int64_t created_ms;                   /* set by store_schedule_add */
} store_schedule;

/* Insert s (id and created_ms are filled in). MD_E_INVALID_PARAM naming the field for an empty
 * or too long one. */
int store_schedule_add(store *st, store_schedule *s, md_err *err);
/* MD_E_NOT_FOUND (field "schedule_id") for an unknown id. */
int store_schedule_get(store *st, const char *id, store_schedule *out, md_err *err);
/* Every schedule, oldest first (*out new: free(); NULL when *n == 0). */
int store_schedule_list(store *st, store_schedule **out, size_t *n, md_err *err);
/* Schedules with next_run_ms <= now_ms, soonest first, at most max (*out new: free()). */
int store_schedule_due(store *st, int64_t now_ms, size_t max, store_schedule **out, size_t *n,
                       md_err *err);
/* Claim one run by compare-and-set: when the row's next_run_ms is still expect_next_ms, set it
 * to new_next_ms and last_run_ms to run_ms. MD_E_CONFLICT when another process (or an earlier
 * tick) claimed it first or the row is gone. */
int store_schedule_claim(store *st, const char *id, int64_t expect_next_ms, int64_t new_next_ms,
                         int64_t run_ms, md_err *err);
/* Record the job submitted for the last run. */
int store_schedule_set_job(store *st, const char *id, const char *job_id, md_err *err);
/* MD_E_NOT_FOUND (field "schedule_id") for an unknown id. */
int store_schedule_delete(store *st, const char *id, md_err *err);

/* ---- stored datasets (datasets.c, issue 11 §4) --------------------------------------------- */
/* A dataset is a CSV or JSON-lines file kept until it is deleted (never swept by the upload
 * TTL): what schedules run on and what a model is retrained from. The bytes are a blob (named
 * by their SHA-256, deduplicated); the row keeps what callers list without reading the blob.
 * The store does not parse the file: the caller counts rows and reads the header. */

#define STORE_DATASET_ID_MAX 40
#define STORE_DATASET_NAME_MAX 256
#define STORE_DATASET_COLUMNS_MAX 16384 /* the header as a JSON array of strings, bytes */

typedef struct store_dataset {
    char id[STORE_DATASET_ID_MAX];       /* "d_<24 hex>", set by store_datasets_create */
    char owner[STORE_KEY_ID_MAX];        /* key id of the creator ("" = anonymous) */
    char name[STORE_DATASET_NAME_MAX];   /* client-given name */
    char format[16];                     /* "csv" | "jsonl" */
    int64_t rows;                        /* data rows (the header not counted) */
    char columns[STORE_DATASET_COLUMNS_MAX]; /* JSON array of the column names */
    int64_t size;                        /* bytes */
    char sha256[STORE_SHA256_HEX];       /* the blob */
    int64_t created_ms;
} store_dataset;

/* Store data (n bytes, fsync'd) as a blob and insert a dataset row with meta's owner, name,
 * format, rows and columns; id, size, sha256 and created_ms are filled in *out.
 * MD_E_INVALID_PARAM naming "name", "format" or "columns" when one does not fit. */
int store_datasets_create(store *s, const void *data, size_t n, const store_dataset *meta,
                          store_dataset *out, md_err *err);
/* Insert a dataset row for a blob already in the store (store_blob_adopt / store_blob_put_range
 * of a spooled upload, at most the sweep's grace period ago): sha256 names it, size is its
 * length; the rest as store_datasets_create. */
int store_datasets_add(store *s, const char *sha256, int64_t size, const store_dataset *meta,
                       store_dataset *out, md_err *err);
/* MD_E_NOT_FOUND (field "dataset_id") for an unknown id. */
int store_datasets_get(store *s, const char *id, store_dataset *out, md_err *err);
/* Datasets newest first, skipping offset, at most limit (1..1000). *out is new (free(); NULL
 * when *n == 0); *total (may be NULL) gets the number of datasets. */
int store_datasets_list(store *s, size_t offset, size_t limit, store_dataset **out, size_t *n,
                        int64_t *total, md_err *err);
/* Delete a dataset row (its blob goes at a later sweep when nothing else names it).
 * MD_E_NOT_FOUND (field "dataset_id") for an unknown id; MD_E_CONFLICT (field "dataset_id")
 * while a schedule names it as its input (checked in the same transaction as the delete). */
int store_datasets_delete(store *s, const char *id, md_err *err);

/* ---- job callbacks (callbacks.c, issue 11 §4) ---------------------------------------------- */

typedef enum store_cb_state {
    STORE_CB_PENDING,   /* waiting for its job to finish, or for its next try */
    STORE_CB_DELIVERED, /* the receiver answered 2xx */
    STORE_CB_FAILED,    /* every attempt failed */
} store_cb_state;

typedef struct store_callback {
    char job_id[STORE_JOB_ID_MAX];
    char url[STORE_SCHED_URL_MAX];
    int state;           /* store_cb_state */
    int attempts;        /* tries made (claimed) so far */
    int64_t next_try_ms; /* not before (wall ms) */
    char last_error[256];
    int64_t created_ms;
    int64_t done_ms; /* when delivered or failed */
} store_callback;

/* Record that job_id wants a callback to url. MD_E_CONFLICT when it already has one. */
int store_callback_add(store *st, const char *job_id, const char *url, md_err *err);
/* MD_E_NOT_FOUND (field "job_id") when the job has none. */
int store_callback_get(store *st, const char *job_id, store_callback *out, md_err *err);
/* PENDING callbacks whose job is terminal (SUCCESS, FAILURE, CANCELLED) and whose next_try_ms
 * <= now_ms, soonest first, at most max (*out new: free(); NULL when *n == 0). */
int store_callback_due(store *st, int64_t now_ms, size_t max, store_callback **out, size_t *n,
                       md_err *err);
/* Claim one try by compare-and-set on attempts: attempts + 1 and next_try_ms = lease_until_ms
 * (a process that dies mid-try leaves it to be tried again then). MD_E_CONFLICT when another
 * process claimed it first or it is no longer PENDING. */
int store_callback_claim(store *st, const char *job_id, int expect_attempts,
                         int64_t lease_until_ms, md_err *err);
/* Record a try's outcome: state DELIVERED or FAILED (done_ms = now), or PENDING again with
 * next_try_ms; error is the last error ("" when delivered). */
int store_callback_finish(store *st, const char *job_id, int state, int64_t next_try_ms,
                          const char *error, md_err *err);

#endif
