/* httpc.h - a minimal HTTP/1.1 client over one TCP socket, for the CLI's --url mode
 * (`modeld models ... --url http://host:port --key KEY`). Plain http only (put TLS in front
 * with a proxy); one request per connection ("Connection: close"); Content-Length and chunked
 * answers; bounded answer size and a receive timeout, so a misbehaving server cannot hang or
 * exhaust the CLI.
 */
#ifndef MD_CLI_HTTPC_H
#define MD_CLI_HTTPC_H

#include "base/err.h"

#include <stddef.h>

#define HTTPC_MAX_BODY (64u << 20)

typedef struct httpc_resp {
    int status;
    char *body; /* new (free()), NUL-terminated; len excludes the NUL */
    size_t len;
} httpc_resp;

/* method path (e.g. "/api/models") on base_url ("http://127.0.0.1:8080"; a path prefix is
 * kept). key: sent as "Authorization: Bearer <key>" when non-NULL. body may be NULL (sent as
 * JSON otherwise). timeout_s: connect and per-read timeout. MD_E_INVALID_PARAM for a bad URL,
 * MD_E_UNAVAILABLE when the server cannot be reached, MD_E_BAD_REQUEST for a malformed answer,
 * MD_E_TOO_LARGE past HTTPC_MAX_BODY. */
int httpc_request(const char *base_url, const char *method, const char *path, const char *key, const char *body,
                  int timeout_s, httpc_resp *out, md_err *err);
void httpc_resp_free(httpc_resp *r);

#endif
