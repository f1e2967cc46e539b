/* docs.h - GET /docs: the interactive API page, made with swagger-ui-dist from /openapi.json.
 *
 *   GET /docs          public   the page (HTML made here: it loads /openapi.json, validatorUrl
 * null) GET /docs/{file}   public   swagger-ui.css, swagger-ui-bundle.js,
 * swagger-ui-standalone-preset.js, favicon-32x32.png, favicon-16x16.png and the page's start script
 *
 * swagger-ui-dist is an npm package (pinned in scripts/deps.sh, installed by its build step into
 * build/npm/node_modules/swagger-ui-dist, which git ignores). Its files are read once at start-up
 * and served from memory by our own process, under a Content-Security-Policy that lets the page
 * reach nothing but this server: no CDN, no validator, no request leaves the machine.
 * When the package is not found the server still starts and /docs answers 503 with a page that
 * says how to install it.
 */
#ifndef MD_API_DOCS_H
#define MD_API_DOCS_H

#include "base/err.h"
#include "http/http.h"

#include <stddef.h>

/* The swagger-ui-dist version scripts/deps.sh installs (shown in the 503 page's fix). */
#define API_DOCS_SWAGGER_UI_VERSION "5.36.0"

typedef struct api_docs api_docs;

/* The swagger-ui-dist directory: dir when non-NULL and non-empty (the docs_dir setting, also
 * MODELD_DOCS_DIR), else the first of <exe>/../npm/node_modules/swagger-ui-dist (the build
 * tree's, where deps.sh puts it), <exe>/../share/modeld/swagger-ui-dist, ./build/npm/...,
 * and the source tree's build/npm/... (a build-time path) that holds swagger-ui-bundle.js.
 * Writes it into out (cap bytes); MD_E_FILE_NOT_FOUND when none is found. */
int api_docs_find_dir(const char *dir, char *out, size_t cap, md_err *err);

/* Add the routes above (before the server starts). dir as for api_docs_find_dir. A missing or
 * unreadable package is logged and gives the 503 page, not an error. *out is new: free with
 * api_docs_free after http_server_free(srv). */
int api_docs_register(http_server *srv, const char *dir, api_docs **out, md_err *err);
/* NULL is a no-op. */
void api_docs_free(api_docs *d);

#endif
