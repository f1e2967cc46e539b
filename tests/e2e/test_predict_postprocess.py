"""The predict models' contract (training/predict/README.md) and the reference postprocessing
(training/predict/postprocess.py) the server's pl_predict is checked against: every shipped
predict manifest says what the server needs (schema, postprocessing, drift distribution,
metrics), the budget optimiser equals a brute-force search on small cases, the price grid finds
the analytic optimum, the forecast recursion equals the training script's, the leak amounts
equal the generator's truth, the anomaly score separates the validation samples. Fast: no
server, no training (the synthetic generators run on a few hundred rows)."""
import datetime as dt
import itertools
import json
import math
import os
import random
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "training", "predict"))
import postprocess as pp  # noqa: E402
import synth  # noqa: E402

PREDICT = ["profitability", "churn", "revenue-leak", "pricing", "budget", "demand", "anomaly"]
TASKS = {"profitability": "regression", "churn": "classification",
         "revenue-leak": "classification", "pricing": "price_response",
         "budget": "budget_allocation", "demand": "forecast", "anomaly": "anomaly"}


def manifest(name):
    with open(os.path.join(ROOT, "models", name, "1", "modeld.json")) as f:
        return json.load(f)


def xgb_predict(name, rows):
    xgb = pytest.importorskip("xgboost")
    b = xgb.Booster(params={"nthread": 1},
                    model_file=os.path.join(ROOT, "models", name, "1", "model.json"))
    return b.predict(xgb.DMatrix(np.asarray(rows, dtype=np.float32), missing=np.nan))


# ---- the manifests ----

@pytest.mark.parametrize("name", PREDICT)
def test_manifest_says_what_the_server_needs(name):
    mf = manifest(name)
    assert mf["family"] == "predict" and mf["runtime"] == "xgboost"
    cols = mf["input_schema"]["columns"]
    assert len(cols) == mf["inputs"][0]["shape"][1]
    dist = mf["preprocessing"]["training_distribution"]["features"]
    for i, c in enumerate(cols):
        assert c["index"] == i and c["type"] in ("number", "integer", "category")
        assert isinstance(c["required"], bool) and "unit" in c and c["description"]
        if c["type"] == "category":
            assert c["encoding"] == "index" and len(c["values"]) == len(set(c["values"])) >= 2
            assert len(dist[c["name"]]["proportions"]) == len(c["values"])
        else:
            assert c["minimum"] < c["maximum"]
            d = dist[c["name"]]
            assert d["edges"] == sorted(d["edges"])
            assert len(d["proportions"]) == len(d["edges"]) + 1
            assert abs(sum(d["proportions"]) - 1) < 1e-4
            assert c["minimum"] <= d["min"] <= d["max"] <= c["maximum"]
    # budget's drift also compares the requested total (predict_drift.c, invariant 4)
    assert set(dist) == {c["name"] for c in cols} | ({"total"} if name == "budget" else set())
    assert mf["postprocessing"]["task"] == TASKS[name]
    assert mf["metrics"] and all(isinstance(v, (int, float)) for v in mf["metrics"].values())
    for s in mf["validation"]["samples"]:
        for row in s["inputs"]["features"]:
            for c, v in zip(cols, row):
                if c["type"] == "category":
                    assert v == int(v) and 0 <= v < len(c["values"])
                else:
                    assert c["minimum"] <= v <= c["maximum"], (c["name"], v)


@pytest.mark.parametrize("name", ["churn", "profitability", "pricing"])
def test_contribution_samples_sum_to_the_margin(name):
    mf = manifest(name)
    ex = mf["postprocessing"]["explanation"]
    for s in ex["samples"]:
        total = sum(s["contributions"].values()) + s["bias"]
        raw = xgb_predict(name, [s["features"]])[0]
        if name == "churn":
            raw = math.log(raw / (1 - raw))
        assert total == pytest.approx(raw, abs=1e-3)


# ---- classification / regression ----

def test_bands_and_thresholds():
    post = manifest("churn")["postprocessing"]
    assert pp.classification(0.1, post)["band"] == "low"
    assert pp.classification(0.3, post)["band"] == "medium"
    assert pp.classification(0.95, post) == {"probability": 0.95, "predicted": True,
                                             "band": "high"}
    assert pp.classification(post["threshold"] - 1e-6, post)["predicted"] is False
    prof = manifest("profitability")["postprocessing"]
    assert pp.regression(-3.0, prof)["band"] == "loss"
    assert pp.regression(0.0, prof)["band"] == "marginal"
    r = pp.regression(20.0, prof)
    assert r["band"] == "profitable" and r["interval_90"][0] < 20.0 < r["interval_90"][1]
    reasons = pp.top_reasons({"a": 0.5, "b": -2.0, "c": 1.0, "d": 0.5}, 2, "positive")
    assert reasons == [("c", 1.0), ("a", 0.5)]
    assert pp.top_reasons({"a": 0.5, "b": -2.0, "c": 1.0}, 2, "abs") == [("b", -2.0), ("c", 1.0)]


# ---- revenue leak ----

def test_leak_amounts_equal_the_generators_truth():
    post = manifest("revenue-leak")["postprocessing"]
    data, truth = synth.revenue_leak(3000, 7)
    checked = 0
    for i in np.where(truth["label"] > 0)[0]:
        row = {k: float(v[i]) for k, v in data.items() if k != "customer_tier"}
        pat = post["patterns"][truth["label"][i] - 1]
        assert pat["class_index"] == truth["label"][i]
        got = pp.pattern_amount(pat["terms"], row)
        # the record's columns are rounded to cents / hundredths of hours
        assert got == pytest.approx(truth["leaked_amount"][i], rel=0.02, abs=5.0)
        checked += 1
    assert checked > 100


def test_leak_postprocessing():
    post = manifest("revenue-leak")["postprocessing"]
    row = {"hours_logged": 10.0, "hours_billed": 6.0, "list_rate": 100.0, "billed_rate": 90.0,
           "discount_pct": 25.0, "policy_max_discount_pct": 20.0, "credit_amount": 300.0,
           "credit_count": 2.0}
    probs = [0.1, 0.6, 0.1, 0.1, 0.1]
    r = pp.leak(probs, row, post)
    assert r["pattern"] == "unbilled_hours" and r["flagged"] and r["band"] == "likely"
    want = 0.6 * 400 + 0.1 * (0.05 * 6 * 90) + 0.1 * (10 * 6) + 0.1 * 150
    assert r["leak_probability"] == pytest.approx(0.9)
    assert r["estimated_amount"] == pytest.approx(want)
    row["credit_count"] = 0.0
    assert pp.pattern_amount(post["patterns"][3]["terms"], row) == 0.0


# ---- pricing ----

def test_price_grid_finds_the_analytic_optimum():
    post = manifest("pricing")["postprocessing"]
    s = post["willingness_to_pay"]["scale"]
    lv = math.log(5000.0)
    r = pp.price_grid(lv, post, min_price=3000, max_price=7000, steps=1001)
    opt = r["optimum"]
    # revenue p Q(p) is maximal where the elasticity is -1 (within a grid step)
    assert opt["elasticity"] == pytest.approx(-1.0, abs=4.0 / 1000 / s)
    assert all(p["objective"] <= opt["objective"] for p in r["grid"])
    assert r["grid"][0]["price"] == 3000 and r["grid"][-1]["price"] == pytest.approx(7000)
    # with a unit cost the optimum moves up and satisfies (p - c) / p * (1 - Q) / s = 1
    m = pp.price_grid(lv, post, min_price=3000, max_price=9000, steps=1001, unit_cost=4000)
    p, q = m["optimum"]["price"], m["optimum"]["share"]
    assert p > opt["price"]
    assert (p - 4000) / p * (1 - q) / s == pytest.approx(1.0, abs=0.05)
    d = pp.price_grid(lv, post)
    assert len(d["grid"]) == post["grid"]["default_steps"]
    assert d["grid"][0]["price"] == pytest.approx(2500.0)
    for bad, field in [({"min_price": 0}, "min_price"), ({"min_price": 10, "max_price": 5},
                                                         "max_price"), ({"steps": 1}, "steps")]:
        with pytest.raises(ValueError, match=f"^{field}"):
            pp.price_grid(lv, post, **bad)


# ---- budget ----

def brute_force(post, total, limits):
    """Every integer allocation within the limits that spends total exactly."""
    chans = post["channels"]
    ranges = [range(int(limits[c["name"]]["min"]), int(limits[c["name"]]["max"]) + 1)
              for c in chans]
    best = -math.inf
    for x in itertools.product(*ranges):
        if sum(x) == total:
            best = max(best, sum(pp.response(c, v) for c, v in zip(chans, x)))
    return best


def test_budget_greedy_equals_brute_force():
    rnd = random.Random(11)
    for case in range(60):
        n = rnd.randint(2, 4)
        post = {"channels": [{"name": f"c{k}", "column_index": k, "a": rnd.uniform(1, 100),
                              "b": rnd.uniform(0.01, 1.5)} for k in range(n)]}
        limits = {}
        for k in range(n):
            lo = rnd.randint(0, 2)
            limits[f"c{k}"] = {"min": lo, "max": lo + rnd.randint(0, 6)}
        lo_sum = sum(v["min"] for v in limits.values())
        hi_sum = sum(v["max"] for v in limits.values())
        total = rnd.randint(max(lo_sum, 1), max(hi_sum, 1))
        if total > hi_sum:
            continue
        steps = max(1, total - lo_sum)  # one unit per increment
        if total == lo_sum:
            steps = 1
        got = pp.allocate_budget(post, float(total), limits, steps=steps)
        assert got["curves_return"] == pytest.approx(brute_force(post, total, limits), abs=1e-9)
        spends = [a["spend"] for a in got["allocation"]]
        assert sum(spends) == pytest.approx(total)
        for a in got["allocation"]:
            assert limits[a["channel"]]["min"] - 1e-9 <= a["spend"] <= \
                limits[a["channel"]]["max"] + 1e-9


def test_budget_on_the_shipped_curves():
    post = manifest("budget")["postprocessing"]
    r = pp.allocate_budget(post, 150.0)
    alloc = {a["channel"]: a for a in r["allocation"]}
    assert sum(a["spend"] for a in alloc.values()) == pytest.approx(150.0)
    # at the optimum the marginal returns of the channels that got money are (nearly) equal
    m = [a["marginal_return"] for a in alloc.values() if a["spend"] > 1.0]
    assert max(m) - min(m) < 0.05 * max(m)
    prop = sum(pp.response(c, 150.0 / len(post["channels"])) for c in post["channels"])
    assert r["curves_return"] > prop
    lim = {"search": {"min": 10, "max": 20}, "video": {"max": 200}}
    r2 = pp.allocate_budget(post, 150.0, lim)
    got = {a["channel"]: a["spend"] for a in r2["allocation"]}
    assert 10 <= got["search"] <= 20 + 1e-9 and got["social"] == 0
    assert got["search"] + got["video"] == pytest.approx(150.0)
    row = pp.model_row(post, r["allocation"], week_of_year=13)
    assert float(xgb_predict("budget", [row])[0]) > 0
    for total, lim, field in [(0, None, "total"), (10, {"search": {"min": 6}, "email": {"min": 6}}, "total"),
                              (10, {"nope": {}}, "channels.nope"),
                              (10, {"search": {"min": 5, "max": 2}}, "channels.search")]:
        with pytest.raises(ValueError, match=f"^{field}"):
            pp.allocate_budget(post, total, lim)


# ---- demand ----

def test_forecast_recursion_and_intervals():
    post = manifest("demand")["postprocessing"]
    hist = [10.0 + (i % 7) for i in range(21)]
    last = dt.date(2015, 3, 1)
    calls = []

    def fake(rows):  # the seasonal naive model: tomorrow = a week ago
        calls.append(rows[0].copy())
        return rows[:, 2]
    out = pp.forecast(fake, hist, last, 14, post)
    want = [hist[len(hist) - 7 + (h % 7)] for h in range(14)]
    assert [o["forecast"] for o in out] == pytest.approx(want, rel=1e-6)  # float32 ratios
    assert out[0]["date"] == "2015-03-02" and calls[0][5] == 0 and calls[0][6] == 3
    assert np.isnan(calls[0][8])
    rq = post["residual_quantiles"]
    assert out[3]["lower"] == pytest.approx(out[3]["forecast"] + rq["0.1"][3])
    assert all(o["lower"] < o["forecast"] < o["upper"] for o in out)
    pp.forecast(fake, hist, dt.date(2015, 5, 24), 1, post)  # Memorial Day 2015: May 25
    assert calls[-1][7] == 1.0
    with pytest.raises(ValueError, match="^history"):
        pp.forecast(fake, hist[:5], last, 3, post)
    with pytest.raises(ValueError, match="^horizon"):
        pp.forecast(fake, hist, last, 15, post)
    with pytest.raises(ValueError, match="^history"):
        pp.forecast(fake, [0.0] * 14, last, 3, post)


def test_forecast_with_the_shipped_model():
    post = manifest("demand")["postprocessing"]
    samples = manifest("demand")["validation"]["samples"]
    row = samples[0]["inputs"]["features"][0]
    want = samples[0]["outputs"]["ratio"][0][0]
    assert float(xgb_predict("demand", [row])[0]) == pytest.approx(want, rel=1e-4)
    hist = [18.0, 17.5, 17.9, 18.2, 16.0, 5.5, 4.0] * 3
    out = pp.forecast(lambda r: xgb_predict("demand", r), hist, dt.date(2016, 1, 10), 14, post,
                      weather=[{"temp": 30.0, "percip": 0.0, "weather_snow": 0.0}] * 3)
    weekday = [o["forecast"] for o in out if dt.date.fromisoformat(o["date"]).weekday() < 5]
    weekend = [o["forecast"] for o in out if dt.date.fromisoformat(o["date"]).weekday() >= 5]
    assert min(weekday) > max(weekend)
    assert all(o["lower"] < o["forecast"] < o["upper"] for o in out)


# ---- anomaly ----

def test_anomaly_score_and_reasons():
    mf = manifest("anomaly")
    post = mf["postprocessing"]
    cols = [c["name"] for c in mf["input_schema"]["columns"]]
    got = []
    for s in mf["validation"]["samples"][:3]:
        row = dict(zip(cols, s["inputs"]["features"][0]))
        got.append(pp.anomaly(s["outputs"]["path_length"][0][0], row, post))
    assert all(0 < g["score"] <= 1 for g in got)
    assert not got[0]["anomalous"] and not got[1]["anomalous"]
    # the third sample is the test split's clearest injected anomaly
    assert got[2]["anomalous"] and got[2]["reasons"]
    assert got[2]["score"] > max(got[0]["score"], got[1]["score"])
    assert pp.anomaly(post["c_max_samples"], {c: 0 for c in cols}, post)["score"] == 0.5
