/* svg.c - vec_doc to SVG 1.1 text (or SVGZ): compact, exact and deterministic.
 *
 * Invariants:
 *   1. Coordinates are rounded once, as absolute values, to path_precision decimals (integers
 *      in units of 10^-precision); relative commands are differences of those integers, so
 *      rounding never accumulates along a path and the output is byte-for-byte reproducible.
 *   2. Numbers take their shortest form ("-.5", "3", "1.25") and separators appear only where
 *      the grammar needs them; a command letter is written only when it changes.
 *   3. Attributes that equal SVG's defaults are left out (fill black, nonzero rule, opacity 1).
 *   4. SVGZ is gzip with a zero timestamp, so it is deterministic too.
 */
#include "vec_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct pw {
    md_buf *b;
    int prec;
    double scale;
    char last_cmd;   /* last command letter written, 0 at a path start */
    int need_sep;    /* the previous token was a number */
    int prev_dot;    /* ... and it contained a decimal point */
    int64_t cx, cy;  /* current point, in rounded units */
    int64_t sx, sy;  /* start of the current sub-path */
    int rc;
} pw;

static int64_t q(const pw *w, double v)
{
    return (int64_t)llround(v * w->scale);
}

/* Shortest text of v * 10^-prec into s; returns the length. */
static int fmt_num(int64_t v, int prec, char *s)
{
    char digits[32];
    int neg = v < 0;
    uint64_t a = neg ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + a % 10);
        a /= 10;
    } while (a);
    while (nd <= prec)
        digits[nd++] = '0';
    int frac = prec, lo = 0; /* strip trailing fractional zeros */
    while (frac > 0 && digits[lo] == '0') {
        lo++;
        frac--;
    }
    int n = 0;
    if (neg && !(nd - prec == 1 && digits[nd - 1] == '0' && frac == 0))
        s[n++] = '-';
    int ip = nd - prec; /* integer digits */
    if (!(ip == 1 && digits[nd - 1] == '0' && frac > 0))
        for (int i = nd - 1; i >= nd - ip; i--)
            s[n++] = digits[i];
    if (frac > 0) {
        s[n++] = '.';
        for (int i = prec - 1; i >= lo; i--)
            s[n++] = digits[i];
    }
    if (n == 0 || (n == 1 && s[0] == '-'))
        n = 0, s[n++] = '0';
    s[n] = '\0';
    return n;
}

static void put_num(pw *w, int64_t v)
{
    char s[40];
    int n = fmt_num(v, w->prec, s);
    int has_dot = memchr(s, '.', (size_t)n) != NULL;
    if (w->need_sep && s[0] != '-' && !(s[0] == '.' && w->prev_dot))
        w->rc = w->rc ? w->rc : md_buf_putc(w->b, ' ');
    w->rc = w->rc ? w->rc : md_buf_append(w->b, s, (size_t)n);
    w->need_sep = 1;
    w->prev_dot = has_dot;
}

static void put_cmd(pw *w, char c)
{
    /* A repeated letter may be omitted, and after 'm' the implicit command is 'l'; 'M', 'm'
     * and 'z' are always written. */
    int implicit = (c == w->last_cmd && c != 'z' && c != 'm' && c != 'M') ||
                   (c == 'l' && w->last_cmd == 'm');
    if (!implicit) {
        w->rc = w->rc ? w->rc : md_buf_putc(w->b, c);
        w->need_sep = 0;
    }
    w->last_cmd = c;
}

static void seg_move(pw *w, const vec_seg *s, int first)
{
    int64_t x = q(w, s->pt[0][0]), y = q(w, s->pt[0][1]);
    if (first) {
        put_cmd(w, 'M');
        put_num(w, x);
        put_num(w, y);
    } else {
        put_cmd(w, 'm');
        put_num(w, x - w->cx);
        put_num(w, y - w->cy);
    }
    w->cx = w->sx = x;
    w->cy = w->sy = y;
}

static void seg_line(pw *w, int64_t x, int64_t y)
{
    int64_t dx = x - w->cx, dy = y - w->cy;
    if (dx == 0 && dy == 0)
        return;
    if (dy == 0) {
        put_cmd(w, 'h');
        put_num(w, dx);
    } else if (dx == 0) {
        put_cmd(w, 'v');
        put_num(w, dy);
    } else {
        put_cmd(w, 'l');
        put_num(w, dx);
        put_num(w, dy);
    }
    w->cx = x;
    w->cy = y;
}

static void seg_cubic(pw *w, const vec_seg *s)
{
    int64_t p[3][2];
    for (int i = 0; i < 3; i++) {
        p[i][0] = q(w, s->pt[i][0]);
        p[i][1] = q(w, s->pt[i][1]);
    }
    put_cmd(w, 'c');
    for (int i = 0; i < 3; i++) {
        put_num(w, p[i][0] - w->cx);
        put_num(w, p[i][1] - w->cy);
    }
    w->cx = p[2][0];
    w->cy = p[2][1];
}

static void path_data(pw *w, const vec_path *p)
{
    w->last_cmd = 0;
    w->need_sep = 0;
    int first = 1;
    for (size_t i = 0; i < p->nseg; i++) {
        const vec_seg *s = &p->segs[i];
        switch (s->kind) {
        case VEC_SEG_MOVE:
            seg_move(w, s, first);
            first = 0;
            break;
        case VEC_SEG_LINE: {
            int64_t x = q(w, s->pt[0][0]), y = q(w, s->pt[0][1]);
            int closing = i + 1 < p->nseg && p->segs[i + 1].kind == VEC_SEG_CLOSE;
            if (!(closing && x == w->sx && y == w->sy)) /* 'z' draws that line */
                seg_line(w, x, y);
            break;
        }
        case VEC_SEG_CUBIC:
            seg_cubic(w, s);
            break;
        case VEC_SEG_CLOSE:
            put_cmd(w, 'z');
            w->cx = w->sx;
            w->cy = w->sy;
            break;
        }
    }
}

static void put_color(pw *w, const uint8_t *c)
{
    int shorthand = 1;
    for (int k = 0; k < 3; k++)
        shorthand &= (c[k] >> 4) == (c[k] & 15);
    if (shorthand)
        w->rc = w->rc ? w->rc : md_buf_printf(w->b, "#%x%x%x", c[0] & 15, c[1] & 15, c[2] & 15);
    else
        w->rc = w->rc ? w->rc : md_buf_printf(w->b, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* An attribute with a coordinate value: name="number". */
static void put_attr_num(pw *w, const char *name, double v)
{
    w->rc = w->rc ? w->rc : md_buf_printf(w->b, " %s=\"", name);
    w->need_sep = 0;
    put_num(w, q(w, v));
    w->rc = w->rc ? w->rc : md_buf_putc(w->b, '"');
}

static void put_gradient(pw *w, const vec_paint *g, size_t id)
{
    int lin = g->kind == VEC_PAINT_LINEAR;
    w->rc = w->rc ? w->rc : md_buf_printf(w->b, "<%s id=\"g%zu\" gradientUnits=\"userSpaceOnUse\"",
                                          lin ? "linearGradient" : "radialGradient", id);
    if (lin) {
        put_attr_num(w, "x1", g->x1);
        put_attr_num(w, "y1", g->y1);
        put_attr_num(w, "x2", g->x2);
        put_attr_num(w, "y2", g->y2);
    } else {
        put_attr_num(w, "cx", g->x1);
        put_attr_num(w, "cy", g->y1);
        put_attr_num(w, "r", g->x2);
    }
    w->rc = w->rc ? w->rc : md_buf_putc(w->b, '>');
    for (int i = 0; i < g->nstops && i < VEC_MAX_STOPS; i++) {
        char off[40];
        fmt_num((int64_t)llround(g->stops[i].offset * 1000.0), 3, off);
        w->rc = w->rc ? w->rc : md_buf_printf(w->b, "<stop offset=\"%s\" stop-color=\"", off);
        put_color(w, g->stops[i].rgba);
        w->rc = w->rc ? w->rc : md_buf_putc(w->b, '"');
        if (g->stops[i].rgba[3] < 255) {
            fmt_num((int64_t)llround(g->stops[i].rgba[3] / 255.0 * 1000.0), 3, off);
            w->rc = w->rc ? w->rc : md_buf_printf(w->b, " stop-opacity=\"%s\"", off);
        }
        w->rc = w->rc ? w->rc : md_buf_puts(w->b, "/>");
    }
    w->rc = w->rc ? w->rc : md_buf_printf(w->b, "</%s>", lin ? "linearGradient" : "radialGradient");
}

static void put_path(pw *w, const vec_path *p, size_t gid)
{
    w->rc = w->rc ? w->rc : md_buf_puts(w->b, "<path d=\"");
    path_data(w, p);
    w->rc = w->rc ? w->rc : md_buf_putc(w->b, '"');
    const vec_paint *f = &p->fill;
    if (f->kind != VEC_PAINT_SOLID) {
        w->rc = w->rc ? w->rc : md_buf_printf(w->b, " fill=\"url(#g%zu)\"", gid);
    } else if (f->rgba[0] | f->rgba[1] | f->rgba[2]) {
        w->rc = w->rc ? w->rc : md_buf_puts(w->b, " fill=\"");
        put_color(w, f->rgba);
        w->rc = w->rc ? w->rc : md_buf_putc(w->b, '"');
    }
    if (f->kind == VEC_PAINT_SOLID && f->rgba[3] < 255) {
        char op[40];
        fmt_num((int64_t)llround(f->rgba[3] / 255.0 * 1000.0), 3, op);
        w->rc = w->rc ? w->rc : md_buf_printf(w->b, " fill-opacity=\"%s\"", op);
    }
    if (p->evenodd)
        w->rc = w->rc ? w->rc : md_buf_puts(w->b, " fill-rule=\"evenodd\"");
    w->rc = w->rc ? w->rc : md_buf_puts(w->b, "/>");
}

static int write_text(const vec_doc *d, int prec, md_buf *b)
{
    pw w = {.b = b, .prec = prec, .scale = pow(10.0, prec)};
    w.rc = md_buf_printf(b,
                         "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
                         "height=\"%d\" viewBox=\"0 0 %d %d\">",
                         d->width, d->height, d->width, d->height);
    size_t ngrad = 0;
    for (size_t i = 0; i < d->npaths; i++)
        if (d->paths[i].fill.kind != VEC_PAINT_SOLID) {
            w.rc = w.rc ? w.rc : md_buf_puts(b, ngrad ? "" : "<defs>");
            put_gradient(&w, &d->paths[i].fill, ngrad++);
        }
    if (ngrad)
        w.rc = w.rc ? w.rc : md_buf_puts(b, "</defs>");
    size_t gid = 0;
    for (size_t i = 0; i < d->npaths; i++) {
        put_path(&w, &d->paths[i], gid);
        gid += d->paths[i].fill.kind != VEC_PAINT_SOLID;
    }
    return w.rc ? w.rc : md_buf_puts(b, "</svg>\n");
}

/* gzip src into out (appended), deterministic: zlib writes a zero mtime and no file name. */
static int gzip_append(const char *src, size_t n, md_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return MD_E_NOMEM;
    uLong bound = deflateBound(&z, (uLong)n);
    unsigned char *tmp = malloc(bound ? bound : 1);
    int rc = tmp ? MD_OK : MD_E_NOMEM;
    if (rc == MD_OK) {
        z.next_in = (Bytef *)(uintptr_t)src;
        z.avail_in = (uInt)n;
        z.next_out = tmp;
        z.avail_out = (uInt)bound;
        rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? MD_OK : MD_E_INTERNAL;
    }
    if (rc == MD_OK)
        rc = md_buf_append(out, tmp, z.total_out);
    deflateEnd(&z);
    free(tmp);
    return rc;
}

int vec_svg_write(const vec_doc *d, const vec_params *p, md_buf *out, md_err *err)
{
    if (d == NULL || p == NULL || out == NULL)
        return md_fail(err, MD_E_BAD_REQUEST, NULL, "nothing to write");
    if (p->path_precision < 0 || p->path_precision > 8)
        return md_fail(err, MD_E_INVALID_PARAM, "path_precision",
                       "path_precision must be an integer in 0..8, got %d", p->path_precision);
    if (!p->svgz) {
        int rc = write_text(d, p->path_precision, out);
        return rc == MD_OK ? MD_OK : md_fail(err, rc, NULL, "cannot write the SVG");
    }
    md_buf text;
    md_buf_init(&text, out->max);
    int rc = write_text(d, p->path_precision, &text);
    if (rc == MD_OK)
        rc = gzip_append(text.data, text.len, out);
    md_buf_free(&text);
    return rc == MD_OK ? MD_OK : md_fail(err, rc, NULL, "cannot write the SVGZ");
}
