/* framing.c - the message-framing check of a request whose headers are in, before anything
 * else (route, auth, body) looks at it: RFC 9112 section 6 (Content-Length, Transfer-Encoding).
 *
 * Why: libmicrohttpd 0.9.75 frames a request by Transfer-Encoding when it is present (any
 * value) and by the first Content-Length otherwise, and accepts the combinations a front proxy
 * may read differently. Without this check an attacker could hide a second request in the body
 * ("Content-Length: 4" + "Transfer-Encoding: chunked" + "0\r\n\r\nGET /..." ran the GET) or
 * hang a connection until the idle timeout ("Transfer-Encoding: gzip": libmicrohttpd then reads
 * the body until the client closes). So, from the request's header lines:
 *
 * Invariants:
 *   1. A request with both Content-Length and Transfer-Encoding is refused (400), as is
 *      Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1: faulty framing).
 *   2. Two Content-Length lines with different values are refused (400); identical
 *      repetitions are one length (section 6.3 allows either).
 *   3. Transfer-Encoding, over all its lines, is exactly one "chunked" (any case, optional
 *      whitespace). A coding we do not implement (gzip, deflate, compress, identity...) is
 *      501 not_implemented; chunked applied twice, or not last, or an empty list, is 400.
 *   4. Every refusal here is answered at once and the connection is closed (server.c adds
 *      "Connection: close"): after bad framing nothing later on that connection can be trusted.
 *
 * What libmicrohttpd 0.9.75 does not let us fix (it answers, or drops, before our access
 * callback is called; it has no hook between reading the header lines and parsing them):
 *   - "Content-Length: -1", non-digits or a value over 2^64 (20 digits): libmicrohttpd answers
 *     400 / 413 itself, and its connection state machine then builds the response headers a
 *     second time (transmit_error_response sets HEADERS_SENDING, the HEADERS_RECEIVED step
 *     overwrites it with HEADERS_PROCESSED), so the client gets the status line and headers
 *     twice before the HTML body. The connection is closed, so nothing is smuggled: it is an
 *     ugly answer, not a framing hole.
 *   - A request line without a space ("GET\r\n", binary junk without spaces) is dropped with
 *     no answer (parse_initial_message_line fails, CONNECTION_CLOSE_ERROR); other malformed
 *     request lines get libmicrohttpd's own HTML 400, not our JSON error.
 *   MHD_OPTION_URI_LOG_CALLBACK runs after the request line is parsed and before the headers,
 *   and MHD_OPTION_NOTIFY_CONNECTION only reports open/close, so neither reaches these cases.
 */
#include "http/http_int.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Invariant 3 on the comma-separated codings of all Transfer-Encoding lines. */
static int check_codings(const char *const *te, size_t nte, md_err *err)
{
    size_t nchunked = 0, ncodings = 0;
    bool chunked_last = false;
    for (size_t i = 0; i < nte; i++) {
        for (const char *p = te[i];;) {
            while (ows(*p))
                p++;
            size_t n = strcspn(p, ",");
            size_t m = n;
            while (m > 0 && ows(p[m - 1]))
                m--;
            if (m > 0) {
                ncodings++;
                chunked_last = m == 7 && strncasecmp(p, "chunked", 7) == 0;
                nchunked += chunked_last;
                if (!chunked_last)
                    return md_fail(err, MD_E_NOT_IMPLEMENTED, "Transfer-Encoding",
                                   "transfer coding '%.*s' is not implemented; only chunked is",
                                   (int)(m > 40 ? 40 : m), p);
            }
            if (!p[n])
                break;
            p += n + 1;
        }
    }
    if (ncodings == 0 || nchunked != 1 || !chunked_last)
        return md_fail(err, MD_E_BAD_REQUEST, "Transfer-Encoding",
                       "Transfer-Encoding must be chunked, once");
    return MD_OK;
}

int http__framing_verdict(const char *version, const char *const *cl, size_t ncl,
                          const char *const *te, size_t nte, md_err *err)
{
    if (nte > 0 && ncl > 0)
        return md_fail(err, MD_E_BAD_REQUEST, "Content-Length",
                       "a request may not have both Content-Length and Transfer-Encoding");
    if (nte > 0 && version && strcmp(version, "HTTP/1.0") == 0)
        return md_fail(err, MD_E_BAD_REQUEST, "Transfer-Encoding",
                       "Transfer-Encoding is not allowed in an HTTP/1.0 request");
    for (size_t i = 1; i < ncl; i++)
        if (strcmp(cl[i], cl[0]) != 0)
            return md_fail(err, MD_E_BAD_REQUEST, "Content-Length",
                           "the request has Content-Length values that differ");
    return nte > 0 ? check_codings(te, nte, err) : MD_OK;
}

/* Up to FRAMING_MAX lines of each header; more lines than that are refused as a whole. */
#define FRAMING_MAX 8

typedef struct framing_hdrs {
    const char *cl[FRAMING_MAX], *te[FRAMING_MAX];
    size_t ncl, nte;
    bool overflow;
} framing_hdrs;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    framing_hdrs *h = cls;
    bool is_cl = strcasecmp(k, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0;
    bool is_te = strcasecmp(k, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0;
    size_t *n = is_cl ? &h->ncl : is_te ? &h->nte : NULL;
    if (!n)
        return MHD_YES;
    if (*n == FRAMING_MAX) {
        h->overflow = true;
        return MHD_NO;
    }
    (is_cl ? h->cl : h->te)[(*n)++] = v ? v : "";
    return MHD_YES;
}

int http__check_framing(struct MHD_Connection *c, const char *version, md_err *err)
{
    framing_hdrs h = {0};
    /* every header line, duplicates included (MHD_lookup_connection_value sees the first) */
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect, &h);
    if (h.overflow)
        return md_fail(err, MD_E_BAD_REQUEST,
                       h.nte == FRAMING_MAX ? "Transfer-Encoding" : "Content-Length",
                       "too many Content-Length or Transfer-Encoding lines");
    return http__framing_verdict(version, h.cl, h.ncl, h.te, h.nte, err);
}
