"""svglabel.py - the logo type of an image from its SVG source (issue 9 §1), for the generated
images and the icon themes alike: one rule for every image that has an SVG.

Precedence: text_based (a <text> element is drawn), else gradient (a drawn fill or stroke uses a
gradient whose stops differ visibly), else simple_geometric (<= 25 drawn elements and <= 6
significant colours), else complex. Images without an SVG (the photo-like generator) are complex
by construction and never come here.

Invariants:
  1. Only what is drawn counts: elements inside <defs>, <clipPath>, <mask>, <symbol>, <pattern>,
     <marker> or with display:none are ignored (they are painted only through a reference).
  2. Colours are counted after inheritance (fill/stroke/color flow down from <g>), with CSS class
     rules of the document's <style> applied, and merged when they agree in the top 4 bits of
     each channel; a paint with opacity < 0.1 is not significant.
  3. A gradient is visible when two of its stops (after following xlink:href for the stops)
     differ by >= GRADIENT_SPREAD in some channel, counting only stops with opacity >= 0.25,
     or when it fades: the stops' opacities (times the paint's) span >= FADE_SPREAD (the
     shines and shadows of icon themes are such fades, and they show as smooth ramps).
"""
import re
import xml.etree.ElementTree as ET

LABELS = ["simple_geometric", "text_based", "gradient", "complex"]
MAX_SIMPLE_ELEMENTS = 25
MAX_SIMPLE_COLOURS = 6
GRADIENT_SPREAD = 40
FADE_SPREAD = 0.5

SHAPES = {"path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "image",
          "use"}
HIDDEN = {"defs", "clipPath", "mask", "symbol", "pattern", "marker", "linearGradient",
          "radialGradient", "style", "title", "desc", "metadata", "filter"}
NAMED = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 128, 0),
         "blue": (0, 0, 255), "yellow": (255, 255, 0), "gray": (128, 128, 128),
         "grey": (128, 128, 128), "orange": (255, 165, 0), "purple": (128, 0, 128),
         "silver": (192, 192, 192), "navy": (0, 0, 128), "maroon": (128, 0, 0),
         "lime": (0, 255, 0), "aqua": (0, 255, 255), "cyan": (0, 255, 255),
         "fuchsia": (255, 0, 255), "magenta": (255, 0, 255), "teal": (0, 128, 128),
         "olive": (128, 128, 0)}
PAINT_PROPS = ("fill", "stroke", "color", "fill-opacity", "stroke-opacity", "opacity",
               "stop-color", "stop-opacity", "display")


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def parse_colour(v):
    """(r, g, b) of a CSS colour, or None for none / url() / unknown."""
    v = v.strip().lower()
    m = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", v)
    if m:
        h = m.group(1)
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
    m = re.fullmatch(r"rgba?\(\s*([\d.]+)%?\s*,\s*([\d.]+)%?\s*,\s*([\d.]+)%?.*\)", v)
    if m:
        return tuple(min(255, int(float(x))) for x in m.groups())
    return NAMED.get(v)


def _style(s):
    out = {}
    for part in (s or "").split(";"):
        if ":" in part:
            k, v = part.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def _class_rules(root):
    """{class name: {property: value}} from simple `.name { ... }` rules in <style> elements."""
    rules = {}
    for el in root.iter():
        if _local(el.tag) == "style" and el.text:
            for names, body in re.findall(r"([^{}]+)\{([^}]*)\}", el.text):
                for n in re.findall(r"\.([A-Za-z0-9_-]+)", names):
                    rules.setdefault(n, {}).update(_style(body))
    return rules


def _props(el, rules):
    p = {}
    for c in (el.get("class") or "").split():
        p.update(rules.get(c, {}))
    for k in PAINT_PROPS:
        if el.get(k) is not None:
            p[k] = el.get(k)
    p.update({k: v for k, v in _style(el.get("style")).items() if k in PAINT_PROPS})
    return p


def _opacity(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return 1.0


class _Scan:
    def __init__(self, root):
        self.rules = _class_rules(root)
        self.ids = {el.get("id"): el for el in root.iter() if el.get("id")}
        self.elements = 0
        self.colours = set()
        self.text = False
        self.gradient = False

    def stops(self, grad, depth=0):
        """[(colour, opacity)] of a gradient's stops, following xlink:href (at most 8 links)."""
        own = [s for s in grad if _local(s.tag) == "stop"]
        if not own and depth < 8:
            href = grad.get("{http://www.w3.org/1999/xlink}href") or grad.get("href") or ""
            target = self.ids.get(href.lstrip("#"))
            return self.stops(target, depth + 1) if target is not None else []
        out = []
        for s in own:
            p = _props(s, self.rules)
            c = parse_colour(p.get("stop-color", "black"))
            if c is not None:
                out.append((c, _opacity(p.get("stop-opacity"))))
        return out

    def paint(self, value, opacity, colour_prop):
        if value is None or value.strip() in ("none", "transparent"):
            return
        m = re.match(r"url\(\s*['\"]?#([^)'\"]+)", value.strip())
        if m:
            target = self.ids.get(m.group(1))
            if target is not None and opacity >= 0.1:
                stops = self.stops(target)
                cols = [c for c, o in stops if o >= 0.25]
                for c in cols:
                    self.colours.add(tuple(x >> 4 for x in c))
                if cols and max(max(c[i] for c in cols) - min(c[i] for c in cols)
                                for i in range(3)) >= GRADIENT_SPREAD:
                    self.gradient = True
                alphas = [o for _, o in stops]
                if alphas and (max(alphas) - min(alphas)) * opacity >= FADE_SPREAD:
                    self.gradient = True
            return
        c = parse_colour(colour_prop if value.strip() == "currentcolor" else value)
        if c is not None and opacity >= 0.1:
            self.colours.add(tuple(x >> 4 for x in c))

    def walk(self, el, inh):
        tag = _local(el.tag)
        if tag in HIDDEN:
            return
        p = dict(inh)
        own = _props(el, self.rules)
        if own.get("display") == "none":
            return
        op = inh["opacity"] * _opacity(own.get("opacity"))
        p.update({k: v for k, v in own.items() if k not in ("opacity",)})
        p["opacity"] = op
        if tag in SHAPES:
            self.elements += 1
            self.text |= tag == "text"
            colour = p.get("color", "black")
            self.paint(p.get("fill", "black"), op * _opacity(p.get("fill-opacity")), colour)
            self.paint(p.get("stroke"), op * _opacity(p.get("stroke-opacity")), colour)
        for child in el:
            self.walk(child, p)


def analyse(svg_text):
    """{elements, colours, text, gradient, label} of an SVG document (str or bytes)."""
    root = ET.fromstring(svg_text)
    s = _Scan(root)
    s.walk(root, {"opacity": 1.0})
    if s.text:
        label = "text_based"
    elif s.gradient:
        label = "gradient"
    elif s.elements <= MAX_SIMPLE_ELEMENTS and len(s.colours) <= MAX_SIMPLE_COLOURS:
        label = "simple_geometric"
    else:
        label = "complex"
    return {"elements": s.elements, "colours": len(s.colours), "text": s.text,
            "gradient": s.gradient, "label": label}
