/* trace.c - vec_trace(): runs the tracer's stages and builds the vec_doc.
 *
 *   cluster (colour or binary) -> gradients -> contours -> per loop: edge samples (the middles
 *   of the staircase runs, plus real corners), polygon + corner classes, then lines (polygon
 *   mode), Béziers between corners and splices (spline mode) or the raw pixel outline (pixel
 *   mode) -> one path per region, painted with its mean colour (opaque or with its coverage)
 *   or its fitted gradient.
 *
 * Layering. Regions are painted in decreasing order of bounding-box area. A region inside a
 * hole of another has a strictly smaller box, so it is always painted later; in stacked mode a
 * region can therefore fill its holes (drop them) and let the regions inside paint over it,
 * which leaves no hairline gaps between neighbours. A hole that contains transparent pixels is
 * kept, since nothing would paint over it. In cutout mode every hole is kept.
 */
#include "vec_int.h"

#include "base/clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct tracer {
    const vec_params *p;
    const md_cancel *cancel; /* checked every VEC__CHECK_EVERY regions; may be NULL */
    md_err *err;             /* where a stop is recorded */
    const vec__clusters *c;
    vec__pt *pt;           /* edge samples of one loop, capacity cap */
    uint8_t *flags;
    vec__pt *chain;
    int cap;
} tracer;

static int ensure_scratch(tracer *t, int n)
{
    if (n <= t->cap)
        return MD_OK;
    int ncap = n + n / 2 + 16;
    free(t->pt);
    free(t->flags);
    free(t->chain);
    t->pt = malloc((size_t)ncap * sizeof *t->pt);
    t->flags = malloc((size_t)ncap);
    t->chain = malloc(((size_t)ncap + 1) * sizeof *t->chain);
    t->cap = ncap;
    return t->pt && t->flags && t->chain ? MD_OK : MD_E_NOMEM;
}

static int move_to(vec__segs *s, vec__pt q)
{
    return vec__segs_push(s, VEC_SEG_MOVE, (const double[]){q.x, q.y}, 1);
}

/* Pixel mode: the exact staircase, one line per run. */
static int loop_pixels(const vec__loop *l, vec__segs *s)
{
    int rc = MD_OK, started = 0;
    for (int i = 0; i < l->n && rc == MD_OK; i++) {
        int ip = i == 0 ? l->n - 1 : i - 1, in = i + 1 == l->n ? 0 : i + 1;
        const int32_t *a = l->pts + 2 * ip, *b = l->pts + 2 * i, *c = l->pts + 2 * in;
        if (b[0] - a[0] == c[0] - b[0] && b[1] - a[1] == c[1] - b[1])
            continue;
        vec__pt q = {b[0], b[1]};
        rc = started ? vec__segs_push(s, VEC_SEG_LINE, (const double[]){q.x, q.y}, 1) : move_to(s, q);
        started = 1;
    }
    return rc == MD_OK ? vec__segs_push(s, VEC_SEG_CLOSE, NULL, 0) : rc;
}

/* Unit tangent at index i of the closed list p (m points), towards the nearest sample in
 * direction dir (+1/-1) that is at least half a pixel away. The samples already lie on the
 * edge (not on the staircase), so the nearest one gives the local direction; looking further
 * (2.5 px was tried) bends the end tangents and costs a fifth more bytes for no SSIM. */
static vec__pt tangent_one(const vec__pt *p, int m, int i, int dir)
{
    vec__pt a = p[i], b = a;
    for (int k = 1; k < m; k++) {
        b = p[((i + dir * k) % m + m) % m];
        if (vec__hypot(b.x - a.x, b.y - a.y) >= 0.5)
            break;
    }
    double l = vec__hypot(b.x - a.x, b.y - a.y);
    return l > 0 ? (vec__pt){(b.x - a.x) / l, (b.y - a.y) / l} : (vec__pt){1, 0};
}

/* Tangents leaving point i forwards (out) and arriving backwards (back, pointing against the
 * walk): one-sided at corners, shared (smooth) elsewhere. */
static void tangents(const vec__pt *p, int m, int i, int corner, vec__pt *out, vec__pt *back)
{
    vec__pt f = tangent_one(p, m, i, +1), r = tangent_one(p, m, i, -1);
    if (!corner) {
        vec__pt c = {f.x - r.x, f.y - r.y};
        double l = vec__hypot(c.x, c.y);
        if (l > 1e-9) {
            f = (vec__pt){c.x / l, c.y / l};
            r = (vec__pt){-f.x, -f.y};
        }
    }
    *out = f;
    *back = r;
}

static int fit_chain(tracer *t, int len, vec__pt t1, vec__pt t2, vec__segs *s)
{
    return vec__fit_cubic(t->chain, len, t1, t2, t->p->length_threshold / 8.0,
                          t->p->max_iterations, s);
}

/* A loop with no corner or splice: one closed smooth chain through the samples. */
static int closed_smooth(tracer *t, const vec__pt *v, int m, vec__segs *s)
{
    int k = 0;
    for (int i = 0; i < m; i++)
        t->chain[k++] = v[i];
    t->chain[k++] = t->chain[0];
    vec__pt d = {t->chain[1].x - t->chain[k - 2].x, t->chain[1].y - t->chain[k - 2].y};
    double l = vec__hypot(d.x, d.y);
    vec__pt t1 = l > 0 ? (vec__pt){d.x / l, d.y / l} : (vec__pt){1, 0};
    int rc = move_to(s, t->chain[0]);
    if (rc == MD_OK)
        rc = fit_chain(t, k, t1, (vec__pt){-t1.x, -t1.y}, s);
    return rc == MD_OK ? vec__segs_push(s, VEC_SEG_CLOSE, NULL, 0) : rc;
}

/* Spline mode: the loop is cut at its corners and splice points; between two cuts, Béziers
 * are fitted to the samples. */
static int loop_spline(tracer *t, const vec__pt *v, int m, const uint8_t *fl, vec__segs *s)
{
    const uint8_t cut = VEC__PF_CORNER | VEC__PF_SPLICE;
    int first = -1;
    for (int i = 0; i < m && first < 0; i++)
        if (fl[i] & cut)
            first = i;
    if (first < 0)
        return closed_smooth(t, v, m, s);
    int rc = move_to(s, v[first]);
    int a = first;
    do {
        int b = (a + 1) % m, k = 0;
        while (b != first && !(fl[b] & cut))
            b = (b + 1) % m;
        int i = a;
        do { /* a == b (a single cut) goes once around the loop */
            t->chain[k++] = v[i];
            i = (i + 1) % m;
        } while (i != b);
        t->chain[k++] = v[b];
        vec__pt t1, t2, dummy;
        tangents(v, m, a, fl[a] & VEC__PF_CORNER, &t1, &dummy);
        tangents(v, m, b, fl[b] & VEC__PF_CORNER, &dummy, &t2);
        if (rc == MD_OK)
            rc = fit_chain(t, k, t1, t2, s);
        a = b;
    } while (a != first && rc == MD_OK);
    return rc == MD_OK ? vec__segs_push(s, VEC_SEG_CLOSE, NULL, 0) : rc;
}

static int loop_segments(tracer *t, const vec__loop *l, vec__segs *s)
{
    if (t->p->mode == VEC_PIXEL)
        return loop_pixels(l, s);
    if (ensure_scratch(t, 2 * l->n + 8) != MD_OK) /* run samples: fewer than 2 per side */
        return MD_E_NOMEM;
    int m = vec__edge_samples(l->pts, l->n, t->pt);
    if (m < 0)
        return MD_E_NOMEM;
    double ptol = t->p->length_threshold / 6.0;
    int kept = vec__polygon(t->pt, m, ptol, t->p->corner_threshold, t->p->splice_threshold,
                            t->flags);
    if (kept < 0)
        return MD_E_NOMEM;
    if (t->p->mode == VEC_SPLINE)
        return loop_spline(t, t->pt, m, t->flags, s);
    int rc = MD_OK, started = 0;
    for (int i = 0; i < m && rc == MD_OK; i++) {
        if (!(t->flags[i] & VEC__PF_KEEP))
            continue;
        rc = started ? vec__segs_push(s, VEC_SEG_LINE, (const double[]){t->pt[i].x, t->pt[i].y}, 1)
                     : move_to(s, t->pt[i]);
        started = 1;
    }
    return rc == MD_OK ? vec__segs_push(s, VEC_SEG_CLOSE, NULL, 0) : rc;
}

/* 1 when a transparent region lies inside hole loop h (then the hole must stay open). */
static int hole_has_transparency(const vec__clusters *c, const vec__loop *h, const int32_t *tpx,
                                 int ntp)
{
    for (int k = 0; k < ntp; k++) {
        int x = tpx[2 * k], y = tpx[2 * k + 1];
        if (x < h->x0 || x >= h->x1 || y < h->y0 || y >= h->y1)
            continue;
        if (vec__loop_contains(h, x + 0.5, y + 0.5))
            return 1;
    }
    (void)c;
    return 0;
}

static int cmp_order(const void *x, const void *y, void *ctx)
{
    const vec__region *reg = ctx;
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    int64_t aa = (int64_t)(reg[a].x1 - reg[a].x0 + 1) * (reg[a].y1 - reg[a].y0 + 1);
    int64_t ab = (int64_t)(reg[b].x1 - reg[b].x0 + 1) * (reg[b].y1 - reg[b].y0 + 1);
    if (aa != ab)
        return aa > ab ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* One top-left pixel per transparent region, as test points for holes. Checked once per run
 * of equal labels: a run's first pixel is the only one that can be its region's first. */
static int transparent_points(const vec__clusters *c, int32_t **out, int *nout)
{
    int32_t *tp = malloc(2 * ((size_t)c->n + 1) * sizeof *tp);
    uint8_t *done = calloc((size_t)c->n + 1, 1);
    if (tp == NULL || done == NULL) {
        free(tp);
        free(done);
        return MD_E_NOMEM;
    }
    int n = 0;
    for (int y = 0; y < c->h; y++) {
        const int32_t *lab = c->label + (size_t)y * (size_t)c->w;
        for (int x = 0; x < c->w; x++) {
            int32_t r = lab[x];
            if ((x > 0 && lab[x - 1] == r) || !c->reg[r].transparent || done[r])
                continue;
            done[r] = 1;
            tp[2 * n] = x;
            tp[2 * n + 1] = y;
            n++;
        }
    }
    free(done);
    *out = tp;
    *nout = n;
    return MD_OK;
}

/* Sums of the interior pixels x0..x1-1 of row y of region r (left and right neighbours are
 * known to be in r): those whose upper and lower neighbours are in r too. */
static void interior_run(const vec__clusters *c, int y, int x0, int x1, int32_t r, double *s)
{
    size_t w = (size_t)c->w, row = (size_t)y * w;
    const int32_t *up = c->label + row - w, *dn = c->label + row + w;
    const uint8_t *px = c->rgb + 3 * row;
    int64_t s0 = 0, s1 = 0, s2 = 0, cnt = 0;
    for (int x = x0; x < x1; x++) {
        if (up[x] != r || dn[x] != r)
            continue;
        s0 += px[3 * x];
        s1 += px[3 * x + 1];
        s2 += px[3 * x + 2];
        cnt++;
    }
    s[4 * r] += (double)s0;
    s[4 * r + 1] += (double)s1;
    s[4 * r + 2] += (double)s2;
    s[4 * r + 3] += (double)cnt;
}

/* Fill colours from each region's interior pixels (all four neighbours in the region): edge
 * pixels are partly the neighbour's colour (anti-aliasing), and the renderer blends the edge
 * again, so counting them would wash the fill out. Regions with no interior use all pixels.
 * Walked run by run; the sums are integers, exact in doubles. */
static int interior_colors(const vec__clusters *c, double **out)
{
    double *s = calloc(4 * ((size_t)c->n + 1), sizeof *s);
    if (s == NULL)
        return MD_E_NOMEM;
    for (int y = 1; y + 1 < c->h; y++) {
        const int32_t *lab = c->label + (size_t)y * (size_t)c->w;
        for (int x0 = 0, x1; x0 < c->w; x0 = x1) {
            for (x1 = x0 + 1; x1 < c->w && lab[x1] == lab[x0]; x1++)
                ;
            /* the run's ends have a neighbour outside it (or the image border) */
            if (x1 - x0 >= 3)
                interior_run(c, y, x0 + 1, x1 - 1, lab[x0], s);
        }
    }
    *out = s;
    return MD_OK;
}

static void region_paint(const vec__clusters *c, const vec__region *r, const double *interior,
                         vec_paint *paint)
{
    if (r->gradient >= 0) {
        *paint = c->grad[r->gradient];
        return;
    }
    memset(paint, 0, sizeof *paint);
    paint->kind = VEC_PAINT_SOLID;
    if (!vec__region_opaque(r)) {
        /* Straight colour and mean coverage: over white this is exactly the mean of the
         * composited pixels, and over any other background it is still right. */
        for (int k = 0; k < 3; k++) {
            double v = 255.0 * r->psum[k] / r->asum;
            paint->rgba[k] = (uint8_t)lround(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        paint->rgba[3] = (uint8_t)lround(r->asum / (double)r->area);
        return;
    }
    for (int k = 0; k < 3; k++)
        paint->rgba[k] = (uint8_t)lround(interior[3] > 0 ? interior[k] / interior[3]
                                                         : r->sum[k] / (double)r->area);
    paint->rgba[3] = 255;
}

typedef struct docbuild {
    vec_doc *d;
    size_t cap;
    int32_t *order, *first, *next; /* regions in paint order; loops of a region as a list */
    int32_t *tpx;
    int ntp;
    double *interior;              /* per region: colour sums and count of interior pixels */
} docbuild;

/* The whole canvas as one rectangle. */
static int canvas_rect(const vec__clusters *c, vec__segs *s)
{
    const double pts[4][2] = {{0, 0}, {c->w, 0}, {c->w, c->h}, {0, c->h}};
    int rc = vec__segs_push(s, VEC_SEG_MOVE, pts[0], 1);
    for (int i = 1; i < 4 && rc == MD_OK; i++)
        rc = vec__segs_push(s, VEC_SEG_LINE, pts[i], 1);
    return rc == MD_OK ? vec__segs_push(s, VEC_SEG_CLOSE, NULL, 0) : rc;
}

/* Emit region r. The bottom layer of an image without transparency is painted as the whole
 * canvas in stacked mode: everything else lies on top of it, so it costs a rectangle instead of
 * an outline, and any hairline gap between fitted neighbours shows its colour, not white. */
static int emit_region(tracer *t, docbuild *b, const vec__loops *L, int32_t r, int bottom)
{
    vec__segs s = {0};
    int rc = MD_OK;
    const vec__region *reg = &t->c->reg[r];
    int stacked = t->p->hierarchical == VEC_STACKED && t->p->colormode == VEC_COLOR;
    int canvas = bottom && b->ntp == 0 && stacked && vec__region_opaque(reg);
    if (canvas)
        rc = canvas_rect(t->c, &s);
    for (int32_t k = canvas ? -1 : b->first[r]; k >= 0 && rc == MD_OK; k = b->next[k]) {
        const vec__loop *l = &L->loop[k];
        /* A translucent layer keeps its holes: whatever fills them must not show through it. */
        if (l->hole && stacked && vec__region_opaque(reg) &&
            !hole_has_transparency(t->c, l, b->tpx, b->ntp))
            continue;
        rc = loop_segments(t, l, &s);
    }
    if (rc == MD_OK && s.n > 0) {
        vec_paint paint;
        region_paint(t->c, reg, b->interior + 4 * r, &paint);
        rc = vec__doc_add(b->d, &b->cap, &paint, &s);
    }
    free(s.s);
    return rc;
}

static int build_doc(tracer *t, const vec__loops *L, vec_doc *d)
{
    const vec__clusters *c = t->c;
    docbuild b = {.d = d};
    b.order = malloc(((size_t)c->n + 1) * sizeof *b.order);
    b.first = malloc(((size_t)c->n + 1) * sizeof *b.first);
    b.next = malloc(((size_t)L->n + 1) * sizeof *b.next);
    int rc = b.order && b.first && b.next ? transparent_points(c, &b.tpx, &b.ntp) : MD_E_NOMEM;
    if (rc == MD_OK)
        rc = interior_colors(c, &b.interior);
    if (rc == MD_OK) {
        for (int32_t r = 0; r < c->n; r++) {
            b.order[r] = r;
            b.first[r] = -1;
        }
        for (int32_t k = L->n - 1; k >= 0; k--) { /* keep loops in trace order */
            b.next[k] = b.first[L->loop[k].region];
            b.first[L->loop[k].region] = k;
        }
        qsort_r(b.order, (size_t)c->n, sizeof *b.order, cmp_order, c->reg);
    }
    for (int i = 0, bottom = 1; i < c->n && rc == MD_OK; i++) {
        if (i % VEC__CHECK_EVERY == 0) {
            md_cancel_progress(t->cancel, 0.45 + 0.35 * i / c->n, "fit");
            rc = md_cancel_check(t->cancel, "fit", t->err);
            if (rc != MD_OK)
                break;
        }
        if (!c->reg[b.order[i]].transparent) {
            rc = emit_region(t, &b, L, b.order[i], bottom);
            bottom = 0;
        }
    }
    free(b.order);
    free(b.first);
    free(b.next);
    free(b.tpx);
    free(b.interior);
    return rc;
}

static int check_input(const md_image *img, const vec_params *p, md_err *err)
{
    if (img == NULL || img->rgba == NULL)
        return md_fail(err, MD_E_BAD_REQUEST, "image", "no image to trace");
    if (img->width <= 0 || img->height <= 0 || (int64_t)img->width * img->height > (1LL << 30))
        return md_fail(err, MD_E_IMAGE_TOO_LARGE, "image", "cannot trace a %dx%d image",
                       img->width, img->height);
    return vec_params_validate(p, err);
}

int vec_trace(const md_image *img, const vec_params *p, vec_doc **out, vec_timing *timing,
              md_err *err)
{
    return vec__trace(img, p, NULL, out, timing, err);
}

/* Gradients (colour mode) then contours, each after a cancel check. */
static int regions_to_loops(const vec_params *p, const md_cancel *cancel, vec__clusters *c,
                            vec__loops *L, uint64_t *t1, md_err *err)
{
    int rc = MD_OK;
    md_cancel_progress(cancel, 0.3, "gradients");
    if (p->colormode == VEC_COLOR && p->gradients) {
        rc = md_cancel_check(cancel, "gradients", err);
        if (rc == MD_OK)
            rc = vec__gradients(c);
    }
    *t1 = md_now_ns();
    md_cancel_progress(cancel, 0.4, "contours");
    if (rc == MD_OK)
        rc = md_cancel_check(cancel, "contours", err);
    if (rc == MD_OK)
        rc = vec__contours(c, L);
    return rc;
}

int vec__trace(const md_image *img, const vec_params *p, const md_cancel *cancel, vec_doc **out,
               vec_timing *timing, md_err *err)
{
    return vec__trace_cached(img, p, cancel, NULL, out, timing, err);
}

int vec__trace_cached(const md_image *img, const vec_params *p, const md_cancel *cancel,
                      vec_cache *cache, vec_doc **out, vec_timing *timing, md_err *err)
{
    *out = NULL;
    int rc = check_input(img, p, err);
    if (rc != MD_OK)
        return rc;
    uint64_t t0 = md_now_ns(), t1 = t0;
    vec__clusters own_c = {0};
    vec__loops own_L = {0};
    const vec__clusters *c = &own_c;
    const vec__loops *L = &own_L;
    vec__stage_key key = vec__stage_key_of(p);
    if (!vec__cache_stage(cache, &key, &c, &L)) {
        md_cancel_progress(cancel, 0.0, "cluster");
        rc = p->colormode == VEC_BINARY ? vec__cluster_binary(img, p, cancel, &own_c, err)
                                        : vec__cluster_color(img, p, cancel, &own_c, err);
        if (rc != MD_OK)
            return rc; /* the clustering freed own_c and wrote the message */
        rc = regions_to_loops(p, cancel, &own_c, &own_L, &t1, err);
        if (rc == MD_OK)
            vec__cache_keep_stage(cache, &key, &own_c, &own_L, &c, &L);
    }
    uint64_t t2 = md_now_ns();
    vec_doc *d = rc == MD_OK ? calloc(1, sizeof *d) : NULL;
    tracer t = {.p = p, .cancel = cancel, .err = err, .c = c};
    if (rc == MD_OK && d == NULL)
        rc = MD_E_NOMEM;
    if (rc == MD_OK) {
        d->width = img->width;
        d->height = img->height;
        rc = build_doc(&t, L, d);
    }
    uint64_t t3 = md_now_ns();
    free(t.pt);
    free(t.flags);
    free(t.chain);
    vec__loops_free(&own_L);
    vec__clusters_free(&own_c);
    if (rc != MD_OK) {
        vec_doc_free(d);
        if (rc == MD_E_TIMEOUT || rc == MD_E_CANCELLED)
            return rc; /* md_cancel_check named the stage */
        return md_fail(err, rc, NULL, "tracing failed: %s", md_err_default_msg(rc));
    }
    if (timing) {
        timing->cluster_ms = vec__ms(t0, t1);
        timing->trace_ms = vec__ms(t1, t2);
        timing->fit_ms = vec__ms(t2, t3);
    }
    *out = d;
    return MD_OK;
}
