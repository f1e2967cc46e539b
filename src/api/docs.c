/* docs.c - the interactive API page at /docs (swagger-ui-dist), see docs.h.
 *
 * The page is ours (index.html and docs-init.js below); swagger-ui-dist supplies only the
 * renderer's files, which webui.c holds in memory and serves with ETags like the web page's.
 *
 * Invariants:
 *   1. The page names no other host: every URL in it is an absolute path on this server, the
 *      renderer is told validatorUrl null (it would otherwise send the document to
 *      validator.swagger.io), and the Content-Security-Policy below forbids any other origin
 *      for scripts, styles, images, fonts and fetches.
 *   2. A missing package never stops the server: /docs then answers 503 naming the fix.
 */
#include "api/docs.h"

#include "api/api_int.h"
#include "api/webui.h"
#include "base/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_docs {
    api_webui *files; /* owned; NULL when swagger-ui-dist was not found */
    char dir[PATH_MAX];
};

/* What the page needs from the package (no source maps, no stock index or initializer). */
static const char *const DIST_FILES[] = {"swagger-ui.css",
                                         "swagger-ui-bundle.js",
                                         "swagger-ui-standalone-preset.js",
                                         "index.css",
                                         "favicon-32x32.png",
                                         "favicon-16x16.png",
                                         NULL};

/* swagger-ui sets style attributes from script (so 'unsafe-inline' styles) and inlines its icons
 * as data: URIs; everything else comes from this server only. */
static const char DOCS_CSP[] =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

static const char INDEX_HTML[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "  <meta charset=\"utf-8\">\n"
    "  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "  <title>modeld API</title>\n"
    "  <link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">\n"
    "  <link rel=\"stylesheet\" href=\"/docs/index.css\">\n"
    "  <link rel=\"icon\" type=\"image/png\" href=\"/docs/favicon-32x32.png\" sizes=\"32x32\">\n"
    "  <link rel=\"icon\" type=\"image/png\" href=\"/docs/favicon-16x16.png\" sizes=\"16x16\">\n"
    "</head>\n"
    "<body>\n"
    "  <div id=\"swagger-ui\"></div>\n"
    "  <script src=\"/docs/swagger-ui-bundle.js\"></script>\n"
    "  <script src=\"/docs/swagger-ui-standalone-preset.js\"></script>\n"
    "  <script src=\"/docs/docs-init.js\"></script>\n"
    "</body>\n"
    "</html>\n";

/* A file, not an inline script, so the CSP needs no 'unsafe-inline' for scripts. */
static const char INIT_JS[] =
    "'use strict';\n"
    "// modeld's /docs: the document comes from this server; validatorUrl null keeps it here.\n"
    "window.addEventListener('load', function () {\n"
    "  window.ui = SwaggerUIBundle({\n"
    "    url: '/openapi.json',\n"
    "    dom_id: '#swagger-ui',\n"
    "    validatorUrl: null,\n"
    "    deepLinking: true,\n"
    "    persistAuthorization: false,\n"
    "    displayRequestDuration: true,\n"
    "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],\n"
    "    plugins: [SwaggerUIBundle.plugins.DownloadUrl],\n"
    "    layout: 'StandaloneLayout'\n"
    "  });\n"
    "});\n";

static const char MISSING_HTML[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>modeld API docs: "
    "not installed</title></head>\n<body>\n"
    "<h1>The API docs page is not installed</h1>\n"
    "<p>This page is made with the npm package <code>swagger-ui-dist</code>, which this server did "
    "not find. Install it with the build step of the deps script, from the source tree:</p>\n"
    "<pre>scripts/deps.sh build\n# or: npm install --prefix build/npm "
    "swagger-ui-dist@" API_DOCS_SWAGGER_UI_VERSION "</pre>\n"
    "<p>or point the server at a copy with <code>--docs-dir DIR</code> (or "
    "<code>MODELD_DOCS_DIR</code>), "
    "then restart it.</p>\n"
    "<p>The API document itself is served all the same: <a "
    "href=\"/openapi.json\">/openapi.json</a>.</p>\n"
    "</body>\n</html>\n";

/* ---- finding and loading --------------------------------------------------------------- */

#ifndef MODELD_SOURCE_DOCS_DIR
#define MODELD_SOURCE_DOCS_DIR NULL
#endif

int api_docs_find_dir(const char *dir, char *out, size_t cap, md_err *err)
{
    static const char *const beside_exe[] = {"../npm/node_modules/swagger-ui-dist",
                                             "../share/modeld/swagger-ui-dist", NULL};
    static const api__dir_search where = {.beside_exe = beside_exe,
                                          .cwd = "./build/npm/node_modules/swagger-ui-dist",
                                          .source = MODELD_SOURCE_DOCS_DIR,
                                          .marker = "swagger-ui-bundle.js"};
    if (api__find_dir(dir, &where, out, cap))
        return MD_OK;
    return md_fail(err, MD_E_FILE_NOT_FOUND, "docs_dir", "swagger-ui-dist not found%s%s",
                   dir && *dir ? " in " : "", dir && *dir ? dir : "");
}

static int load(api_docs *d, const char *setting, md_err *err)
{
    int rc = api_docs_find_dir(setting, d->dir, sizeof d->dir, err);
    if (rc == MD_OK)
        rc = api_webui_load_list(d->dir, DIST_FILES, &d->files, err);
    if (rc == MD_OK)
        rc = api_webui_add(d->files, "index.html", INDEX_HTML, sizeof INDEX_HTML - 1, err);
    if (rc == MD_OK)
        rc = api_webui_add(d->files, "docs-init.js", INIT_JS, sizeof INIT_JS - 1, err);
    if (rc == MD_OK)
        api_webui_set_csp(d->files, DOCS_CSP);
    return rc;
}

/* ---- routes ------------------------------------------------------------------------------ */

static int missing_page(http_req *req, void *ctx)
{
    (void)ctx;
    http_reply_header(req, "Cache-Control", "no-store");
    http_reply_header(req, "Content-Security-Policy", "default-src 'none'; base-uri 'none'");
    http_reply_header(req, "X-Content-Type-Options", "nosniff");
    /* The status is the error table's, as for any unavailable service. */
    return http_reply_bytes(req, md_err_status(MD_E_UNAVAILABLE), "text/html; charset=utf-8",
                            MISSING_HTML, sizeof MISSING_HTML - 1);
}

static int missing_file(http_req *req, void *ctx)
{
    (void)ctx;
    return md_fail(
        http_req_err(req), MD_E_UNAVAILABLE, "file",
        "the API docs page is not installed (swagger-ui-dist): run scripts/deps.sh build");
}

static const http_doc INDEX_DOC = {
    .summary = "Interactive API documentation",
    .description =
        "A page made with swagger-ui from /openapi.json: every operation with its "
        "parameters, bodies and errors, and a form to try it (the Authorize button takes "
        "an API key or token). Served entirely by this server. 503 with instructions when "
        "swagger-ui-dist is not installed.",
    .tag = "docs",
    .response = "{\"type\":\"string\"}",
    .response_type = "text/html",
    .headers = (const http_doc_param[]){{"If-None-Match", "string",
                                         "an ETag from an earlier answer: 304 when unchanged", 0},
                                        {0}},
    .errors = (const int[]){MD_E_UNAVAILABLE, 0},
};

static const http_doc FILE_DOC = {
    .summary = "A file of the API documentation page",
    .description =
        "swagger-ui's style sheet, scripts and icons (from swagger-ui-dist) and the page's "
        "start script, from memory; cached for 5 minutes and revalidated by ETag.",
    .tag = "docs",
    .response = "{\"text/css\":{\"type\":\"string\"},\"text/javascript\":{\"type\":\"string\"},"
                "\"text/html\":{\"type\":\"string\"},\"image/png\":{}}",
    .headers = (const http_doc_param[]){{"If-None-Match", "string",
                                         "an ETag from an earlier answer: 304 when unchanged", 0},
                                        {0}},
    .errors = (const int[]){MD_E_NOT_FOUND, MD_E_UNAVAILABLE, 0},
    .path =
        (const http_doc_param[]){{"file",
                                  "{\"type\":\"string\",\"enum\":[\"swagger-ui.css\","
                                  "\"swagger-ui-bundle.js\",\"swagger-ui-standalone-preset.js\","
                                  "\"index.css\",\"docs-init.js\",\"favicon-32x32.png\","
                                  "\"favicon-16x16.png\",\"index.html\"]}",
                                  "file name", 1},
                                 {0}},
};

int api_docs_register(http_server *srv, const char *dir, api_docs **out, md_err *err)
{
    api_docs *d = calloc(1, sizeof *d);
    if (d == NULL)
        return md_fail(err, MD_E_NOMEM, NULL, NULL);
    md_err e2;
    md_err_clear(&e2);
    if (load(d, dir, &e2) != MD_OK) {
        md_log(MD_LOG_WARN,
               "API docs page not served (GET /docs answers 503): %s; install it with "
               "scripts/deps.sh build",
               md_err_message(&e2));
        api_webui_free(d->files);
        d->files = NULL;
    }
    int rc = MD_OK;
    if (d->files) {
        rc = api_webui_register_at(srv, d->files, "/docs", &INDEX_DOC, &FILE_DOC, err);
    } else {
        http_route *ri = http_route_add(srv, "GET", "/docs", HTTP_ROLE_PUBLIC,
                                        HTTP_LIGHT | HTTP_NO_AUDIT, missing_page, d);
        http_route *rf = http_route_add(srv, "GET", "/docs/{file}", HTTP_ROLE_PUBLIC,
                                        HTTP_LIGHT | HTTP_NO_AUDIT, missing_file, d);
        http_route_doc(ri, &INDEX_DOC);
        http_route_doc(rf, &FILE_DOC);
        rc = ri && rf ? MD_OK : md_fail(err, MD_E_INTERNAL, NULL, "cannot add the /docs routes");
    }
    if (rc != MD_OK) {
        api_docs_free(d);
        return rc;
    }
    *out = d;
    return MD_OK;
}

void api_docs_free(api_docs *d)
{
    if (d == NULL)
        return;
    api_webui_free(d->files);
    free(d);
}
