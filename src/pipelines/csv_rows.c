/* csv_rows.c - pl_csv_object (pipelines.h): one CSV row as the feature object a predict request
 * would send, shared by bulk prediction (src/api/bulk.c) and retraining (retrain_data.c), so a
 * file's row means the same thing to both.
 *
 * Invariants:
 *   1. An empty cell is an absent column (optional columns become NaN, required ones a 400
 *      naming the column), never "" or 0.
 *   2. A cell that parses whole as a finite number (strtod) is a number; anything else is the
 *      string itself (a category label, or a value the schema then refuses by name).
 */
#include "pipelines/pipelines.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>

/* A CSV cell as JSON (invariants 1 and 2): NULL for an empty one. New reference. */
static json_t *cell(const char *s, size_t n)
{
    if (n == 0)
        return NULL;
    if (isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '+' || s[0] == '.') {
        char *end = NULL;
        double d = strtod(s, &end);
        if (end == s + n && isfinite(d))
            return json_real(d);
    }
    return json_stringn(s, n);
}

json_t *pl_csv_object(const char *const *names, size_t ncols, const char *const *fields,
                      const size_t *lens, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n && i < ncols; i++) {
        json_t *v = cell(fields[i], lens[i]);
        if (v)
            json_object_set_new(o, names[i], v);
    }
    return o;
}
