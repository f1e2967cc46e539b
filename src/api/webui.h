/* webui.h - serves the web page (the flat web/ directory: index.html, app.css, app.js) at "/",
 * and any other fixed set of static files under a prefix (the API docs page at "/docs", docs.h).
 *
 * The files are read once at start-up into memory, each with a content hash for its ETag, so a
 * request never touches the file system and a URL can never name a file outside that set (no
 * path is ever built from a request). Answers carry the right Content-Type, caching headers
 * (the page revalidates on every load, assets are cached briefly and revalidated by ETag) and a
 * Content-Security-Policy that lets the page load only its own scripts and styles.
 */
#ifndef MD_API_WEBUI_H
#define MD_API_WEBUI_H

#include "base/err.h"
#include "http/http.h"

typedef struct api_webui api_webui;

#define WEBUI_FILE_MAX (2u << 20)   /* bytes per file */
#define WEBUI_TOTAL_MAX (16u << 20) /* bytes in all */

/* Directory to serve: dir when non-NULL and non-empty (the web_dir setting, which also comes
 * from MODELD_WEB_DIR), else the first of
 * <exe>/../../web, <exe>/../web, <exe>/../share/modeld/web, ./web and the source tree's web/
 * (a build-time path) that holds an index.html.
 * Writes it into out (cap bytes); MD_E_FILE_NOT_FOUND when none is found. */
int api_webui_find_dir(const char *dir, char *out, size_t cap, md_err *err);

/* Load every regular file with a known web extension from dir (not recursive). *out is new
 * (api_webui_free). MD_E_FILE_NOT_FOUND without index.html, MD_E_TOO_LARGE past the limits. */
int api_webui_load(const char *dir, api_webui **out, md_err *err);
/* NULL is a no-op. Only after the server that serves it is freed. */
void api_webui_free(api_webui *ui);

/* Load exactly the named files (NULL-terminated list of plain names with a known extension)
 * from dir; no index.html needed. *out is new. MD_E_IO / MD_E_TOO_LARGE name the file. */
int api_webui_load_list(const char *dir, const char *const *names, api_webui **out, md_err *err);
/* Add a file held in memory (data copied), e.g. a page made by the program. Before registering. */
int api_webui_add(api_webui *ui, const char *name, const void *data, size_t len, md_err *err);
/* Content-Security-Policy of the set's HTML answers (default: the web page's own, which allows
 * only the page's files). csp is borrowed for ever: static storage. */
void api_webui_set_csp(api_webui *ui, const char *csp);

/* Add GET "/" and GET "/{file}" (public). ui is borrowed until http_server_free. */
int api_webui_register(http_server *srv, api_webui *ui, md_err *err);
/* Add GET <prefix> (index.html) and GET <prefix>/{file} (public), described by index_doc and
 * file_doc (borrowed until http_server_free). prefix "" is the site root. */
int api_webui_register_at(http_server *srv, api_webui *ui, const char *prefix,
                          const http_doc *index_doc, const http_doc *file_doc, md_err *err);

/* Number of files loaded (for the start-up log and tests). */
size_t api_webui_count(const api_webui *ui);

#endif
