/* webui.c - a set of static files held in memory and served under a prefix (see webui.h): the
 * web page at "/", and the API docs page (swagger-ui-dist, docs.c) at "/docs".
 *
 * Invariants:
 *   1. The file set is fixed before the routes are registered (api_webui_load, _load_list,
 *      _add); handlers only read it, so no lock is needed.
 *   2. A request names a file only by exact match against that set: request paths never reach
 *      the file system.
 *   3. Every answer says what it is (Content-Type with charset for text) and forbids sniffing.
 */
#include "api/webui.h"

#include "api/api_int.h"
#include "base/log.h"

#include <dirent.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct web_file {
    char name[64];
    const char *type;  /* static */
    const char *cache; /* Cache-Control value, static */
    char etag[36];     /* "\"<32 hex>\"" */
    char *data;        /* owned */
    size_t len;
} web_file;

#define WEBUI_FILES_MAX 32
#define WEBUI_LIGHT_MAX (256u << 10) /* bytes: larger files are served from the compute pool */

struct api_webui {
    web_file files[WEBUI_FILES_MAX];
    size_t n;
    size_t total;    /* bytes held, bounded by WEBUI_TOTAL_MAX */
    const char *csp; /* Content-Security-Policy of HTML answers; static */
};

/* The page may load only its own files; blob: and data: images are its previews. */
static const char CSP[] = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                          "script-src 'self'; connect-src 'self'; object-src 'none'; "
                          "base-uri 'none'; frame-ancestors 'none'";

static const struct {
    const char *ext, *type;
} TYPES[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        size_t e = strlen(TYPES[i].ext);
        if (n > e && strcmp(name + n - e, TYPES[i].ext) == 0)
            return TYPES[i].type;
    }
    return NULL;
}

/* ---- finding and loading --------------------------------------------------------------- */

#ifndef MODELD_SOURCE_WEB_DIR
#define MODELD_SOURCE_WEB_DIR NULL
#endif

int api_webui_find_dir(const char *dir, char *out, size_t cap, md_err *err)
{
    static const char *const beside_exe[] = {"../../web", "../web", "../share/modeld/web", NULL};
    static const api__dir_search where = {.beside_exe = beside_exe,
                                          .cwd = "./web",
                                          .source = MODELD_SOURCE_WEB_DIR,
                                          .marker = "index.html"};
    if (api__find_dir(dir, &where, out, cap))
        return MD_OK;
    return md_fail(err, MD_E_FILE_NOT_FOUND, "web_dir",
                   "no web/ directory with an index.html found");
}

/* ETag and caching of a file whose bytes are loaded. */
static void finish_file(web_file *f)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)f->data, f->len);
    f->etag[0] = '"';
    sodium_bin2hex(f->etag + 1, 33, h, 16);
    strcat(f->etag, "\"");
    /* The page itself is revalidated on every load so a new version shows at once; its assets
     * are cached for a few minutes and then revalidated by ETag (there is no build step to give
     * them content-hashed names). */
    f->cache = strcmp(f->name, "index.html") == 0 ? "no-cache" : "public, max-age=300";
}

/* Read one file into f (name already set). */
static int load_file(const char *dir, web_file *f, size_t *total, md_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return md_fail(err, MD_E_IO, "web_dir", "cannot read web file %s", f->name);
    struct stat st;
    int rc = MD_OK;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size > WEBUI_FILE_MAX || *total + (size_t)st.st_size > WEBUI_TOTAL_MAX)
        rc = md_fail(err, MD_E_TOO_LARGE, "web_dir", "web file %s is not a file or too large",
                     f->name);
    if (rc == MD_OK && (f->data = malloc((size_t)st.st_size + 1)) == NULL)
        rc = MD_E_NOMEM;
    if (rc == MD_OK && fread(f->data, 1, (size_t)st.st_size, fp) != (size_t)st.st_size)
        rc = md_fail(err, MD_E_IO, "web_dir", "short read of web file %s", f->name);
    fclose(fp);
    if (rc != MD_OK)
        return rc;
    f->len = (size_t)st.st_size;
    *total += f->len;
    finish_file(f);
    return MD_OK;
}

static int name_ok(const char *n)
{
    size_t len = strlen(n);
    return len > 0 && len < 64 && n[0] != '.' &&
           strspn(n, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

static api_webui *webui_new(void)
{
    api_webui *ui = calloc(1, sizeof *ui);
    if (ui)
        ui->csp = CSP;
    return ui;
}

int api_webui_load(const char *dir, api_webui **out, md_err *err)
{
    api_webui *ui = webui_new();
    DIR *d = ui ? opendir(dir) : NULL;
    int rc = ui == NULL ? MD_E_NOMEM
             : d == NULL
                 ? md_fail(err, MD_E_FILE_NOT_FOUND, "web_dir", "cannot open the web directory")
                 : MD_OK;
    struct dirent *de;
    while (rc == MD_OK && (de = readdir(d)) != NULL) {
        if (!name_ok(de->d_name) || type_of(de->d_name) == NULL)
            continue;
        if (ui->n == WEBUI_FILES_MAX) {
            rc = md_fail(err, MD_E_TOO_LARGE, "web_dir", "more than %d web files", WEBUI_FILES_MAX);
            break;
        }
        web_file *f = &ui->files[ui->n++];
        strcpy(f->name, de->d_name);
        f->type = type_of(f->name);
        rc = load_file(dir, f, &ui->total, err);
    }
    if (d)
        closedir(d);
    int found_index = 0;
    for (size_t i = 0; ui && i < ui->n; i++)
        found_index |= strcmp(ui->files[i].name, "index.html") == 0;
    if (rc == MD_OK && !found_index)
        rc = md_fail(err, MD_E_FILE_NOT_FOUND, "web_dir", "the web directory has no index.html");
    if (rc != MD_OK) {
        api_webui_free(ui);
        return rc;
    }
    *out = ui;
    return MD_OK;
}

int api_webui_load_list(const char *dir, const char *const *names, api_webui **out, md_err *err)
{
    api_webui *ui = webui_new();
    int rc = ui ? MD_OK : MD_E_NOMEM;
    for (size_t i = 0; rc == MD_OK && names[i]; i++) {
        if (!name_ok(names[i]) || type_of(names[i]) == NULL || ui->n == WEBUI_FILES_MAX) {
            rc = md_fail(err, MD_E_INVALID_PARAM, "web_dir", "cannot serve a file named %.64s",
                         names[i]);
            break;
        }
        web_file *f = &ui->files[ui->n++];
        strcpy(f->name, names[i]);
        f->type = type_of(f->name);
        rc = load_file(dir, f, &ui->total, err);
    }
    if (rc != MD_OK) {
        api_webui_free(ui);
        return rc;
    }
    *out = ui;
    return MD_OK;
}

int api_webui_add(api_webui *ui, const char *name, const void *data, size_t len, md_err *err)
{
    if (!name_ok(name) || type_of(name) == NULL || ui->n == WEBUI_FILES_MAX ||
        len > WEBUI_FILE_MAX || ui->total + len > WEBUI_TOTAL_MAX)
        return md_fail(err, MD_E_INVALID_PARAM, "web_dir", "cannot add a file named %.64s", name);
    web_file *f = &ui->files[ui->n];
    memset(f, 0, sizeof *f);
    if ((f->data = malloc(len + 1)) == NULL)
        return MD_E_NOMEM;
    memcpy(f->data, data, len);
    f->data[len] = '\0';
    strcpy(f->name, name);
    f->type = type_of(name);
    f->len = len;
    ui->total += len;
    ui->n++;
    finish_file(f);
    return MD_OK;
}

void api_webui_set_csp(api_webui *ui, const char *csp)
{
    ui->csp = csp;
}

void api_webui_free(api_webui *ui)
{
    if (ui == NULL)
        return;
    for (size_t i = 0; i < ui->n; i++)
        free(ui->files[i].data);
    free(ui);
}

size_t api_webui_count(const api_webui *ui)
{
    return ui ? ui->n : 0;
}

/* ---- serving --------------------------------------------------------------------------- */

static const web_file *lookup(const api_webui *ui, const char *name)
{
    for (size_t i = 0; i < ui->n; i++)
        if (strcmp(ui->files[i].name, name) == 0)
            return &ui->files[i];
    return NULL;
}

/* If-None-Match holds f's ETag (a list or "*"). */
static int not_modified(http_req *req, const web_file *f)
{
    const char *inm = http_req_header(req, "If-None-Match");
    return inm && (strstr(inm, f->etag) != NULL || strcmp(inm, "*") == 0);
}

static int serve_file(http_req *req, void *ctx)
{
    const api_webui *ui = ctx;
    const char *name = http_req_param(req, "file");
    const web_file *f = lookup(ui, name && *name ? name : "index.html");
    if (f == NULL)
        return md_fail(http_req_err(req), MD_E_NOT_FOUND, NULL, "no such page");
    http_reply_header(req, "ETag", f->etag);
    http_reply_header(req, "Cache-Control", f->cache);
    http_reply_header(req, "X-Content-Type-Options", "nosniff");
    if (strncmp(f->type, "text/html", 9) == 0) {
        http_reply_header(req, "Content-Security-Policy", ui->csp);
        http_reply_header(req, "Referrer-Policy", "no-referrer");
        http_reply_header(req, "X-Frame-Options", "DENY");
    }
    if (not_modified(req, f))
        return http_reply_empty(req, 304);
    return http_reply_bytes(req, 200, f->type, f->data, f->len);
}

int api_webui_register_at(http_server *srv, api_webui *ui, const char *prefix,
                          const http_doc *index_doc, const http_doc *file_doc, md_err *err)
{
    char index[128], files[160];
    snprintf(index, sizeof index, "%s", *prefix ? prefix : "/");
    snprintf(files, sizeof files, "%s/{file}", prefix);
    /* gzip-compressing a big file (swagger-ui's 1.8 MB bundle: ~0.1 s) is more than an I/O
     * thread may spend on one request, so a set with one is served from the compute pool. */
    int big = 0;
    for (size_t i = 0; i < ui->n; i++)
        big |= ui->files[i].len > WEBUI_LIGHT_MAX;
    http_route *ri = http_route_add(srv, "GET", index, HTTP_ROLE_PUBLIC, HTTP_LIGHT | HTTP_NO_AUDIT,
                                    serve_file, ui);
    http_route *rf = http_route_add(srv, "GET", files, HTTP_ROLE_PUBLIC,
                                    (big ? HTTP_HEAVY : HTTP_LIGHT) | HTTP_NO_AUDIT, serve_file, ui);
    if (ri == NULL || rf == NULL)
        return md_fail(err, MD_E_INTERNAL, NULL, "cannot add the routes of %s", index);
    http_route_doc(ri, index_doc);
    http_route_doc(rf, file_doc);
    md_log(MD_LOG_INFO, "static files: %zu served at %s", ui->n, index);
    return MD_OK;
}

static const http_doc WEB_INDEX_DOC = {
    .summary = "The web page",
    .description = "modeld's web page: upload an image, convert it to SVG with the tracer's "
                   "parameters or a preset, compare the result with the original and download it. "
                   "Answers HTML; the page then calls the API with the key typed into it.",
    .tag = "web",
    .response = "{\"type\":\"string\"}",
    .response_type = "text/html",
    .headers = (const http_doc_param[]){{"If-None-Match", "string",
                                          "an ETag from an earlier answer: 304 when unchanged", 0},
                                         {0}},
    .errors = (const int[]){MD_E_NOT_FOUND, 0},
};

static const http_doc WEB_FILE_DOC = {
    .summary = "A file of the web page",
    .description = "The page's own style sheet, script and icons, from memory (the set is read "
                   "once at start-up; a name outside it is 404). Cached for 5 minutes and "
                   "revalidated by ETag.",
    .tag = "web",
    .response = "{\"text/css\":{\"type\":\"string\"},\"text/javascript\":{\"type\":\"string\"},"
                "\"text/html\":{\"type\":\"string\"},\"image/*\":{}}",
    .headers = (const http_doc_param[]){{"If-None-Match", "string",
                                          "an ETag from an earlier answer: 304 when unchanged", 0},
                                         {0}},
    .errors = (const int[]){MD_E_NOT_FOUND, 0},
    .path = (const http_doc_param[]){{"file", "string", "file name, e.g. app.js", 1}, {0}},
};

int api_webui_register(http_server *srv, api_webui *ui, md_err *err)
{
    return api_webui_register_at(srv, ui, "", &WEB_INDEX_DOC, &WEB_FILE_DOC, err);
}
