/* render.c - rasterise a vec_doc with cairo at the document's own size, on white.
 *
 * This is how the library measures its own output: the picture it draws must be the one an SVG
 * renderer (librsvg, which also uses cairo) draws from our SVG, so it follows SVG's painting
 * model exactly: paths in document order, each filled with its rule (nonzero or even-odd),
 * solid colours with alpha, linear and radial gradients in user space with "pad" spreading,
 * and cairo's default anti-aliasing as librsvg uses.
 */
#include "vectorize/vec.h"

#include <cairo.h>
#include <math.h>

/* Coordinates beyond this (pixels) cannot come from a sane trace; cairo's fixed-point path
 * representation overflows near 2^23 and NaN poisons its tessellator. */
#define RENDER_MAX_COORD 1e6

static void add_path(cairo_t *cr, const vec_path *p)
{
    cairo_new_path(cr);
    for (size_t i = 0; i < p->nseg; i++) {
        const vec_seg *s = &p->segs[i];
        switch (s->kind) {
        case VEC_SEG_MOVE: cairo_move_to(cr, s->pt[0][0], s->pt[0][1]); break;
        case VEC_SEG_LINE: cairo_line_to(cr, s->pt[0][0], s->pt[0][1]); break;
        case VEC_SEG_CUBIC:
            cairo_curve_to(cr, s->pt[0][0], s->pt[0][1], s->pt[1][0], s->pt[1][1], s->pt[2][0],
                           s->pt[2][1]);
            break;
        case VEC_SEG_CLOSE: cairo_close_path(cr); break;
        }
    }
}

static int bad_coord(float v) { return !isfinite(v) || fabsf(v) > RENDER_MAX_COORD; }

/* Every point a segment uses is finite and within range; gradients too. */
static int doc_is_sane(const vec_doc *d)
{
    for (size_t i = 0; i < d->npaths; i++) {
        const vec_path *p = &d->paths[i];
        const vec_paint *f = &p->fill;
        if (f->kind != VEC_PAINT_SOLID &&
            (bad_coord(f->x1) || bad_coord(f->y1) || bad_coord(f->x2) || bad_coord(f->y2)))
            return 0;
        for (size_t k = 0; k < p->nseg; k++) {
            const vec_seg *s = &p->segs[k];
            int npt = s->kind == VEC_SEG_CUBIC ? 3 : s->kind == VEC_SEG_CLOSE ? 0 : 1;
            for (int j = 0; j < npt; j++)
                if (bad_coord(s->pt[j][0]) || bad_coord(s->pt[j][1]))
                    return 0;
        }
    }
    return 1;
}

/* A cairo pattern for a paint; new (cairo_pattern_destroy). Gradients with no stops paint
 * nothing in SVG, which a fully transparent solid reproduces. */
static cairo_pattern_t *make_pattern(const vec_paint *f)
{
    cairo_pattern_t *pat;
    if (f->kind == VEC_PAINT_SOLID || f->nstops <= 0)
        return cairo_pattern_create_rgba(f->rgba[0] / 255.0, f->rgba[1] / 255.0,
                                         f->rgba[2] / 255.0,
                                         f->kind == VEC_PAINT_SOLID ? f->rgba[3] / 255.0 : 0.0);
    if (f->kind == VEC_PAINT_LINEAR)
        pat = cairo_pattern_create_linear(f->x1, f->y1, f->x2, f->y2);
    else
        pat = cairo_pattern_create_radial(f->x1, f->y1, 0.0, f->x1, f->y1, f->x2);
    int n = f->nstops > VEC_MAX_STOPS ? VEC_MAX_STOPS : f->nstops;
    for (int i = 0; i < n; i++) {
        const vec_stop *s = &f->stops[i];
        cairo_pattern_add_color_stop_rgba(pat, s->offset, s->rgba[0] / 255.0, s->rgba[1] / 255.0,
                                          s->rgba[2] / 255.0, s->rgba[3] / 255.0);
    }
    cairo_pattern_set_extend(pat, CAIRO_EXTEND_PAD);
    return pat;
}

/* Cairo's RGB24 pixels are native-endian 0xXXRRGGBB words. */
static void read_back(cairo_surface_t *s, int w, int h, uint8_t *rgb)
{
    cairo_surface_flush(s);
    const unsigned char *base = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(base + (size_t)y * (size_t)stride);
        uint8_t *o = rgb + (size_t)y * (size_t)w * 3;
        for (int x = 0; x < w; x++) {
            o[x * 3 + 0] = (uint8_t)(row[x] >> 16);
            o[x * 3 + 1] = (uint8_t)(row[x] >> 8);
            o[x * 3 + 2] = (uint8_t)row[x];
        }
    }
}

int vec_render(const vec_doc *d, uint8_t *rgb, md_err *err)
{
    if (!d || !rgb || d->width <= 0 || d->height <= 0 || d->width > 32767 || d->height > 32767)
        return md_fail(err, MD_E_INVALID_PARAM, "document", "cannot render a %dx%d document",
                       d ? d->width : 0, d ? d->height : 0);
    if (!doc_is_sane(d))
        return md_fail(err, MD_E_INTERNAL, "document",
                       "the traced document has a non-finite or out-of-range coordinate");
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, d->width, d->height);
    cairo_t *cr = cairo_create(s);
    int rc = MD_OK;
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        rc = md_fail(err, MD_E_NOMEM, "document", "cannot create a %dx%d surface", d->width,
                     d->height);
        goto out;
    }
    cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
    cairo_paint(cr);
    for (size_t i = 0; i < d->npaths; i++) {
        const vec_path *p = &d->paths[i];
        cairo_pattern_t *pat = make_pattern(&p->fill);
        add_path(cr, p);
        cairo_set_fill_rule(cr, p->evenodd ? CAIRO_FILL_RULE_EVEN_ODD : CAIRO_FILL_RULE_WINDING);
        cairo_set_source(cr, pat);
        cairo_fill(cr);
        cairo_pattern_destroy(pat);
    }
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        rc = md_fail(err, MD_E_INTERNAL, "document", "rendering failed: %s",
                     cairo_status_to_string(cairo_status(cr)));
        goto out;
    }
    read_back(s, d->width, d->height, rgb);
out:
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    return rc;
}
