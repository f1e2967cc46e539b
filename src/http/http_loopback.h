/* http_loopback.h - run one request through a server's whole middleware chain and handlers
 * without a socket (h2o's loopback connection). For handler tests in tests/api/ and tests/http/:
 * the server need not be started; HEAVY handlers run inline on the calling thread.
 */
#ifndef MD_HTTP_LOOPBACK_H
#define MD_HTTP_LOOPBACK_H

#include "http/http.h"

typedef struct http_loopback_resp {
    int status;
    char *body;        /* new (owned by the struct), NUL-terminated; "" for no body */
    size_t len;        /* body length (after gzip when the request asked for it) */
    char **headers;    /* new: name, value, name, value, ..., NULL */
} http_loopback_resp;

/* Send one request. target is "/path?query" (raw, percent-encoded as on the wire). headers is
 * a NULL-terminated list of name, value pairs (may be NULL). body may be NULL. The client address
 * is 127.0.0.1. Fills *out (free it with http_loopback_resp_free). Returns 0 or MD_E_NOMEM. */
int http_loopback(http_server *s, const char *method, const char *target, const char *const *headers,
                  const void *body, size_t len, http_loopback_resp *out);
void http_loopback_resp_free(http_loopback_resp *r);
/* Response header, case-insensitive; NULL when absent. Borrowed from r. */
const char *http_loopback_header(const http_loopback_resp *r, const char *name);

#endif
