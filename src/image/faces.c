/* faces.c - frontal face detection with OpenCV's Haar cascades (Debian's opencv-data,
 * haarcascade_frontalface_default.xml: Viola-Jones boosted stumps over Haar features), read and
 * evaluated here without OpenCV.
 *
 *   img_cascade_load: the XML -> stages of stumps + features (rectangles with weights)
 *   img_faces_detect: luma -> integral images -> every window (24 px and up, x1.1 per scale,
 *                     step 2 px scaled) through the stages -> raw hits grouped (OpenCV's
 *                     groupRectangles: similar boxes, eps 0.2, at least `min_neighbors` + 1)
 *
 * A window is normalised as OpenCV does: the feature sum is divided by area * stddev of the
 * window's inner rectangle (1 px inset), so thresholds work at any brightness and contrast.
 * Features are scaled with the window (not the image); the first rectangle's weight is then
 * corrected so the weighted areas still cancel (as OpenCV 1.x did for scaled features).
 *
 * Invariants:
 *   1. The parser reads only stump cascades of HAAR features (upright rectangles); anything else
 *      (tree nodes, tilted features, LBP) is MD_E_UNSUPPORTED, never misread. Every index read
 *      from the file is range-checked before use.
 *   2. Detection never reads outside the integral images: a window is scanned only when it lies
 *      wholly inside the image, and scaled rectangles stay inside their window.
 */
#include "image/image_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECTS 3

typedef struct hrect {
    int x, y, w, h;
    float weight;
} hrect;

typedef struct hfeature {
    hrect r[MAX_RECTS];
    int n;
} hfeature;

typedef struct hstump {
    int feature;
    float threshold, left, right;
} hstump;

typedef struct hstage {
    int first, count; /* stumps [first, first + count) */
    float threshold;
} hstage;

struct img_cascade {
    int win_w, win_h;
    hstage *stages;
    int n_stages;
    hstump *stumps;
    int n_stumps;
    hfeature *features;
    int n_features;
};

/* ---- the XML (OpenCV's "opencv-cascade-classifier" format) ----------------------------- */

/* After the next "<tag>" at or after *p and before end (NULL = anywhere); NULL when none. */
static const char *after_tag(const char *p, const char *tag, const char *end)
{
    const char *q = strstr(p, tag);
    if (!q || (end && q >= end))
        return NULL;
    return q + strlen(tag);
}

/* Read n numbers from *p; 0 on success. */
static int numbers(const char **p, double *v, int n)
{
    for (int i = 0; i < n; i++) {
        char *e;
        v[i] = strtod(*p, &e);
        if (e == *p || !isfinite(v[i]))
            return -1;
        *p = e;
    }
    return 0;
}

static int tag_int(const char **p, const char *tag, const char *end, int *out)
{
    const char *q = after_tag(*p, tag, end);
    double v;
    if (!q || numbers(&q, &v, 1) != 0 || v < 0 || v > 1e6 || v != floor(v))
        return -1;
    *out = (int)v;
    *p = q;
    return 0;
}

static int parse_stage(img_cascade *c, const char **p, int s, md_err *err)
{
    int n;
    double thr;
    const char *q = after_tag(*p, "<maxWeakCount>", NULL);
    if (!q || tag_int(p, "<maxWeakCount>", NULL, &n) != 0 || n < 1 || n > 10000)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "stage %d: bad maxWeakCount", s);
    q = after_tag(*p, "<stageThreshold>", NULL);
    if (!q || numbers(&q, &thr, 1) != 0)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "stage %d: bad stageThreshold", s);
    hstump *st = realloc(c->stumps, (size_t)(c->n_stumps + n) * sizeof *st);
    if (!st)
        return md_fail(err, MD_E_NOMEM, "cascade", "out of memory");
    c->stumps = st;
    c->stages[s] = (hstage){.first = c->n_stumps, .count = n, .threshold = (float)thr};
    for (int i = 0; i < n; i++) {
        double node[4], leaf[2];
        q = after_tag(q, "<internalNodes>", NULL);
        if (!q || numbers(&q, node, 4) != 0)
            return md_fail(err, MD_E_MODEL_INVALID, "cascade", "stage %d: bad internalNodes", s);
        if (node[0] != 0 || node[1] != -1)
            return md_fail(err, MD_E_UNSUPPORTED, "cascade",
                           "stage %d: only stump cascades are read (a tree node)", s);
        q = after_tag(q, "<leafValues>", NULL);
        if (!q || numbers(&q, leaf, 2) != 0 || node[2] < 0 || node[2] > 1e6)
            return md_fail(err, MD_E_MODEL_INVALID, "cascade", "stage %d: bad leafValues", s);
        c->stumps[c->n_stumps++] = (hstump){.feature = (int)node[2],
                                            .threshold = (float)node[3],
                                            .left = (float)leaf[0],
                                            .right = (float)leaf[1]};
    }
    *p = q;
    return MD_OK;
}

static int parse_feature(img_cascade *c, const char **p, md_err *err)
{
    const char *q = after_tag(*p, "<rects>", NULL);
    const char *end = q ? strstr(q, "</rects>") : NULL;
    if (!q || !end)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "feature %d: no rects", c->n_features);
    hfeature f = {0};
    for (const char *r = after_tag(q, "<_>", end); r; r = after_tag(r, "<_>", end)) {
        double v[5];
        if (f.n == MAX_RECTS || numbers(&r, v, 5) != 0)
            return md_fail(err, MD_E_MODEL_INVALID, "cascade", "feature %d: bad rect",
                           c->n_features);
        if (v[0] < 0 || v[1] < 0 || v[2] < 1 || v[3] < 1 || v[0] + v[2] > c->win_w ||
            v[1] + v[3] > c->win_h)
            return md_fail(err, MD_E_MODEL_INVALID, "cascade",
                           "feature %d: rect outside the window", c->n_features);
        f.r[f.n++] = (hrect){(int)v[0], (int)v[1], (int)v[2], (int)v[3], (float)v[4]};
    }
    const char *tilted = strstr(end, "<tilted>");
    const char *next = strstr(end, "<rects>");
    if (tilted && (!next || tilted < next) && atoi(tilted + 8) != 0)
        return md_fail(err, MD_E_UNSUPPORTED, "cascade", "tilted features are not read");
    if (f.n < 2)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "feature %d: fewer than 2 rects",
                       c->n_features);
    c->features[c->n_features++] = f;
    *p = end + 8;
    return MD_OK;
}

static int parse(img_cascade *c, const char *xml, md_err *err)
{
    const char *p = xml;
    if (!strstr(p, "<stageType>BOOST</stageType>") || !strstr(p, "<featureType>HAAR</featureType>"))
        return md_fail(err, MD_E_UNSUPPORTED, "cascade", "not a BOOST cascade of HAAR features");
    if (tag_int(&p, "<height>", NULL, &c->win_h) != 0 ||
        tag_int(&p, "<width>", NULL, &c->win_w) != 0 || c->win_w < 4 || c->win_h < 4 ||
        c->win_w > 256 || c->win_h > 256)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "bad window size");
    if (tag_int(&p, "<stageNum>", NULL, &c->n_stages) != 0 || c->n_stages < 1 || c->n_stages > 1000)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "bad stageNum");
    c->stages = calloc((size_t)c->n_stages, sizeof *c->stages);
    if (!c->stages)
        return md_fail(err, MD_E_NOMEM, "cascade", "out of memory");
    p = after_tag(p, "<stages>", NULL);
    if (!p)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "no stages");
    for (int s = 0; s < c->n_stages; s++) {
        int rc = parse_stage(c, &p, s, err);
        if (rc != MD_OK)
            return rc;
    }
    int most = 0;
    for (int i = 0; i < c->n_stumps; i++)
        most = c->stumps[i].feature > most ? c->stumps[i].feature : most;
    c->features = calloc((size_t)most + 1, sizeof *c->features);
    if (!c->features)
        return md_fail(err, MD_E_NOMEM, "cascade", "out of memory");
    p = after_tag(p, "<features>", NULL);
    if (!p)
        return md_fail(err, MD_E_MODEL_INVALID, "cascade", "no features");
    while (c->n_features <= most) {
        int rc = parse_feature(c, &p, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

void img_cascade_free(img_cascade *c)
{
    if (!c)
        return;
    free(c->stages);
    free(c->stumps);
    free(c->features);
    free(c);
}

/* The whole file as a NUL-terminated string; *out is new (free). */
static int read_all(const char *path, char **out, md_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return md_fail(err, MD_E_FILE_NOT_FOUND, "cascade", "cannot open %s", path);
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    char *xml = n > 0 && n <= (64L << 20) ? malloc((size_t)n + 1) : NULL;
    int ok = xml && fseek(f, 0, SEEK_SET) == 0 && fread(xml, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!ok) {
        free(xml);
        return md_fail(err, MD_E_IO, "cascade", "cannot read %s", path);
    }
    xml[n] = '\0';
    *out = xml;
    return MD_OK;
}

int img_cascade_load(const char *path, img_cascade **out, md_err *err)
{
    *out = NULL;
    char *xml = NULL;
    int rc = read_all(path, &xml, err);
    if (rc != MD_OK)
        return rc;
    img_cascade *c = calloc(1, sizeof *c);
    rc = c ? parse(c, xml, err) : md_fail(err, MD_E_NOMEM, "cascade", "out of memory");
    free(xml);
    if (rc != MD_OK) {
        img_cascade_free(c);
        return rc;
    }
    *out = c;
    return MD_OK;
}

/* ---- detection -------------------------------------------------------------------------- */

typedef struct integral {
    int w, h; /* of the image; the tables are (w + 1) x (h + 1) */
    double *sum, *sq;
} integral;

static int make_integral(const md_image *img, integral *ii)
{
    int w = img->width, h = img->height, W = w + 1;
    ii->w = w, ii->h = h;
    ii->sum = calloc((size_t)W * (size_t)(h + 1), sizeof(double));
    ii->sq = calloc((size_t)W * (size_t)(h + 1), sizeof(double));
    if (!ii->sum || !ii->sq)
        return -1;
    for (int y = 0; y < h; y++) {
        double rs = 0, rq = 0;
        for (int x = 0; x < w; x++) {
            const uint8_t *p = img->rgba + ((size_t)y * w + x) * 4;
            double g = (299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000; /* integer luma, as cv */
            rs += g, rq += g * g;
            size_t i = (size_t)(y + 1) * W + (size_t)(x + 1);
            ii->sum[i] = ii->sum[i - W] + rs;
            ii->sq[i] = ii->sq[i - W] + rq;
        }
    }
    return 0;
}

static double box(const double *t, int W, int x, int y, int w, int h)
{
    return t[(size_t)(y + h) * W + x + w] - t[(size_t)y * W + x + w] - t[(size_t)(y + h) * W + x] +
           t[(size_t)y * W + x];
}

/* One cascade's features at one scale: rectangles scaled and weights corrected. */
typedef struct scaled {
    hfeature *f;
    int nx, ny, nw, nh; /* the normalisation rectangle */
    int ww, wh;         /* window size */
} scaled;

static void scale_features(const img_cascade *c, double s, scaled *sc)
{
    sc->ww = (int)lround(c->win_w * s);
    sc->wh = (int)lround(c->win_h * s);
    sc->nx = (int)lround(s), sc->ny = (int)lround(s);
    sc->nw = sc->ww - 2 * sc->nx, sc->nh = sc->wh - 2 * sc->ny;
    for (int i = 0; i < c->n_features; i++) {
        const hfeature *f = &c->features[i];
        hfeature *g = &sc->f[i];
        g->n = f->n;
        double rest = 0;
        for (int k = 0; k < f->n; k++) {
            hrect r = f->r[k];
            int x0 = (int)lround(r.x * s), y0 = (int)lround(r.y * s);
            int x1 = (int)lround((r.x + r.w) * s), y1 = (int)lround((r.y + r.h) * s);
            x1 = x1 > sc->ww ? sc->ww : x1, y1 = y1 > sc->wh ? sc->wh : y1;
            g->r[k] =
                (hrect){x0, y0, x1 - x0 < 1 ? 1 : x1 - x0, y1 - y0 < 1 ? 1 : y1 - y0, r.weight};
            if (g->r[k].x + g->r[k].w > sc->ww)
                g->r[k].x = sc->ww - g->r[k].w;
            if (g->r[k].y + g->r[k].h > sc->wh)
                g->r[k].y = sc->wh - g->r[k].h;
            if (k > 0)
                rest += (double)r.weight * g->r[k].w * g->r[k].h;
        }
        g->r[0].weight = (float)(-rest / ((double)g->r[0].w * g->r[0].h));
    }
}

/* 1 when the window at (x, y) passes every stage. */
static int window_passes(const img_cascade *c, const scaled *sc, const integral *ii, int x, int y)
{
    int W = ii->w + 1;
    double area = (double)sc->nw * sc->nh;
    double s = box(ii->sum, W, x + sc->nx, y + sc->ny, sc->nw, sc->nh);
    double q = box(ii->sq, W, x + sc->nx, y + sc->ny, sc->nw, sc->nh);
    double nf = area * q - s * s;
    /* area * stddev: feature sums and this grow alike with the scale (both by its square) */
    double norm = nf > 0 ? sqrt(nf) : 1.0;
    for (int st = 0; st < c->n_stages; st++) {
        const hstage *g = &c->stages[st];
        double sum = 0;
        for (int i = g->first; i < g->first + g->count; i++) {
            const hstump *t = &c->stumps[i];
            const hfeature *f = &sc->f[t->feature];
            double v = 0;
            for (int k = 0; k < f->n; k++)
                v += f->r[k].weight *
                     box(ii->sum, W, x + f->r[k].x, y + f->r[k].y, f->r[k].w, f->r[k].h);
            sum += v < t->threshold * norm ? t->left : t->right;
        }
        if (sum < g->threshold)
            return 0;
    }
    return 1;
}

static int similar(const img_box *a, const img_box *b)
{
    double d = 0.2 * 0.5 * ((a->w < b->w ? a->w : b->w) + (a->h < b->h ? a->h : b->h));
    return fabs((double)a->x - b->x) <= d && fabs((double)a->y - b->y) <= d &&
           fabs((double)a->x + a->w - b->x - b->w) <= d &&
           fabs((double)a->y + a->h - b->y - b->h) <= d;
}

static int find_root(int *parent, int i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

/* OpenCV's groupRectangles: clusters of similar hits with more than min_nb members, averaged;
 * a cluster inside a stronger one is dropped. Writes at most max into out; returns the count. */
static int group(img_box *hits, int n, int min_nb, img_box *out, int max)
{
    int *parent = malloc((size_t)(n + 1) * sizeof(int));
    int *cnt = calloc((size_t)n + 1, sizeof(int));
    double *acc = calloc((size_t)n * 4 + 1, sizeof(double));
    int found = 0;
    if (!parent || !cnt || !acc)
        goto out;
    for (int i = 0; i < n; i++)
        parent[i] = i;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (similar(&hits[i], &hits[j]))
                parent[find_root(parent, i)] = find_root(parent, j);
    for (int i = 0; i < n; i++) {
        int r = find_root(parent, i);
        cnt[r]++;
        acc[4 * r] += hits[i].x, acc[4 * r + 1] += hits[i].y;
        acc[4 * r + 2] += hits[i].w, acc[4 * r + 3] += hits[i].h;
    }
    img_box cand[256];
    int nc = 0, cc[256];
    for (int r = 0; r < n && nc < 256; r++) {
        if (cnt[r] <= min_nb)
            continue;
        cand[nc] = (img_box){(int)lround(acc[4 * r] / cnt[r]), (int)lround(acc[4 * r + 1] / cnt[r]),
                             (int)lround(acc[4 * r + 2] / cnt[r]),
                             (int)lround(acc[4 * r + 3] / cnt[r]), cnt[r]};
        cc[nc++] = cnt[r];
    }
    for (int i = 0; i < nc && found < max; i++) {
        int inside = 0;
        for (int j = 0; j < nc && !inside; j++) {
            int dx = (int)lround(cand[j].w * 0.2), dy = (int)lround(cand[j].h * 0.2);
            inside = j != i && cc[j] > 3 && cc[j] >= cc[i] && cand[i].x >= cand[j].x - dx &&
                     cand[i].y >= cand[j].y - dy &&
                     cand[i].x + cand[i].w <= cand[j].x + cand[j].w + dx &&
                     cand[i].y + cand[i].h <= cand[j].y + cand[j].h + dy;
        }
        if (!inside)
            out[found++] = cand[i];
    }
out:
    free(parent);
    free(cnt);
    free(acc);
    return found;
}

/* Scan every scale; hits appended to *hits (grown). */
static int scan(const img_cascade *c, const integral *ii, int min_size, img_box **hits, int *n,
                int *cap)
{
    scaled sc = {.f = calloc((size_t)c->n_features, sizeof(hfeature))};
    if (!sc.f)
        return -1;
    for (double s = (double)min_size / c->win_w; c->win_w * s <= ii->w && c->win_h * s <= ii->h;
         s *= 1.1) {
        scale_features(c, s, &sc);
        int step = s > 2 ? (int)lround(s) : 2;
        for (int y = 0; y + sc.wh <= ii->h; y += step)
            for (int x = 0; x + sc.ww <= ii->w; x += step) {
                if (!window_passes(c, &sc, ii, x, y))
                    continue;
                if (*n == *cap) {
                    int nc = *cap ? *cap * 2 : 64;
                    img_box *h = nc <= 100000 ? realloc(*hits, (size_t)nc * sizeof *h) : NULL;
                    if (!h) {
                        free(sc.f);
                        return *cap ? 0 : -1; /* enough hits: stop adding */
                    }
                    *hits = h, *cap = nc;
                }
                (*hits)[(*n)++] = (img_box){x, y, sc.ww, sc.wh, 1};
            }
    }
    free(sc.f);
    return 0;
}

int img_faces_detect(const img_cascade *c, const md_image *img, int min_size, img_box *out, int max,
                     int *found, md_err *err)
{
    *found = 0;
    integral ii = {0};
    img_box *hits = NULL;
    int n = 0, cap = 0, rc = MD_OK;
    if (min_size < c->win_w)
        min_size = c->win_w;
    if (make_integral(img, &ii) != 0 || scan(c, &ii, min_size, &hits, &n, &cap) != 0)
        rc = md_fail(err, MD_E_NOMEM, "image", "out of memory detecting faces");
    if (rc == MD_OK && n > 0)
        *found = group(hits, n, 3, out, max);
    free(ii.sum);
    free(ii.sq);
    free(hits);
    return rc;
}
