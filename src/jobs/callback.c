/* callback.c - signed POSTs to a client's URL when its job ends (issue 11 §4; the contract is
 * in jobs.h, "callbacks"), with retries whose state is kept in the store (store/callbacks.c).
 *
 * HTTP client: libcurl (Debian's libcurl4-openssl-dev). The receivers are the clients' own
 * servers, often behind https with certificates to verify, and the delivery must be bounded
 * in time (connect and total timeouts) and must not follow redirects: curl gives all of that
 * tested; our cli/httpc.c is plain http only and sits above this layer.
 *
 * One try of a callback, with the function making each step:
 *
 *     PENDING (job terminal, next_try_ms <= now)
 *        |  store_callback_claim (attempts + 1, leased until now + timeout)
 *        v
 *     trying --- 2xx -------------------------------------------> DELIVERED
 *        |  \--- failed, attempts == callback_attempts ---------> FAILED
 *        |   \-- URL no longer allowed, job swept --------------> FAILED
 *        \------ failed, attempts left: next_try_ms = now + backoff -> PENDING
 *     (a process that dies while trying leaves the row PENDING; the try is made again when
 *      its lease ran out)
 *
 * Invariants:
 *   1. Nothing is sent to a URL that fails job_callback_check_url at the time of the try.
 *   2. Each try is claimed by one compare-and-set (store/callbacks.c invariant 1): two
 *      processes never make the same try.
 *   3. The body is built from the job row alone, so every try sends the same bytes; only the
 *      signature's t changes.
 */
#include "jobs/jobs_int.h"

#include "base/buf.h"
#include "base/log.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DUE_PER_TICK 16
#define MAX_BACKOFF_MS (3600LL * 1000)
#define BODY_MAX (STORE_JOB_PARAMS_MAX + STORE_JOB_META_MAX + 2048)

/* ---- URL and allow-list --------------------------------------------------------------------- */

typedef struct url_parts {
    char host[256]; /* lower case, without brackets for IPv6 */
    int port;       /* explicit port, or the scheme's (80, 443) */
} url_parts;

static int bad_url(md_err *err, const char *why)
{
    return md_fail(err, MD_E_INVALID_PARAM, "callback_url", "%s", why);
}

/* Split "http[s]://host[:port][/...]" into host and port. */
static int parse_url(const char *url, url_parts *u, md_err *err)
{
    const char *p;
    int default_port;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        default_port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        default_port = 443;
    } else
        return bad_url(err, "must be an http:// or https:// URL");
    for (const char *c = url; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return bad_url(err, "must not contain spaces or control characters");
    }
    size_t alen = strcspn(p, "/?#");
    const char *end = p + alen;
    if (memchr(p, '@', alen))
        return bad_url(err, "must not contain user information");
    const char *host = p, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end)
            return bad_url(err, "has an unclosed '[' in its host");
        p = host_end + 1;
    } else {
        host_end = memchr(p, ':', alen) ? memchr(p, ':', alen) : end;
        p = host_end;
    }
    if (host_end == host || (size_t)(host_end - host) >= sizeof u->host)
        return bad_url(err, "has no host, or one too long");
    for (size_t i = 0; i < (size_t)(host_end - host); i++)
        u->host[i] = (char)tolower((unsigned char)host[i]);
    u->host[host_end - host] = '\0';
    u->port = default_port;
    if (p < end && *p == ':') {
        long port = 0;
        for (p++; p < end && isdigit((unsigned char)*p) && port <= 65535; p++)
            port = port * 10 + (*p - '0');
        if (p != end || port < 1 || port > 65535)
            return bad_url(err, "has a bad port (1..65535)");
        u->port = (int)port;
    } else if (p != end) {
        return bad_url(err, "has a malformed host");
    }
    return MD_OK;
}

/* Does one allow-list entry match u? Entries: "host", "host:port", "[v6]", "[v6]:port" (spaces
 * around are ignored); one without a port allows every port. */
static int entry_matches(const char *e, size_t n, const url_parts *u)
{
    while (n && isspace((unsigned char)*e)) {
        e++;
        n--;
    }
    while (n && isspace((unsigned char)e[n - 1]))
        n--;
    const char *h = e, *rest = e + n;
    size_t hn = n;
    if (n && e[0] == '[') {
        const char *rb = memchr(e, ']', n);
        if (!rb)
            return 0;
        h = e + 1;
        hn = (size_t)(rb - h);
        rest = rb + 1;
    } else {
        const char *colon = memchr(e, ':', n);
        if (colon && !memchr(colon + 1, ':', (size_t)(e + n - colon - 1))) {
            hn = (size_t)(colon - e); /* host:port; several colons: a bare IPv6 address */
            rest = colon;
        }
    }
    if (hn == 0 || hn != strlen(u->host) || strncasecmp(h, u->host, hn) != 0)
        return 0;
    if (rest == e + n)
        return 1;
    if (*rest != ':' || rest + 1 == e + n)
        return 0;
    int port = 0;
    for (const char *p = rest + 1; p < e + n; p++) {
        if (!isdigit((unsigned char)*p) || port > 65535)
            return 0;
        port = port * 10 + (*p - '0');
    }
    return port == u->port;
}

int job_callback_check_url(const char *allow_hosts, const char *url, md_err *err)
{
    if (!url || !url[0])
        return md_fail(err, MD_E_MISSING_FIELD, "callback_url", "required");
    if (strlen(url) >= STORE_SCHED_URL_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "callback_url", "longer than %d bytes",
                       STORE_SCHED_URL_MAX - 1);
    url_parts u;
    int rc = parse_url(url, &u, err);
    if (rc != MD_OK)
        return rc;
    if (!allow_hosts || !allow_hosts[0])
        return bad_url(err, "callbacks are disabled: no host is allowed (callback_allow_hosts)");
    for (const char *s = allow_hosts;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (entry_matches(s, n, &u))
            return MD_OK;
        if (!comma)
            break;
        s = comma + 1;
    }
    return md_fail(err, MD_E_INVALID_PARAM, "callback_url",
                   "host %s is not on the callback allow-list", u.host);
}

/* ---- body and signature --------------------------------------------------------------------- */

int job_callback_sign(const char *secret, int64_t t, const char *body, size_t n, char *out,
                      size_t cap)
{
    if (cap < JOB_CB_SIG_MAX)
        return MD_E_INTERNAL;
    char ts[24];
    int tn = snprintf(ts, sizeof ts, "%lld.", (long long)t);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char hex[2 * crypto_auth_hmacsha256_BYTES + 1];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)tn);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, (unsigned long long)n);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, cap, "t=%lld,v1=%s", (long long)t, hex);
    return MD_OK;
}

/* The body for job row r (invariant 3). *out is new (free()). */
static int build_body(const job_info *r, char **out, size_t *n)
{
    md_buf b;
    md_buf_init(&b, BODY_MAX);
    int rc = md_buf_puts(&b, "{\"job_id\":");
    rc = rc ? rc : md_buf_put_json_str(&b, r->id);
    rc = rc ? rc : md_buf_puts(&b, ",\"kind\":");
    rc = rc ? rc : md_buf_put_json_str(&b, r->kind);
    rc = rc ? rc
            : md_buf_printf(&b, ",\"state\":\"%s\",\"completed_ms\":%lld,\"error\":",
                            job_state_name(r->state), (long long)r->completed_ms);
    if (r->error_code[0]) {
        rc = rc ? rc : md_buf_puts(&b, "{\"code\":");
        rc = rc ? rc : md_buf_put_json_str(&b, r->error_code);
        rc = rc ? rc : md_buf_puts(&b, ",\"message\":");
        rc = rc ? rc : md_buf_put_json_str(&b, r->error_message);
        rc = rc ? rc : md_buf_puts(&b, "}");
    } else {
        rc = rc ? rc : md_buf_puts(&b, "null");
    }
    rc = rc ? rc
            : md_buf_printf(&b, ",\"params\":%s,\"result_meta\":%s}",
                            r->params[0] ? r->params : "{}",
                            r->result_meta[0] ? r->result_meta : "{}");
    if (rc == MD_OK)
        *out = md_buf_steal(&b, n);
    md_buf_free(&b);
    return rc == MD_OK && *out ? MD_OK : MD_E_NOMEM;
}

/* ---- one POST ------------------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* POST body to url; MD_OK for a 2xx answer, else MD_E_UNAVAILABLE with why in errbuf. */
static int post(const jobs *j, const char *url, const char *body, size_t n, const char *job_id,
                const char *sig, const char *traceparent, char *why, size_t why_cap)
{
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(why, why_cap, "out of memory");
        return MD_E_NOMEM;
    }
    char h_sig[128], h_id[80], h_tp[80], curl_err[CURL_ERROR_SIZE] = "";
    snprintf(h_sig, sizeof h_sig, "X-Modeld-Signature: %s", sig);
    snprintf(h_id, sizeof h_id, "X-Modeld-Job-Id: %s", job_id);
    snprintf(h_tp, sizeof h_tp, "traceparent: %s", traceparent);
    const char *lines[] = {"Content-Type: application/json", h_sig, h_id,
                           "Expect:" /* no 100-continue round trip */, h_tp};
    size_t nlines = sizeof lines / sizeof lines[0] - (traceparent[0] ? 0 : 1); /* h_tp last */
    struct curl_slist *hdrs = NULL;
    bool hdrs_ok = true;
    for (size_t i = 0; i < nlines && hdrs_ok; i++) {
        struct curl_slist *t = curl_slist_append(hdrs, lines[i]);
        hdrs_ok = t != NULL;
        hdrs = t ? t : hdrs;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "modeld-callback/1");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* the allow-list names the host we reach */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)j->o.callback_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)j->o.callback_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode cc = hdrs_ok ? curl_easy_perform(c) : CURLE_OUT_OF_MEMORY;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        snprintf(why, why_cap, "%s", curl_err[0] ? curl_err : curl_easy_strerror(cc));
        return MD_E_UNAVAILABLE;
    }
    if (status < 200 || status > 299) {
        snprintf(why, why_cap, "the receiver answered %ld", status);
        return MD_E_UNAVAILABLE;
    }
    return MD_OK;
}

/* ---- tries ---------------------------------------------------------------------------------- */

/* A try joins the job's trace: a CLIENT span "job callback" whose context the receiver gets in
 * `traceparent` (the submitter's own context when tracing is off); tp stays "" for a job
 * without a trace. Returns the span (NULL when off). */
static tr_span *callback_span(const job_info *row, char tp[TR_TRACEPARENT_LEN + 1])
{
    tr_ctx parent;
    if (!tr_parse(row->traceparent, strlen(row->traceparent), &parent))
        return NULL;
    tr_span *s = tr_span_start("job callback", TR_KIND_CLIENT, &parent);
    tr_span_attr_str(s, "modeld.job.id", row->id);
    tr_format(s ? tr_span_ctx(s) : &parent, tp);
    return s;
}

/* Send the claimed try of cb (attempts already counted). why gets the failure. */
static int try_send(jobs *j, const store_callback *cb, int64_t now_ms, char *why, size_t cap)
{
    md_err e = {0};
    job_info *row = malloc(sizeof *row);
    if (!row)
        return MD_E_NOMEM;
    int rc = job_callback_check_url(j->cb_allow, cb->url, &e);
    if (rc == MD_OK)
        rc = job_get(j, cb->job_id, row, &e);
    if (rc != MD_OK) {
        snprintf(why, cap, "%s", md_err_message(&e));
        free(row);
        return MD_E_CONFLICT; /* final: no try can succeed */
    }
    char *body = NULL, sig[JOB_CB_SIG_MAX], tp[TR_TRACEPARENT_LEN + 1] = "";
    size_t n = 0;
    tr_span *span = callback_span(row, tp);
    rc = build_body(row, &body, &n);
    free(row);
    if (rc == MD_OK)
        rc = job_callback_sign(j->cb_secret, now_ms / 1000, body, n, sig, sizeof sig);
    if (rc == MD_OK)
        rc = post(j, cb->url, body, n, cb->job_id, sig, tp, why, cap);
    else
        snprintf(why, cap, "cannot build the body");
    free(body);
    tr_span_status(span, rc);
    tr_span_end(span);
    return rc;
}

/* Claim, send and record one due try; *ok when it was delivered. */
static int deliver_one(jobs *j, const store_callback *cb, int64_t now_ms, bool *ok, md_err *err)
{
    *ok = false;
    int64_t lease = now_ms + j->o.callback_timeout_ms + 5000;
    int rc = store_callback_claim(j->s, cb->job_id, cb->attempts, lease, err);
    if (rc == MD_E_CONFLICT)
        return MD_OK; /* another process makes this try (invariant 2) */
    if (rc != MD_OK)
        return rc;
    char why[256] = "";
    int sent = try_send(j, cb, now_ms, why, sizeof why);
    int tries = cb->attempts + 1;
    int state = STORE_CB_PENDING;
    int64_t next = 0;
    if (sent == MD_OK)
        state = STORE_CB_DELIVERED;
    else if (sent == MD_E_CONFLICT || tries >= j->o.callback_attempts)
        state = STORE_CB_FAILED;
    else {
        int64_t delay = j->o.callback_backoff_ms;
        for (int i = 1; i < tries && delay < MAX_BACKOFF_MS; i++)
            delay *= 2;
        next = now_ms + (delay < MAX_BACKOFF_MS ? delay : MAX_BACKOFF_MS);
    }
    if (sent != MD_OK)
        md_log(MD_LOG_WARN, "jobs: callback of %s, try %d: %s", cb->job_id, tries, why);
    *ok = sent == MD_OK;
    return store_callback_finish(j->s, cb->job_id, state, next, why, err);
}

int job_callback_tick(jobs *j, size_t *delivered, md_err *err)
{
    int64_t now_ms = md_clock_wall_ms(j->clock);
    store_callback *due = NULL;
    size_t n = 0, count = 0;
    int rc = store_callback_due(j->s, now_ms, DUE_PER_TICK, &due, &n, err);
    for (size_t i = 0; rc == MD_OK && i < n; i++) {
        bool ok = false;
        md_err e;
        if (deliver_one(j, &due[i], now_ms, &ok, &e) != MD_OK)
            md_log(MD_LOG_WARN, "jobs: callback of %s: %s", due[i].job_id, md_err_message(&e));
        count += ok;
    }
    free(due);
    if (delivered)
        *delivered = count;
    return rc;
}

int job_callback_get(jobs *j, const char *job_id, job_callback *out, md_err *err)
{
    return store_callback_get(j->s, job_id, out, err);
}
