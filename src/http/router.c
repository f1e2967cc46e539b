/* router.c - route table with path parameters; see http.h for the matching rules.
 *
 * Routes are few (tens), so a linear scan over pre-split patterns beats a tree in simplicity
 * and is still well under a microsecond. Matching never allocates except to copy parameter
 * values into the request arena, and it bounds its work: at most HTTP_MAX_SEGS segments.
 * Invariants:
 *   1. Every pattern starts with '/', has at most HTTP_MAX_SEGS segments, at most
 *      HTTP_MAX_PARAMS parameters, and a {rest*} only as its last segment.
 *   2. route->spec has one letter per segment; comparing two specs with strcmp orders routes
 *      that match the same path from least to most specific.
 */
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct seg_view {
    const char *p;
    size_t n;
} seg_view;

void http__router_init(http_router *rt) { memset(rt, 0, sizeof *rt); }

static void route_free(http_route *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i].text);
    free(r->method);
    free(r->pattern);
    free(r);
}

void http__router_free(http_router *rt)
{
    for (size_t i = 0; i < rt->n; i++)
        route_free(rt->routes[i]);
    free(rt->routes);
    memset(rt, 0, sizeof *rt);
}

/* Split "/a/b/c" into segments; -1 when the path does not start with '/' or has too many. */
static int split(const char *path, seg_view *out)
{
    if (path[0] != '/')
        return -1;
    int n = 0;
    const char *p = path + 1;
    for (;;) {
        if (n == HTTP_MAX_SEGS)
            return -1;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        out[n].p = p;
        out[n].n = len;
        n++;
        if (!e)
            return n;
        p = e + 1;
    }
}

static bool valid_param_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* Compile one pattern segment into r->segs[i]. */
static bool compile_seg(http_route *r, size_t i, seg_view v, bool last, size_t *nparams)
{
    http_seg *sg = &r->segs[i];
    if (v.n >= 2 && v.p[0] == '{' && v.p[v.n - 1] == '}') {
        bool rest = v.n >= 3 && v.p[v.n - 2] == '*';
        size_t nlen = v.n - 2 - (rest ? 1 : 0);
        if (!valid_param_name(v.p + 1, nlen) || (rest && !last) || ++*nparams > HTTP_MAX_PARAMS)
            return false;
        sg->kind = rest ? SEG_REST : SEG_PARAM;
        sg->text = strndup(v.p + 1, nlen);
        r->spec[i] = rest ? 'a' : 'b';
    } else {
        if (memchr(v.p, '{', v.n) || memchr(v.p, '}', v.n))
            return false;
        sg->kind = SEG_LIT;
        sg->text = strndup(v.p, v.n);
        r->spec[i] = 'c';
    }
    return sg->text != NULL;
}

static http_route *compile(const char *method, const char *pattern)
{
    seg_view v[HTTP_MAX_SEGS];
    int n = split(pattern, v);
    http_route *r = calloc(1, sizeof *r);
    if (n < 0 || !r) {
        free(r);
        return NULL;
    }
    r->method = strdup(method);
    r->pattern = strdup(pattern);
    size_t nparams = 0;
    bool ok = r->method && r->pattern;
    for (int i = 0; ok && i < n; i++) {
        ok = compile_seg(r, (size_t)i, v[i], i == n - 1, &nparams);
        r->nsegs = (size_t)i + 1;
    }
    if (!ok) {
        route_free(r);
        return NULL;
    }
    return r;
}

static bool same_route(const http_route *a, const char *method, const char *pattern)
{
    return strcmp(a->method, method) == 0 && strcmp(a->pattern, pattern) == 0;
}

http_route *http__router_add(http_router *rt, const char *method, const char *pattern)
{
    for (size_t i = 0; i < rt->n; i++)
        if (same_route(rt->routes[i], method, pattern))
            return NULL;
    if (rt->n == rt->cap) {
        size_t cap = rt->cap ? rt->cap * 2 : 32;
        http_route **nr = realloc(rt->routes, cap * sizeof *nr);
        if (!nr)
            return NULL;
        rt->routes = nr;
        rt->cap = cap;
    }
    http_route *r = compile(method, pattern);
    if (!r)
        return NULL;
    rt->routes[rt->n++] = r;
    return r;
}

/* Does the pattern match the split path? */
static bool pattern_match(const http_route *r, const seg_view *v, int n)
{
    size_t i = 0;
    for (; i < r->nsegs; i++) {
        const http_seg *sg = &r->segs[i];
        if (sg->kind == SEG_REST)
            return true; /* matches the rest, even nothing */
        if ((int)i >= n)
            return false;
        if (sg->kind == SEG_PARAM) {
            if (v[i].n == 0)
                return false;
            continue;
        }
        if (strlen(sg->text) != v[i].n || memcmp(sg->text, v[i].p, v[i].n) != 0)
            return false;
    }
    return (int)i == n;
}

static bool method_ok(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Is tok one of the entries of a ", "-separated list? */
static bool list_has(const char *list, const char *tok)
{
    size_t tl = strlen(tok);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == tl && memcmp(p, tok, tl) == 0)
            return true;
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return false;
}

/* Add a method to the Allow list once; GET brings HEAD along. */
static void allow_add(char *allow, size_t cap, const char *method)
{
    const char *add[2] = {method, strcmp(method, "GET") == 0 ? "HEAD" : NULL};
    for (int k = 0; k < 2 && add[k]; k++) {
        size_t len = strlen(allow), ml = strlen(add[k]);
        if (list_has(allow, add[k]) || len + ml + 3 > cap)
            continue;
        if (len) {
            memcpy(allow + len, ", ", 2);
            len += 2;
        }
        memcpy(allow + len, add[k], ml + 1);
    }
}

static int fill_params(const http_route *r, const seg_view *v, int n, md_arena *a, http_match *m)
{
    m->nparams = 0;
    for (size_t i = 0; i < r->nsegs; i++) {
        const http_seg *sg = &r->segs[i];
        if (sg->kind == SEG_LIT)
            continue;
        const char *val;
        if (sg->kind == SEG_REST)
            val = (int)i < n ? md_arena_strdup(a, v[i].p) : md_arena_strdup(a, "");
        else
            val = md_arena_strndup(a, v[i].p, v[i].n);
        if (!val)
            return MD_E_NOMEM;
        m->params[m->nparams].k = sg->text;
        m->params[m->nparams].v = val;
        m->nparams++;
    }
    return MD_OK;
}

int http__router_match(const http_router *rt, const char *method, const char *path, md_arena *a,
                       http_match *m)
{
    memset(m, 0, sizeof *m);
    seg_view v[HTTP_MAX_SEGS];
    int n = split(path, v);
    if (n < 0)
        return MD_E_NOT_FOUND;
    http_route *best = NULL;
    bool any = false;
    for (size_t i = 0; i < rt->n; i++) {
        http_route *r = rt->routes[i];
        if (!pattern_match(r, v, n))
            continue;
        any = true;
        if (!method_ok(r->method, method))
            allow_add(m->allow, sizeof m->allow, r->method);
        else if (!best || strcmp(r->spec, best->spec) > 0)
            best = r;
    }
    if (best) {
        m->route = best;
        return fill_params(best, v, n, a, m);
    }
    return any ? MD_E_METHOD_NOT_ALLOWED : MD_E_NOT_FOUND;
}
