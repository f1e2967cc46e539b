"""GET /api/{model}/drift for the two predict models whose requests are not one model row
(src/pipelines/predict_drift.c, invariant 4):

- budget: the requested total against the training weeks' total spend (the manifest's
  training_distribution.features.total, added by training/predict/budget.py), the allocation's
  spends against the channels' training spends, the week against week_sin / week_cos (missing
  when the caller gives no week_of_year);
- demand: the first forecast day's model row (lag ratios, mean7, calendar, weather) rebuilt from
  each logged request.

Requests drawn from the training distributions show no drift; shifted ones (totals ten times
larger, ridership ten times higher) show an alert on exactly the columns that moved: scaling a
history leaves its lag ratios unchanged, so their PSI is the same in both windows."""
import datetime
import json
import os

import pytest
import requests

from oip_util import bearer, keyed_server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = json.load(open(os.path.join(ROOT, "tests", "fixtures", "predict", "expected.json")))["cases"]


@pytest.fixture(scope="module")
def srv():
    yield from keyed_server(["--models-dir", os.path.join(ROOT, "models")])


def training(model, col):
    doc = json.load(open(os.path.join(ROOT, "models", model, "1", "modeld.json")))
    return doc["preprocessing"]["training_distribution"]["features"][col]


def inverse_cdf(dist):
    """The training CDF's inverse, piecewise linear through min, the quantiles, max."""
    pts = [(0.0, dist["min"])] + sorted((float(k), v) for k, v in dist["quantiles"].items()) \
        + [(1.0, dist["max"])]

    def inv(u):
        for (p0, v0), (p1, v1) in zip(pts, pts[1:]):
            if p0 <= u <= p1:
                return v0 + (v1 - v0) * (u - p0) / (p1 - p0) if p1 > p0 else v0
        return pts[-1][1]
    return inv


def last_time(srv, model):
    h = requests.get(srv.url + "/api/%s/history?limit=1" % model, headers=bearer(srv.read_key))
    return h.json()["items"][0]["time_ms"] + 1


def drift(srv, model, **q):
    r = requests.get(srv.url + "/api/%s/drift" % model, params=q, headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    return r.json()


def predict(srv, model, items):
    r = requests.post(srv.url + "/api/%s/batch" % model, json={"items": items},
                      headers=bearer(srv.write_key))
    assert r.status_code == 200 and r.json()["count"] == len(items), r.text


def test_budget_drift(srv):
    inv = inverse_cdf(training("budget", "total"))
    n = 120
    predict(srv, "budget", [{"total": round(inv((i + 0.5) / n), 3), "week_of_year": i % 52 + 1}
                            for i in range(n)])
    d = drift(srv, "budget")
    assert d["rows"] == n, d
    total = d["features"]["total"]
    assert total["level"] == "none" and total["ks"] < 0.1, total
    assert set(d["features"]) == {"search", "social", "display", "video", "email", "week_sin",
                                  "week_cos", "total"}
    assert d["features"]["week_sin"]["missing"] == 0
    t0 = last_time(srv, "budget")
    # ten times the budgets, and no week given
    predict(srv, "budget", [{"total": round(10 * inv((i + 0.5) / n), 3)} for i in range(n)])
    d = drift(srv, "budget", **{"from": t0})
    assert d["rows"] == n and d["status"] == "alert", d
    assert d["features"]["total"]["level"] == "alert" and d["features"]["total"]["ks"] > 0.9
    assert d["features"]["search"]["level"] == "alert"  # spends far beyond those of training
    assert d["features"]["week_sin"]["missing"] == 1  # no week_of_year: missing, not week 0


def demand_request(scale, last_date):
    base = next(c["features"] for c in CASES if c.get("model") == "demand")
    return {"history": [round(v * scale, 4) for v in base["history"]],
            "last_date": last_date.isoformat(), "horizon": 1}


def test_demand_drift(srv):
    base = next(c["features"] for c in CASES if c.get("model") == "demand")["history"]
    m7 = sum(base[-7:]) / 7
    inv = inverse_cdf(training("demand", "mean7"))
    start = datetime.date(2016, 1, 4)
    n = 140
    # mean7 drawn from training, every weekday, dates over the year
    predict(srv, "demand", [demand_request(inv((i + 0.5) / n) / m7,
                                           start + datetime.timedelta(days=i * 2 + i // 7))
                            for i in range(n)])
    d = drift(srv, "demand")
    assert d["rows"] == n, d
    assert d["features"]["mean7"]["level"] == "none" and d["features"]["mean7"]["ks"] < 0.1, d
    assert d["features"]["day_of_week"]["level"] == "none", d["features"]["day_of_week"]
    assert d["features"]["temp"]["missing"] == 1  # no weather given
    before = d["features"]
    t0 = last_time(srv, "demand")
    # ridership ten times higher
    predict(srv, "demand", [demand_request(10 * inv((i + 0.5) / n) / m7,
                                           start + datetime.timedelta(days=i * 2 + i // 7))
                            for i in range(n)])
    d = drift(srv, "demand", **{"from": t0})
    assert d["rows"] == n and d["status"] == "alert", d
    assert d["features"]["mean7"]["level"] == "alert" and d["features"]["mean7"]["ks"] > 0.9
    for k in ("lag1_ratio", "lag2_ratio", "lag7_ratio", "lag14_ratio"):
        assert d["features"][k]["psi"] == pytest.approx(before[k]["psi"], abs=1e-6), k
