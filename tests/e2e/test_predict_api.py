"""End-to-end tests of the business prediction routes (src/api/predict_api.c) on the shipped
predict models: every answer field, the reference numbers of tests/fixtures/predict/expected.json
(postprocess.py's answers), a batch with bad rows, 400s naming the field, 404 for unknown and
non-predict models, the roles, the info and health routes, and that /api/{model} does not
shadow the literal /api/... routes."""
import json
import os

import pytest
import requests

from oip_util import bearer, keyed_server, make_key

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = json.load(open(os.path.join(ROOT, "tests", "fixtures", "predict",
                                    "expected.json")))["cases"]


@pytest.fixture(scope="module")
def srv():
    yield from keyed_server(["--models-dir", os.path.join(ROOT, "models")])


def post(srv, path, body, key=None):
    return requests.post(srv.url + path, json=body, headers=bearer(key or srv.write_key))


def get(srv, path, key=None):
    return requests.get(srv.url + path, headers=bearer(key or srv.read_key))


def close(want, got, path="prediction"):
    if isinstance(want, dict):
        for k, v in want.items():
            assert k in got, path + "." + k
            close(v, got[k], path + "." + k)
    elif isinstance(want, list):
        assert len(want) == len(got), path
        for i, (a, b) in enumerate(zip(want, got)):
            close(a, b, "%s[%d]" % (path, i))
    elif isinstance(want, float):
        assert abs(want - got) <= 1e-4 * max(1.0, abs(want)), (path, want, got)
    else:
        assert want == got, (path, want, got)


def churn_features():
    return dict(CASES[0]["features"])


def test_every_case_matches_the_reference(srv):
    for c in CASES:
        body = {"features": c["features"]}
        if c["options"]:
            body["options"] = c["options"]
        r = post(srv, "/api/" + c["model"], body)
        assert r.status_code == 200, r.text
        j = r.json()
        assert set(j) == {"model", "version", "prediction", "explanation", "prediction_id",
                          "request_id"}
        assert j["model"] == c["model"] and j["version"] == "1"
        assert j["prediction_id"].startswith("p_") and j["request_id"]
        close(c["prediction"], j["prediction"])
        if c["explanation"]:
            close(c["explanation"], j["explanation"], "explanation")
            assert len(j["explanation"]["reasons"]) <= 3


def test_prediction_ids_differ(srv):
    a = post(srv, "/api/churn", {"features": churn_features()}).json()
    b = post(srv, "/api/churn", {"features": churn_features()}).json()
    assert a["prediction_id"] != b["prediction_id"]
    assert a["prediction"] == b["prediction"]


@pytest.mark.parametrize("change,code,field", [
    (("tenure", None), "missing_field", "tenure"),
    (("tenure", "ten"), "invalid_parameter", "tenure"),
    (("tenure", 2.5), "invalid_parameter", "tenure"),
    (("tenure", -1), "invalid_parameter", "tenure"),
    (("contract", "Ten year"), "invalid_parameter", "contract"),
    (("shoe_size", 42), "invalid_parameter", "shoe_size"),
])
def test_bad_features_name_the_field(srv, change, code, field):
    f = churn_features()
    key, val = change
    if val is None:
        del f[key]
    else:
        f[key] = val
    r = post(srv, "/api/churn", {"features": f})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == code and err.get("field") == field, err


@pytest.mark.parametrize("day,field", [({"temp": 500}, "temp"), ({"percip": -3}, "percip"),
                                       ({"weather_snow": 1.5}, "weather_snow")])
def test_demand_weather_out_of_range_names_the_field(srv, day, field):
    """demand's optional weather values are checked against the input_schema's ranges."""
    f = dict(next(c["features"] for c in CASES if c.get("model") == "demand"))
    f["weather"] = [{"temp": 70, "percip": 0.1}, day]
    r = post(srv, "/api/demand", {"features": f})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter" and err.get("field") == field, err
    f["weather"] = [{"temp": 70, "percip": 0.1, "weather_snow": 0}]
    assert post(srv, "/api/demand", {"features": f}).status_code == 200


def test_bad_bodies(srv):
    r = post(srv, "/api/churn", {})
    assert r.status_code == 400 and r.json()["error"]["field"] == "features"
    r = post(srv, "/api/churn", {"features": churn_features(), "extra": 1})
    assert r.status_code == 400 and r.json()["error"]["field"] == "extra"
    r = post(srv, "/api/churn/batch", {"items": []})
    assert r.status_code == 400 and r.json()["error"]["field"] == "items"
    r = post(srv, "/api/churn/batch", {"items": [churn_features()] * 10001})
    assert r.status_code == 400 and r.json()["error"]["field"] == "items"
    r = post(srv, "/api/budget", {"features": {"total": -5}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "total"
    r = post(srv, "/api/budget", {"features": {"total": 50, "channels": {"radio": {}}}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "channels.radio"
    pricing = next(c for c in CASES if c["model"] == "pricing")
    r = post(srv, "/api/pricing", {"features": pricing["features"], "options": {"steps": 5000}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "steps"


def test_batch_answers_good_rows_and_lists_bad_ones(srv):
    bad = churn_features()
    bad["contract"] = "Forever"
    items = [churn_features(), bad, churn_features(), "oops"]
    r = post(srv, "/api/churn/batch", {"items": items})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["count"] == 2 and j["model"] == "churn" and j["request_id"]
    assert [p["index"] for p in j["predictions"]] == [0, 2]
    close(CASES[0]["prediction"], j["predictions"][0]["prediction"])
    assert [f["index"] for f in j["failed"]] == [1, 3]
    assert j["failed"][0]["error"]["field"] == "contract"
    assert j["failed"][1]["error"]["field"] == "features"


def test_batch_of_budget_requests(srv):
    items = [c["features"] for c in CASES if c["model"] == "budget"] + [{"total": 0}]
    j = post(srv, "/api/budget/batch", {"items": items}).json()
    assert j["count"] == len(items) - 1 and j["failed"][0]["index"] == len(items) - 1


def test_unknown_and_non_predict_models_are_404(srv):
    r = post(srv, "/api/no-such-model", {"features": {}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = post(srv, "/api/breast-cancer-xgb", {"features": {}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = get(srv, "/api/breast-cancer-xgb/models/active/info")
    assert r.status_code == 404
    r = get(srv, "/api/churn/models/7/info")
    assert r.status_code == 404


def test_roles(srv):
    r = post(srv, "/api/churn", {"features": churn_features()}, key=srv.read_key)
    assert r.status_code == 403
    r = requests.post(srv.url + "/api/churn", json={"features": churn_features()})
    assert r.status_code == 401
    assert get(srv, "/api/churn/models/active/info").status_code == 200


def test_info_and_health(srv):
    post(srv, "/api/churn", {"features": churn_features()})
    for name in ("active", "churn", "1"):
        j = get(srv, "/api/churn/models/%s/info" % name).json()
        assert j["model"] == "churn" and j["version"] == "1" and j["task"] == "classification"
        assert j["input_schema"]["columns"][4]["name"] == "tenure"
        assert j["metrics"] and j["state"] == "ACTIVE"
    h = get(srv, "/api/churn/models/active/health").json()
    assert h["serving"] is True and h["state"] == "ACTIVE" and h["requests"] >= 1


def test_literal_routes_are_not_shadowed(srv):
    assert get(srv, "/api/models").status_code == 200
    r = requests.get(srv.url + "/api/health")
    assert r.status_code == 200
    r = get(srv, "/openapi.json").json()
    assert "/api/{model}" in r["paths"] and "/api/{model}/batch" in r["paths"]


# ---- history, feedback, drift, metrics ----

def anomaly_features():
    return dict(next(c for c in CASES if c["model"] == "anomaly")["features"])


def test_history_and_feedback(srv):
    prof = next(c for c in CASES if c["model"] == "profitability")["features"]
    ids = [post(srv, "/api/profitability", {"features": prof}).json()["prediction_id"]
           for _ in range(3)]
    j = get(srv, "/api/profitability/history?limit=2").json()
    assert j["count"] == 2 and j["next_offset"] == 2
    assert j["items"][0]["prediction_id"] == ids[2]
    item = j["items"][0]
    assert item["inputs"]["features"] == prof
    assert item["outputs"]["prediction"]["band"] and item["actual"] is None
    j2 = get(srv, "/api/profitability/history?limit=2&offset=2").json()
    assert j2["items"][0]["prediction_id"] == ids[0]
    r = post(srv, "/api/profitability/feedback", {"prediction_id": ids[1], "actual": 12.5})
    assert r.status_code == 200, r.text
    hist = get(srv, "/api/profitability/history?limit=3").json()["items"]
    assert [h["actual"] for h in hist] == [None, 12.5, None]
    r = post(srv, "/api/profitability/feedback", {"prediction_id": "p_nope", "actual": 1})
    assert r.status_code == 404 and r.json()["error"]["field"] == "prediction_id"
    r = post(srv, "/api/churn/feedback", {"prediction_id": ids[0], "actual": 1})
    assert r.status_code == 404  # another model's prediction
    r = post(srv, "/api/profitability/feedback", {"actual": 1})
    assert r.status_code == 400 and r.json()["error"]["field"] == "prediction_id"
    r = get(srv, "/api/profitability/history?limit=0")
    assert r.status_code == 400 and r.json()["error"]["field"] == "limit"
    future = get(srv, "/api/profitability/history?from=99999999999999").json()
    assert future["count"] == 0


def test_batch_rows_are_logged(srv):
    items = [anomaly_features()] * 3
    j = post(srv, "/api/anomaly/batch", {"items": items}).json()
    ids = {p["prediction_id"] for p in j["predictions"]}
    assert len(ids) == 3
    hist = get(srv, "/api/anomaly/history?limit=1000").json()["items"]
    assert ids <= {h["prediction_id"] for h in hist}


def test_drift_on_shifted_data(start_server):
    s = start_server("--models-dir", os.path.join(ROOT, "models"))
    key = make_key(s, "write")
    base = anomaly_features()
    # In distribution: sessions drawn evenly through the training quantiles (the manifest's
    # piecewise-linear CDF inverted); the other columns stay constant (their own PSI is high).
    mf = json.load(open(os.path.join(ROOT, "models", "anomaly", "1", "modeld.json")))
    dist = mf["preprocessing"]["training_distribution"]["features"]["sessions"]
    pts = [(0.0, dist["min"])] + sorted((float(k), v) for k, v in dist["quantiles"].items()) \
        + [(1.0, dist["max"])]

    def inverse(u):
        for (p0, v0), (p1, v1) in zip(pts, pts[1:]):
            if p0 <= u <= p1:
                return v0 + (v1 - v0) * (u - p0) / (p1 - p0) if p1 > p0 else v0
        return pts[-1][1]

    items = []
    for i in range(200):
        f = dict(base)
        f["sessions"] = int(round(inverse((i + 0.5) / 200)))
        items.append(f)
    r = requests.post(s.url + "/api/anomaly/batch", json={"items": items}, headers=bearer(key))
    assert r.status_code == 200 and r.json()["count"] == 200
    d = requests.get(s.url + "/api/anomaly/drift", headers=bearer(key)).json()
    assert d["rows"] == 200 and d["features"]["sessions"]["level"] == "none", d
    assert d["features"]["sessions"]["ks"] < 0.1
    # Shifted: sessions three times higher than anything seen in training.
    shifted = []
    for f in items:
        g = dict(f)
        g["sessions"] = f["sessions"] * 3
        shifted.append(g)
    t0 = requests.get(s.url + "/api/anomaly/history?limit=1",
                      headers=bearer(key)).json()["items"][0]["time_ms"] + 1
    requests.post(s.url + "/api/anomaly/batch", json={"items": shifted}, headers=bearer(key))
    d = requests.get(s.url + "/api/anomaly/drift?from=%d" % t0, headers=bearer(key)).json()
    assert d["rows"] == 200, d
    sess = d["features"]["sessions"]
    assert sess["level"] == "alert" and sess["psi"] > 1 and sess["ks"] > 0.9, sess
    assert d["status"] == "alert"
    assert d["features"]["orders"]["psi"] == pytest.approx(
        requests.get(s.url + "/api/anomaly/drift?to=%d" % t0,
                     headers=bearer(key)).json()["features"]["orders"]["psi"])
    m = requests.get(s.url + "/api/admin/metrics", headers=bearer(s.admin_key)).json()
    line = next(x for x in m["models"] if x["model"] == "anomaly")
    assert line["drift"]["status"] == "alert" and line["requests"] >= 2
    assert requests.get(s.url + "/api/admin/metrics", headers=bearer(key)).status_code == 403
    # budget and demand drift: tests/e2e/test_drift_plans.py


def test_sampling_zero_logs_nothing(start_server):
    s = start_server("--models-dir", os.path.join(ROOT, "models"), "--predict-log-sample", "0")
    key = make_key(s, "write")
    j = requests.post(s.url + "/api/churn", json={"features": churn_features()},
                      headers=bearer(key)).json()
    assert j["prediction_id"]
    h = requests.get(s.url + "/api/churn/history", headers=bearer(key)).json()
    assert h["count"] == 0
