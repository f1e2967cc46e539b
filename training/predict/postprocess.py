"""postprocess.py - the reference implementation of what the server computes from a predict
model's raw output, following each manifest's "postprocessing" object (README.md, "The contract
for pl_predict"). The C side (pl_predict) is checked against these functions; they need numpy
only (no XGBoost), the model's raw output being an argument.

Invariants:
  1. Every function reads its constants from the manifest's postprocessing (passed as `post`),
     never from the training scripts: what the server can do, these do.
  2. Bad caller input raises ValueError whose first word is the field at fault (the server's
     400 names the same field).
  3. Deterministic: ties are broken the way the manifest says (lower price, lower channel index).
"""
import datetime as dt
import math

import numpy as np


# ---- shared ----

def band(value, bands):
    """The first band with min <= value < max (either bound optional); None when none."""
    for b in bands:
        if ("min" not in b or value >= b["min"]) and ("max" not in b or value < b["max"]):
            return b["name"]
    return None


def top_reasons(contributions, k, mode):
    """contributions: {column: value}. mode "positive": the k largest positive, "abs": the k
    largest by absolute value. Ties: column order. Returns [(column, contribution)]."""
    items = list(contributions.items())
    if mode == "positive":
        items = [it for it in items if it[1] > 0]
        key = [-v for _, v in items]
    else:
        key = [-abs(v) for _, v in items]
    order = sorted(range(len(items)), key=lambda i: (key[i], i))
    return [items[i] for i in order[:k]]


def classification(prob, post):
    """churn-like binary classifiers: probability, predicted flag, band."""
    return {"probability": float(prob), "predicted": bool(prob >= post["threshold"]),
            "band": band(prob, post["bands"])}


def regression(value, post):
    """profitability-like regressors: the value, its band and the residual interval."""
    rq = post["interval"]["residual_quantiles"]
    return {"value": float(value), "band": band(value, post["bands"]),
            "interval_90": [float(value) + rq["0.05"], float(value) + rq["0.95"]]}


# ---- revenue leak ----

def pattern_amount(terms, row):
    """One pattern's amount from the row (a {column: value} dict), postprocessing.patterns[i]
    ["terms"]: max(0, (value - minus) * prod(times) * scale / divide_by), 0 when divide_by is
    named and <= 0."""
    v = row[terms["value"]] - (row[terms["minus"]] if terms.get("minus") else 0.0)
    for t in terms.get("times", []):
        v *= row[t]
    v *= terms.get("scale", 1.0)
    if terms.get("divide_by"):
        d = row[terms["divide_by"]]
        if d <= 0:
            return 0.0
        v /= d
    return max(0.0, float(v))


def leak(probs, row, post):
    """revenue-leak: probs = the 5 class probabilities (labels order)."""
    p_leak = 1.0 - float(probs[0])
    pats = post["patterns"]
    best = max(pats, key=lambda p: (probs[p["class_index"]], -p["class_index"]))
    amounts = {p["label"]: pattern_amount(p["terms"], row) for p in pats}
    est = sum(float(probs[p["class_index"]]) * amounts[p["label"]] for p in pats)
    return {"leak_probability": p_leak, "flagged": p_leak >= post["threshold"],
            "pattern": best["label"], "estimated_amount": est,
            "band": band(p_leak, post["bands"])}


# ---- pricing ----

def price_grid(log_value, post, min_price=None, max_price=None, steps=None, unit_cost=None,
               quantity=1.0):
    """pricing: volume, revenue / margin over the grid, the optimum and its elasticity."""
    v = math.exp(log_value)
    g = post["grid"]
    lo = 0.5 * v if min_price is None else float(min_price)
    hi = 1.5 * v if max_price is None else float(max_price)
    steps = g["default_steps"] if steps is None else int(steps)
    if not lo > 0:
        raise ValueError("min_price must be > 0")
    if not hi > lo:
        raise ValueError("max_price must be > min_price")
    if not g["min_steps"] <= steps <= g["max_steps"]:
        raise ValueError(f"steps must be in [{g['min_steps']}, {g['max_steps']}]")
    if not quantity > 0:
        raise ValueError("quantity must be > 0")
    w = post["willingness_to_pay"]
    mu, s = w["location"], w["scale"]
    points, best = [], None
    for i in range(steps):
        p = lo + i * (hi - lo) / (steps - 1)
        q = 1.0 / (1.0 + math.exp((math.log(p) - log_value - mu) / s))
        obj = (p - unit_cost) * quantity * q if unit_cost is not None else p * quantity * q
        pt = {"price": p, "share": q, "volume": quantity * q, "revenue": p * quantity * q,
              "objective": obj, "elasticity": -(1.0 - q) / s}
        points.append(pt)
        if best is None or obj > best["objective"]:  # strict: ties keep the lower price
            best = pt
    return {"value": v, "objective": "margin" if unit_cost is not None else "revenue",
            "grid": points, "optimum": best}


# ---- budget ----

def response(ch, x):
    return ch["a"] * (1.0 - math.exp(-ch["b"] * x))


def allocate_budget(post, total, limits=None, steps=1000):
    """budget: marginal-return greedy. limits: {channel: {"min": .., "max": ..}} (optional
    each); when limits is given, the channels it does not name are fixed at 0."""
    chans = post["channels"]
    names = [c["name"] for c in chans]
    limits = limits if limits is not None else {n: {} for n in names}
    for n in limits:
        if n not in names:
            raise ValueError(f"channels.{n} is not a channel of this model ({', '.join(names)})")
    if not total > 0:
        raise ValueError("total must be > 0")
    if not 1 <= steps <= 100000:
        raise ValueError("steps must be in [1, 100000]")
    lo, hi = [], []
    for n in names:
        if n in limits:
            a, b = float(limits[n].get("min", 0.0)), float(limits[n].get("max", total))
        else:
            a, b = 0.0, 0.0
        if not 0 <= a <= b:
            raise ValueError(f"channels.{n} needs 0 <= min <= max")
        lo.append(a)
        hi.append(b)
    if sum(lo) > total:
        raise ValueError("total is below the sum of the channel minimums")
    if sum(hi) < total:
        raise ValueError("total is above the sum of the channel maximums")
    x = list(lo)
    rem = total - sum(lo)
    d = rem / steps
    eps = 1e-9 * total
    while rem > eps:
        best, gain, step = -1, -math.inf, 0.0
        for k, c in enumerate(chans):
            dk = min(d, hi[k] - x[k], rem)
            if dk <= 0:
                continue
            g = response(c, x[k] + dk) - response(c, x[k])
            if g > gain:
                best, gain, step = k, g, dk
        if best < 0:
            break
        x[best] += step
        rem -= step
    out = []
    for k, c in enumerate(chans):
        out.append({"channel": c["name"], "spend": x[k], "return": response(c, x[k]),
                    "marginal_return": c["a"] * c["b"] * math.exp(-c["b"] * x[k])})
    return {"allocation": out, "curves_return": sum(o["return"] for o in out)}


def model_row(post, allocation, week_of_year=None):
    """The model's input row for an allocation (the what-if cross-check)."""
    wk = 0.0 if week_of_year is None else 2 * math.pi * week_of_year / 52
    row = [0.0] * (len(post["channels"]) + 2)
    for a, c in zip(allocation, post["channels"]):
        row[c["column_index"]] = a["spend"]
    row[-2], row[-1] = math.sin(wk), math.cos(wk)
    return row


# ---- demand ----

def _nth_weekday(year, month, weekday, n):
    if n > 0:
        d = dt.date(year, month, 1)
        d += dt.timedelta((weekday - d.weekday()) % 7)
        return d + dt.timedelta(7 * (n - 1))
    d = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(1)
    return d - dt.timedelta((d.weekday() - weekday) % 7)


def us_holidays(year):
    """US federal holidays on their calendar dates (no weekend shift): demand's rule."""
    return {dt.date(year, 1, 1), _nth_weekday(year, 1, 0, 3), _nth_weekday(year, 2, 0, 3),
            _nth_weekday(year, 5, 0, -1), dt.date(year, 7, 4), _nth_weekday(year, 9, 0, 1),
            _nth_weekday(year, 10, 0, 2), dt.date(year, 11, 11), _nth_weekday(year, 11, 3, 4),
            dt.date(year, 12, 25)}


def forecast(predict, history, last_date, horizon, post, weather=None, holidays=None, level=0.8):
    """demand: recursive forecast. predict: rows (n x 11 float32) -> n ratios (the model).
    history: >= 14 values, oldest first, the last on last_date. weather: optional list (one per
    forecast day) of {temp, percip, weather_snow} dicts (absent keys: NaN). holidays: optional
    {date: 0|1} overrides."""
    if len(history) < 14:
        raise ValueError("history needs at least 14 values")
    if not 1 <= horizon <= post["max_horizon"]:
        raise ValueError(f"horizon must be in [1, {post['max_horizon']}]")
    if weather is not None and len(weather) > horizon:
        raise ValueError("weather has more days than the horizon")
    qlo, qhi = {0.8: ("0.1", "0.9"), 0.9: ("0.05", "0.95")}[level]
    rq = post["residual_quantiles"]
    vals = [float(v) for v in history]
    out = []
    for h in range(1, horizon + 1):
        day = last_date + dt.timedelta(h)
        hol = 1.0 if day in us_holidays(day.year) else 0.0
        if holidays and day in holidays:
            hol = float(holidays[day])
        w = (weather[h - 1] if weather and h - 1 < len(weather) else None) or {}
        lag = {k: vals[-k] for k in range(1, 15)}
        m7 = sum(lag[k] for k in range(1, 8)) / 7.0
        if not m7 > 0:
            raise ValueError("history: the mean of the 7 days before a forecast day must be > 0")
        row = [lag[1] / m7, lag[2] / m7, lag[7] / m7, lag[14] / m7, m7,
               float(day.weekday()), float(day.month), hol,
               w.get("temp", math.nan), w.get("percip", math.nan), w.get("weather_snow", math.nan)]
        y = m7 * float(predict(np.asarray([row], dtype=np.float32))[0])
        vals.append(y)
        out.append({"date": day.isoformat(), "forecast": y, "lower": y + rq[qlo][h - 1],
                    "upper": y + rq[qhi][h - 1]})
    return out


# ---- anomaly ----

def anomaly(path_length, row, post):
    """anomaly: score, flag and the columns furthest from their usual range."""
    score = 2.0 ** (-float(path_length) / post["c_max_samples"])
    e = post["explanation"]
    zs = []
    for name, r in e["ranges"].items():
        scale = r["scale"] if r["scale"] > 0 else np.finfo(np.float64).tiny
        z = abs(row[name] - r["median"]) / scale
        if z > e["min_z"]:
            zs.append((name, z))
    zs.sort(key=lambda t: -t[1])
    return {"score": score, "anomalous": score >= post["threshold"],
            "reasons": [{"feature": n, "value": row[n], "z": z,
                         "usual": [e["ranges"][n]["p01"], e["ranges"][n]["p99"]]}
                        for n, z in zs[:e["top_k"]]]}
