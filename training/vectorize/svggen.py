"""svggen.py - synthetic training images for the vectorize models: logos written as SVG (shapes,
text, gradients, layered illustrations) and photo-like rasters drawn with numpy.

Every generator takes a numpy Generator and the output size and returns an SVG document (str);
photo() returns an RGB uint8 array instead. svglabel.analyse() labels the SVGs; the generators
only aim at a type (geometric aims at simple_geometric, ...), the label is what the SVG holds.

Invariants:
  1. Deterministic: the output depends only on the rng state and the arguments (no clock, no
     global random state, no dict-order surprises), and numbers are written with fixed decimals.
  2. Fonts are named by family from FONTS (Debian fonts-* packages in scripts/deps.sh "models");
     rsvg-convert finds them through fontconfig.
"""
import math

import numpy as np

FONTS = ["DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "Liberation Sans", "Liberation Serif",
         "Liberation Mono", "Noto Sans", "Noto Serif", "Noto Sans Mono", "FreeSans", "FreeSerif",
         "FreeMono", "Nimbus Sans", "Nimbus Roman", "Nimbus Mono PS", "URW Gothic", "URW Bookman",
         "C059", "P052", "Carlito", "Z003", "DejaVu Sans Condensed", "DejaVu Serif Condensed",
         "Nimbus Sans Narrow", "Noto Sans Display", "Noto Serif Display", "Lato", "Open Sans",
         "Open Sans Condensed", "Comfortaa", "Cantarell", "Roboto", "Roboto Condensed",
         "Caladea", "League Spartan"]
# CSS weights; the families with several (Lato, Open Sans, Cantarell, League Spartan, Roboto)
# show them, the others fall back to their regular or bold face.
WEIGHTS = ["300", "normal", "normal", "500", "bold", "bold", "800", "900"]
SYLLABLES = ["ka", "lo", "mi", "ne", "tra", "vox", "zen", "bit", "cor", "dyn", "ex", "fy", "gro",
             "hub", "io", "jet", "lux", "max", "nova", "opt", "pix", "qu", "ray", "sol", "tek",
             "uni", "vi", "wave", "xo", "yo", "zap", "ar", "on", "ly", "ify", "co", "lab", "net"]


def _hex(c):
    return "#%02x%02x%02x" % tuple(int(v) for v in c)


def palette(rng, n):
    """n distinct, saturated-or-dark colours (HSV spread around the wheel)."""
    h0 = rng.random()
    cols = []
    for i in range(n):
        h = (h0 + i / n + rng.normal(0, 0.03)) % 1.0
        s = rng.uniform(0.45, 1.0)
        v = rng.uniform(0.25, 0.95)
        k = int(h * 6) % 6
        f = h * 6 - int(h * 6)
        p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
        rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][k]
        cols.append(_hex([round(255 * x) for x in rgb]))
    return cols


def _f(x):
    return f"{x:.1f}"


def _svg(w, body, defs="", extra="", h=None):
    h = w if h is None else h
    d = f"<defs>{defs}</defs>" if defs else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}"{extra}>{d}{body}</svg>')


def background(rng, w, kind, colour=None, h=None):
    """'' for white / transparent (the renderer decides), a full rect for a coloured one."""
    if kind != "colour":
        return ""
    return f'<rect x="0" y="0" width="{w}" height="{w if h is None else h}" fill="{colour}"/>'


def regular_polygon(cx, cy, r, n, rot, star=False):
    pts = []
    k = 2 * n if star else n
    for i in range(k):
        rr = r * (0.45 if star and i % 2 else 1.0)
        a = rot + 2 * math.pi * i / k
        pts.append(f"{_f(cx + rr * math.cos(a))},{_f(cy + rr * math.sin(a))}")
    return " ".join(pts)


def shape(rng, w, fill, stroke=None, sw=0.0):
    """One random flat shape inside the canvas as an SVG element."""
    cx, cy = rng.uniform(0.2, 0.8, 2) * w
    r = rng.uniform(0.06, 0.32) * w
    paint = f'fill="{fill}"'
    if stroke:
        paint += f' stroke="{stroke}" stroke-width="{_f(sw)}"'
    kind = rng.integers(0, 7)
    if kind == 0:
        return f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="{_f(r)}" {paint}/>'
    if kind == 1:
        rx = r * rng.uniform(0, 0.4)
        return (f'<rect x="{_f(cx - r)}" y="{_f(cy - r * 0.7)}" width="{_f(2 * r)}" '
                f'height="{_f(1.4 * r)}" rx="{_f(rx)}" {paint}/>')
    if kind == 2:
        return (f'<ellipse cx="{_f(cx)}" cy="{_f(cy)}" rx="{_f(r)}" '
                f'ry="{_f(r * rng.uniform(0.4, 0.9))}" {paint}/>')
    if kind in (3, 4):
        pts = regular_polygon(cx, cy, r, int(rng.integers(3, 9)), rng.uniform(0, 6.3), kind == 4)
        return f'<polygon points="{pts}" {paint}/>'
    if kind == 5:
        return (f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="{_f(r)}" fill="none" stroke="{fill}" '
                f'stroke-width="{_f(r * rng.uniform(0.15, 0.4))}"/>')
    x2, y2 = rng.uniform(0.1, 0.9, 2) * w
    return (f'<line x1="{_f(cx)}" y1="{_f(cy)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{fill}" '
            f'stroke-width="{_f(rng.uniform(0.02, 0.08) * w)}" stroke-linecap="round"/>')


def geometric(rng, w, bg):
    """A few flat shapes in 1..5 colours (aims at simple_geometric)."""
    cols = palette(rng, int(rng.integers(1, 6)))
    body = background(rng, w, bg, cols[0] if len(cols) > 1 else None)
    for _ in range(int(rng.integers(1, 11))):
        body += shape(rng, w, cols[int(rng.integers(0, len(cols)))])
    extra = ' shape-rendering="crispEdges"' if rng.random() < 0.15 else ""
    return _svg(w, body, extra=extra)


def word(rng):
    """A short made-up word: initials (1-3 capitals) or 2-3 syllables, capitalised, upper or
    lower case, sometimes with a digit or an ampersand."""
    if rng.random() < 0.25:
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        return "".join(letters[int(i)] for i in rng.integers(0, len(letters),
                                                              int(rng.integers(1, 4))))
    s = "".join(SYLLABLES[int(i)] for i in rng.integers(0, len(SYLLABLES),
                                                       int(rng.integers(2, 4))))
    u = rng.random()
    s = s.capitalize() if u < 0.5 else s.upper() if u < 0.8 else s
    if rng.random() < 0.08:
        s += str(int(rng.integers(1, 100)))
    elif rng.random() < 0.05:
        s = s + " & " + SYLLABLES[int(rng.integers(0, len(SYLLABLES)))].capitalize()
    return s


def tagline(rng):
    """A small line under a word mark: two or three lower-case words."""
    return " ".join(SYLLABLES[int(i)] + SYLLABLES[int(j)] for i, j in
                    rng.integers(0, len(SYLLABLES), (int(rng.integers(2, 4)), 2)))


def _text_el(x, y, s, font, size, weight, style, paint, anchor="middle", spacing=0.0):
    sp = f' letter-spacing="{_f(spacing)}"' if spacing else ""
    # y is the line's centre; the baseline is about a third of the size below it (librsvg
    # does not honour dominant-baseline="central").
    return (f'<text x="{_f(x)}" y="{_f(y + 0.35 * size)}" font-family="{font}" '
            f'font-size="{_f(size)}" font-weight="{weight}" font-style="{style}" '
            f'text-anchor="{anchor}"{sp} {paint}>{s.replace("&", "&amp;")}</text>')


def _text_paint(rng, fill, bg_colour, w):
    """fill only (most), an outline only (fill none), or a fill with an outline."""
    u = rng.random()
    sw = _f(max(1.0, w * rng.uniform(0.003, 0.01)))
    if u < 0.12:
        return f'fill="none" stroke="{fill}" stroke-width="{sw}"'
    if u < 0.2:
        return f'fill="{fill}" stroke="{bg_colour}" stroke-width="{sw}"'
    return f'fill="{fill}"'


def icon(rng, cx, cy, s, cols):
    """A small mark beside a word: one to three flat shapes in a box of side s centred at
    (cx, cy)."""
    out = ""
    for _ in range(int(rng.integers(1, 4))):
        el = shape(rng, s, cols[int(rng.integers(0, len(cols)))])
        out += el
    return f'<g transform="translate({_f(cx - s / 2)},{_f(cy - s / 2)})">{out}</g>'


def text(rng, w, bg, h=None):
    """A text logo on a w x h canvas (wide for most word marks), in one of FONTS at one of
    WEIGHTS, laid out as one of:
      word      a word mark or monogram (1-2 lines), sometimes on a badge shape;
      icon      a mark (flat shapes) beside or above the word;
      bar       a coloured bar (square or rounded) across the canvas, the word on it;
      tagline   a word mark with a small line of text under it;
    each with a flat fill, a gradient fill, an outline only or a fill with an outline. The
    text's colour differs from the badge's, the bar's and the background's (palette() spreads
    hues), so it stays readable."""
    h = w if h is None else h
    cols = palette(rng, int(rng.integers(2, 5)))
    body = background(rng, w, bg, cols[-1], h)
    ground = cols[-1] if bg == "colour" else "#ffffff"
    defs = ""
    layout = str(rng.choice(["word", "icon", "bar", "tagline"], p=[0.4, 0.2, 0.2, 0.2]))
    font = FONTS[int(rng.integers(0, len(FONTS)))]
    weight = WEIGHTS[int(rng.integers(0, len(WEIGHTS)))]
    style = "italic" if rng.random() < 0.12 else "normal"
    spacing = 0.0
    fill = cols[0]
    if rng.random() < 0.12:
        defs = gradient_def(rng, "tg", palette(rng, 2), w)
        fill = "url(#tg)"
    lines = [word(rng) for _ in range(int(rng.integers(1, 3)) if layout == "word" else 1)]
    longest = max(len(s) for s in lines)
    # The box the text gets: the whole canvas, or what the icon / bar / tagline leave.
    x0, y0, bw, bh = 0.0, 0.0, float(w), float(h)
    if layout == "word" and rng.random() < 0.35:
        s = min(w, h)
        badge = shape(rng, s, cols[1] if len(cols) > 2 else cols[-1])
        body += f'<g transform="translate({_f((w - s) / 2)},{_f((h - s) / 2)})">{badge}</g>'
    elif layout == "icon":
        if w >= 1.4 * h:  # icon on the left, word on the right
            s = 0.8 * h
            body += icon(rng, 0.05 * w + s / 2, h / 2, s, cols[1:] or cols)
            x0, bw = 0.05 * w + s, w - (0.05 * w + s)
        else:  # icon above, word below
            s = 0.5 * h
            body += icon(rng, w / 2, 0.05 * h + s / 2, s, cols[1:] or cols)
            y0, bh = 0.05 * h + s, h - (0.05 * h + s)
    elif layout == "bar":
        bar_h = h * rng.uniform(0.35, 0.8)
        rx = bar_h * rng.uniform(0, 0.5) if rng.random() < 0.5 else 0
        bar = cols[1] if len(cols) > 2 else cols[-1]
        if bar == ground:
            bar = palette(rng, 1)[0]
        body += (f'<rect x="{_f(0.04 * w)}" y="{_f((h - bar_h) / 2)}" width="{_f(0.92 * w)}" '
                 f'height="{_f(bar_h)}" rx="{_f(rx)}" fill="{bar}"/>')
        ground = bar
        x0, y0, bw, bh = 0.06 * w, (h - bar_h) / 2, 0.88 * w, bar_h
        if rng.random() < 0.5 and fill != "url(#tg)":
            fill = "#ffffff" if rng.random() < 0.6 else cols[0]
    elif layout == "tagline":
        bh = 0.7 * h
    if rng.random() < 0.2:
        spacing = rng.uniform(0.02, 0.15)
    size = min(0.8 * bh / len(lines), 1.25 * bw / max(longest, 1) / (1 + spacing)) * \
        rng.uniform(0.6, 0.95)
    paint = _text_paint(rng, fill, ground, min(w, h))
    cy = y0 + bh / 2 - (len(lines) - 1) * size * 0.55
    for i, s in enumerate(lines):
        body += _text_el(x0 + bw / 2, cy + i * size * 1.1, s, font, size, weight, style, paint,
                         spacing=spacing * size)
    if layout == "tagline":
        tl = tagline(rng)
        ts = min(size * rng.uniform(0.22, 0.45), 1.6 * w / max(len(tl), 1))
        tcol = cols[1] if len(cols) > 2 and rng.random() < 0.5 else cols[0]
        body += _text_el(w / 2, 0.7 * h + 0.5 * (0.3 * h), tl,
                         FONTS[int(rng.integers(0, len(FONTS)))], ts, "normal", "normal",
                         f'fill="{tcol}"')
    return _svg(w, body, defs, h=h)


def gradient_def(rng, gid, cols, w, box=False):
    """A linear or radial gradient through cols, in user space across the canvas, or across the
    filled shape's bounding box when box (so that the whole ramp shows on a small shape)."""
    if box:
        w = 1.0
    units = "objectBoundingBox" if box else "userSpaceOnUse"
    stops = "".join(f'<stop offset="{i / max(len(cols) - 1, 1):.2f}" stop-color="{c}"/>'
                    for i, c in enumerate(cols))
    if rng.random() < 0.6:
        a = rng.uniform(0, 2 * math.pi)
        x1, y1 = w / 2 - 0.5 * w * math.cos(a), w / 2 - 0.5 * w * math.sin(a)
        x2, y2 = w - x1, w - y1
        return (f'<linearGradient id="{gid}" gradientUnits="{units}" x1="{x1:.3f}" '
                f'y1="{y1:.3f}" x2="{x2:.3f}" y2="{y2:.3f}">{stops}</linearGradient>')
    cx, cy = rng.uniform(0.3, 0.7, 2) * w
    return (f'<radialGradient id="{gid}" gradientUnits="{units}" cx="{cx:.3f}" '
            f'cy="{cy:.3f}" r="{rng.uniform(0.3, 0.7) * w:.3f}">{stops}</radialGradient>')


def gradient(rng, w, bg):
    """A large shape (or the whole background) filled with a visible linear / radial gradient,
    then a few smaller shapes, flat or with their own gradients."""
    defs, body = "", ""
    ng = int(rng.integers(1, 4))
    for g in range(ng):
        defs += gradient_def(rng, f"g{g}", palette(rng, int(rng.integers(2, 4))), w, box=g > 0)
    if rng.random() < 0.35:
        body += f'<rect x="0" y="0" width="{w}" height="{w}" fill="url(#g0)"/>'
    else:
        body += big_shape(rng, w, "url(#g0)")
    flats = palette(rng, int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 6))):
        fill = f"url(#g{int(rng.integers(1, ng))})" if ng > 1 and rng.random() < 0.5 else \
            flats[int(rng.integers(0, len(flats)))]
        body += shape(rng, w, fill)
    return _svg(w, body, defs)


def big_shape(rng, w, fill):
    """A shape covering a third to most of the canvas."""
    r = rng.uniform(0.3, 0.46) * w
    if rng.random() < 0.5:
        return f'<circle cx="{_f(w / 2)}" cy="{_f(w / 2)}" r="{_f(r)}" fill="{fill}"/>'
    return (f'<rect x="{_f(w / 2 - r)}" y="{_f(w / 2 - r)}" width="{_f(2 * r)}" '
            f'height="{_f(2 * r)}" rx="{_f(r * rng.uniform(0, 0.5))}" fill="{fill}"/>')


def blob(rng, cx, cy, r):
    """A closed smooth blob: cubic Béziers through jittered points on a circle."""
    n = int(rng.integers(4, 9))
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        rr = r * rng.uniform(0.6, 1.3)
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    d = f"M{_f(pts[0][0])},{_f(pts[0][1])}"
    for i in range(n):
        p0, p1 = pts[i], pts[(i + 1) % n]
        c1 = (p0[0] + (p1[1] - p0[1]) * 0.3, p0[1] - (p1[0] - p0[0]) * 0.3)
        c2 = (p1[0] + (p1[1] - p0[1]) * 0.3, p1[1] - (p1[0] - p0[0]) * 0.3)
        d += f"C{_f(c1[0])},{_f(c1[1])} {_f(c2[0])},{_f(c2[1])} {_f(p1[0])},{_f(p1[1])}"
    return d + "Z"


def illustration(rng, w, bg):
    """A layered flat illustration: 30..150 overlapping shapes and blobs, 8..40 colours,
    outlines and semi-transparent layers (aims at complex)."""
    cols = palette(rng, int(rng.integers(8, 41)))
    body = background(rng, w, bg, cols[0])
    outline = cols[int(rng.integers(0, len(cols)))] if rng.random() < 0.5 else None
    for i in range(int(rng.integers(30, 151))):
        fill = cols[int(rng.integers(0, len(cols)))]
        scale = w * (0.3 if i < 10 else 0.12)
        if rng.random() < 0.5:
            cx, cy = rng.uniform(0.05, 0.95, 2) * w
            op = f' fill-opacity="{rng.uniform(0.5, 0.9):.2f}"' if rng.random() < 0.2 else ""
            st = f' stroke="{outline}" stroke-width="{_f(w / 150)}"' if outline else ""
            body += f'<path d="{blob(rng, cx, cy, rng.uniform(0.2, 1) * scale)}" ' \
                    f'fill="{fill}"{op}{st}/>'
        else:
            body += shape(rng, w, fill, outline, w / 150)
    return _svg(w, body)


def _smooth_noise(rng, w, cells):
    g = rng.random((cells + 1, cells + 1))
    xs = np.linspace(0, cells, w, endpoint=False)
    i = xs.astype(int)
    t = xs - i
    t = t * t * (3 - 2 * t)
    a = g[i][:, i] * (1 - t)[None, :] + g[i][:, i + 1] * t[None, :]
    b = g[i + 1][:, i] * (1 - t)[None, :] + g[i + 1][:, i + 1] * t[None, :]
    return a * (1 - t)[:, None] + b * t[:, None]


def photo(rng, w):
    """A photo-like RGB image: multi-octave noise coloured through a random palette, soft
    blobs of light, and sensor grain (always complex)."""
    field = sum(_smooth_noise(rng, w, c) / k
                for k, c in enumerate((3, 7, 17, 41, max(w // 6, 50)), start=1))
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    cols = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)]
                     for c in palette(rng, int(rng.integers(3, 7)))], dtype=np.float64)
    pos = np.linspace(0, 1, len(cols))
    img = np.stack([np.interp(field, pos, cols[:, ch]) for ch in range(3)], axis=-1)
    yy, xx = np.mgrid[0:w, 0:w] / w
    for _ in range(int(rng.integers(2, 8))):
        cx, cy, r = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
        m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img += m[..., None] * rng.uniform(-90, 90, 3)
    img += rng.normal(0, rng.uniform(2, 14), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


GENERATORS = {"geometric": geometric, "text": text, "gradient": gradient,
              "illustration": illustration}
