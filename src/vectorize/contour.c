/* contour.c - boundary loops of labelled regions, traced on the pixel-corner grid.
 *
 * Every side of a pixel that borders another region (or the image edge) is one unit edge of
 * exactly one loop of the pixel's region. A loop is walked keeping its region on the
 * right-hand side (y down), which makes outer boundaries clockwise on screen and holes
 * counter-clockwise. Invariants:
 *   1. Each pixel side is visited once (4 flag bits per pixel), so the work is linear.
 *   2. At a vertex where a region touches itself only diagonally, the walk turns towards the
 *      inside: regions are 4-connected, and two diagonal pixels are separate loops. This keeps
 *      touching regions and 1-pixel features exact.
 *   3. A loop's signed area is positive for outer boundaries and negative for holes.
 */
#include "vec_int.h"

#include <stdlib.h>
#include <string.h>

static const int DX[4] = {1, 0, -1, 0}, DY[4] = {0, 1, 0, -1};

/* Inside pixel of the unit edge leaving (vx,vy) in direction d; -1 when off the image. */
static int64_t inside_px(const vec__clusters *c, int vx, int vy, int d)
{
    static const int ox[4] = {0, -1, -1, 0}, oy[4] = {0, 0, -1, -1};
    int x = vx + ox[d], y = vy + oy[d];
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return -1;
    return (int64_t)y * c->w + x;
}

static int64_t outside_px(const vec__clusters *c, int vx, int vy, int d)
{
    /* The outside pixel sits across the edge: one step against the inside normal. */
    static const int ox[4] = {0, 0, -1, -1}, oy[4] = {-1, 0, 0, -1};
    int x = vx + ox[d], y = vy + oy[d];
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return -1;
    return (int64_t)y * c->w + x;
}

static int in_region(const vec__clusters *c, int64_t px, int32_t r)
{
    return px >= 0 && c->label[px] == r;
}

static int push_pt(vec__loops *l, int32_t x, int32_t y)
{
    if (l->npts + 2 > l->ptscap) {
        size_t ncap = l->ptscap ? 2 * l->ptscap : 4096;
        int32_t *np = realloc(l->pts, ncap * sizeof *np);
        if (np == NULL)
            return MD_E_NOMEM;
        l->pts = np;
        l->ptscap = ncap;
    }
    l->pts[l->npts++] = x;
    l->pts[l->npts++] = y;
    return MD_OK;
}

/* Walk one loop from the top side of pixel (x,y); vertices appended to l->pts. */
static int walk(const vec__clusters *c, uint8_t *seen, int x, int y, vec__loops *l, vec__loop *lp)
{
    int32_t r = c->label[(size_t)y * (size_t)c->w + (size_t)x];
    int vx = x, vy = y, d = 0;
    size_t first = l->npts;
    int64_t area2 = 0;
    size_t guard = 4 * (size_t)c->w * (size_t)c->h + 4; /* no loop is longer than every side */
    lp->x0 = lp->x1 = x;
    lp->y0 = lp->y1 = y;
    do {
        seen[inside_px(c, vx, vy, d)] |= (uint8_t)(1u << d);
        if (push_pt(l, vx, vy) != MD_OK)
            return MD_E_NOMEM;
        if (--guard == 0)
            return MD_E_INTERNAL;
        int nx = vx + DX[d], ny = vy + DY[d];
        area2 += (int64_t)vx * ny - (int64_t)nx * vy;
        vx = nx;
        vy = ny;
        lp->x0 = vx < lp->x0 ? vx : lp->x0;
        lp->x1 = vx > lp->x1 ? vx : lp->x1;
        lp->y0 = vy < lp->y0 ? vy : lp->y0;
        lp->y1 = vy > lp->y1 ? vy : lp->y1;
        if (!in_region(c, inside_px(c, vx, vy, d), r))
            d = (d + 1) & 3; /* turn towards the inside (also at diagonal touches) */
        else if (in_region(c, outside_px(c, vx, vy, d), r))
            d = (d + 3) & 3;
    } while (!(vx == x && vy == y && d == 0));
    lp->region = r;
    lp->hole = area2 < 0;
    lp->n = (int)((l->npts - first) / 2);
    lp->pts = NULL; /* set once all loops are in: pts may still move */
    return MD_OK;
}

void vec__loops_free(vec__loops *l)
{
    if (l == NULL)
        return;
    free(l->loop);
    free(l->pts);
    memset(l, 0, sizeof *l);
}

int vec__contours(const vec__clusters *c, vec__loops *out)
{
    memset(out, 0, sizeof *out);
    size_t n = (size_t)c->w * (size_t)c->h;
    uint8_t *seen = calloc(n, 1);
    size_t *start = NULL;
    if (seen == NULL)
        return MD_E_NOMEM;
    int rc = MD_OK;
    for (int y = 0; y < c->h && rc == MD_OK; y++)
        for (int x = 0; x < c->w && rc == MD_OK; x++) {
            size_t i = (size_t)y * (size_t)c->w + (size_t)x;
            int32_t r = c->label[i];
            /* A loop starts at a pixel whose top edge is a boundary: the label test, cheapest
             * and most often decisive, goes first. */
            if ((y > 0 && c->label[i - (size_t)c->w] == r) || (seen[i] & 1) || c->reg[r].transparent)
                continue;
            if (out->n == out->cap) {
                int ncap = out->cap ? 2 * out->cap : 64;
                vec__loop *nl = realloc(out->loop, (size_t)ncap * sizeof *nl);
                size_t *ns = realloc(start, (size_t)ncap * sizeof *ns);
                if (nl)
                    out->loop = nl;
                if (ns)
                    start = ns;
                if (!nl || !ns) {
                    rc = MD_E_NOMEM;
                    break;
                }
                out->cap = ncap;
            }
            start[out->n] = out->npts;
            rc = walk(c, seen, x, y, out, &out->loop[out->n]);
            out->n++;
        }
    for (int k = 0; k < out->n && rc == MD_OK; k++)
        out->loop[k].pts = out->pts + start[k];
    free(start);
    free(seen);
    if (rc != MD_OK)
        vec__loops_free(out);
    return rc;
}

int vec__loop_contains(const vec__loop *l, double px, double py)
{
    int inside = 0;
    for (int i = 0; i < l->n; i++) {
        int j = i + 1 == l->n ? 0 : i + 1;
        double xi = l->pts[2 * i], yi = l->pts[2 * i + 1];
        double xj = l->pts[2 * j], yj = l->pts[2 * j + 1];
        if (xi != xj)
            continue; /* only vertical unit edges cross a horizontal ray */
        double ylo = yi < yj ? yi : yj, yhi = yi < yj ? yj : yi;
        if (py > ylo && py < yhi && xi > px)
            inside = !inside;
    }
    return inside;
}
