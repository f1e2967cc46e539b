/* err.h - the one table of error codes for all of modeld.
 *
 * Every function that can fail returns an int: 0 (MD_OK) or one of the codes below, and puts
 * the detail (which field, which limit) in an md_err the caller passes in. Only src/http turns
 * a code into an HTTP answer, through md_err_status() and md_err_name(), so the status of a
 * failure is decided once, here, and never by a handler.
 *
 * The name column is the stable string clients see in {"error": {"code": ...}}.
 * The message column is the default text when the failing code gave none.
 * Messages written into md_err are client-facing: no paths, SQL or errno text in them.
 */
#ifndef MD_BASE_ERR_H
#define MD_BASE_ERR_H

#include <stddef.h>

/* XX(ENUM, http_status, "client_code", "default message") */
#define MD_ERR_MAP(XX)                                                                      \
    XX(OK, 200, "ok", "success")                                                            \
    XX(BAD_REQUEST, 400, "bad_request", "the request is malformed")                         \
    XX(INVALID_JSON, 400, "invalid_json", "the body is not valid JSON")                     \
    XX(MISSING_FIELD, 400, "missing_field", "a required field is missing")                  \
    XX(INVALID_PARAM, 400, "invalid_parameter", "a parameter is out of range or invalid")   \
    XX(IMAGE_CORRUPT, 400, "corrupt_image", "the image data is corrupt")                    \
    XX(IMAGE_TRUNCATED, 400, "truncated_image", "the image data is truncated")              \
    XX(IMAGE_TOO_LARGE, 400, "image_too_large", "the image dimensions exceed the limits")   \
    XX(UNAUTHORIZED, 401, "unauthorized", "missing or invalid credentials")                 \
    XX(FORBIDDEN, 403, "forbidden", "the credentials do not allow this")                    \
    XX(NOT_FOUND, 404, "not_found", "no such resource")                                     \
    XX(FILE_NOT_FOUND, 404, "file_not_found", "no such file")                               \
    XX(MODEL_NOT_FOUND, 404, "model_not_found", "no such model")                            \
    XX(NOT_READY, 400, "not_ready", "not ready (a health probe's false)")                   \
    XX(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "method not allowed for this path")   \
    XX(CONFLICT, 409, "conflict", "the resource is in a conflicting state")                 \
    XX(CANCELLED, 409, "cancelled", "the work was cancelled")                                \
    XX(TOO_LARGE, 413, "payload_too_large", "the request body is too large")                \
    XX(UNSUPPORTED_MEDIA, 415, "unsupported_media_type", "unsupported content type")        \
    XX(UNSUPPORTED_FORMAT, 415, "unsupported_format", "unsupported image format")           \
    XX(UNSUPPORTED, 422, "unsupported", "the input uses something not supported")           \
    XX(MODEL_INVALID, 422, "invalid_model", "the model file is invalid")                    \
    XX(RATE_LIMITED, 429, "rate_limited", "too many requests")                              \
    XX(INTERNAL, 500, "internal_error", "internal error")                                   \
    XX(NOMEM, 500, "out_of_memory", "out of memory")                                        \
    XX(NOT_IMPLEMENTED, 501, "not_implemented", "the server does not implement this")       \
    XX(IO, 500, "io_error", "storage error")                                                \
    XX(OVERLOADED, 503, "overloaded", "the server is busy, retry later")                    \
    XX(UNAVAILABLE, 503, "unavailable", "the service is not ready")                         \
    XX(MODEL_UNAVAILABLE, 503, "model_unavailable", "the model is not ready")               \
    XX(STORAGE_FULL, 507, "insufficient_storage", "the server's storage is full")           \
    XX(TIMEOUT, 504, "timeout", "the request took longer than its deadline")

typedef enum md_code {
#define MD_ERR_ENUM(e, status, name, msg) MD_E_##e,
    MD_ERR_MAP(MD_ERR_ENUM)
#undef MD_ERR_ENUM
        MD_E__COUNT
} md_code;

#define MD_OK MD_E_OK

/* Detail of one failure. Caller-allocated (usually on the stack or in the request arena);
 * functions that take an md_err * accept NULL when the caller does not want the detail. */
typedef struct md_err {
    int code;         /* md_code */
    char field[64];   /* offending field or parameter name, "" when none */
    char msg[320];    /* client-facing message, "" means use the table's default */
} md_err;

/* HTTP status for a code (500 for unknown codes). */
int md_err_status(int code);
/* Stable client-facing name ("file_not_found"); borrowed, static storage. */
const char *md_err_name(int code);
/* Default message of a code; borrowed, static storage. */
const char *md_err_default_msg(int code);

/* Record a failure in e (may be NULL) and return code, so callers can write
 *   return md_fail(err, MD_E_INVALID_PARAM, "filter_speckle", "must be in 0..128, got %d", v);
 * field may be NULL. The message is printf-formatted and truncated to fit. */
int md_fail(md_err *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reset e to MD_OK with empty field and message. */
void md_err_clear(md_err *e);

/* The message to show a client: e->msg when set, else the code's default. Borrowed from e. */
const char *md_err_message(const md_err *e);

#endif
