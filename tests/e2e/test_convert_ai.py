"""The AI conversion API (issue 9 section 4) against the stand-in models of
tests/fixtures/models/vectorize-ai (gen_vectorize_ai.py): every route, its fields and status
codes, the fallback after unloading the classifier, 503 with fallback_suggestion when no model is
left, cached v2 answers and hot swaps through update-models."""
import os

import pytest
import requests

from conftest import Server
from convert_util import bearer, code, corpus, upload_ok

HERE = os.path.dirname(os.path.abspath(__file__))
AI_MODELS = os.path.join(HERE, "..", "fixtures", "models", "vectorize-ai")
SMALL = "simple_geometric_03.png"  # 64 x 64: quick under ASan
MODELS = ("vectorize-classifier", "vectorize-quality", "vectorize-params")


@pytest.fixture(scope="module")
def ai():
    s = Server(["--models-dir", AI_MODELS])
    yield s
    rc = s.stop()
    s.check_sanitizers()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()


def convert_ai(s, body, timeout=300):
    return requests.post(s.url + "/api/convert-ai", headers=bearer(s.admin_key), json=body,
                         timeout=timeout)


def post_file(s, path, name=SMALL, params=None):
    return requests.post(s.url + path, headers=bearer(s.admin_key), params=params or {},
                         files={"file": (name, corpus(name), "image/png")}, timeout=300)


def test_convert_ai_v1_fields(ai):
    fid = upload_ok(ai.url, ai.admin_key, SMALL)
    r = convert_ai(ai, {"file_id": fid, "tier": 1, "target_quality": 0.8, "time_budget": 5,
                        "include_analysis": True})
    assert r.status_code == 200, r.text
    j = r.json()
    for k in ("success", "svg", "ssim", "processing_time", "svg_bytes", "path_count",
              "parameters", "result_id", "ai_metadata", "analysis"):
        assert k in j, k
    assert j["svg"].startswith("<svg") or j["svg"].startswith("<?xml")
    m = j["ai_metadata"]
    for k in ("tier_used", "routing", "logo_type", "confidence", "predicted_quality",
              "actual_quality", "fallback_used", "model_versions"):
        assert k in m, k
    assert m["tier_used"] == 1
    assert set(m["routing"]) >= {"selected_tier", "reason", "routing_time_ms"}
    assert m["actual_quality"] == j["ssim"]
    assert m["fallback_used"] is False
    assert m["model_versions"] == {n: "1" for n in MODELS}
    assert m["logo_type"] in ("simple_geometric", "text_based", "gradient", "complex")
    assert set(j["analysis"]) >= {"logo_type", "confidence", "class_probabilities", "features",
                                  "recommendations", "complexity"}
    # The result is stored like /api/convert's.
    r2 = requests.get(ai.url + "/api/results/" + j["result_id"], headers=bearer(ai.admin_key),
                      timeout=30)
    assert r2.status_code == 200 and r2.json()["svg"] == j["svg"]


def test_convert_ai_tiers_and_auto(ai):
    fid = upload_ok(ai.url, ai.admin_key, SMALL)
    for tier in (2, 3):
        r = convert_ai(ai, {"file_id": fid, "tier": tier, "time_budget": 3})
        assert r.status_code == 200, r.text
        assert r.json()["ai_metadata"]["tier_used"] == tier
    r = convert_ai(ai, {"file_id": fid, "time_budget": 0.3})
    assert r.status_code == 200, r.text
    assert r.json()["ai_metadata"]["routing"]["selected_tier"] == 1
    r = convert_ai(ai, {"file_id": fid, "tier": "auto", "target_quality": 0.95, "time_budget": 2,
                        "max_svg_bytes": 100000})
    assert r.status_code == 200, r.text
    assert r.json()["ai_metadata"]["routing"]["selected_tier"] == 3
    assert r.json()["svg_bytes"] <= 100000


@pytest.mark.parametrize("body,field", [
    ({"tier": 5}, "tier"), ({"tier": 99}, "tier"), ({"tier": "x"}, "tier"),
    ({"target_quality": 1.5}, "target_quality"), ({"target_quality": -0.1}, "target_quality"),
    ({"time_budget": 0}, "time_budget"), ({"time_budget": "fast"}, "time_budget"),
    ({"max_svg_bytes": -5}, "max_svg_bytes"),
])
def test_convert_ai_400_names_field(ai, body, field):
    body = dict(body, file_id=upload_ok(ai.url, ai.admin_key, SMALL))
    r = convert_ai(ai, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field


def test_convert_ai_missing_and_unknown_file(ai):
    r = convert_ai(ai, {"tier": 1})
    assert r.status_code == 400 and r.json()["error"]["field"] == "file_id"
    r = convert_ai(ai, {"file_id": "nope0000000000000000"})
    assert r.status_code == 404, r.text


def test_ai_health_and_model_status(ai):
    r = requests.get(ai.url + "/api/ai-health", timeout=30)  # public
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["overall_status"] == "healthy"
    assert set(j["components"]) >= {"feature_extractor", "classifier", "quality_predictor",
                                     "router", "tracer"}
    assert "T" in j["timestamp"]
    r = requests.get(ai.url + "/api/model-status", timeout=30)
    assert r.status_code == 401
    r = requests.get(ai.url + "/api/model-status", headers=bearer(ai.admin_key), timeout=30)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["models_available"] == 3
    assert set(j["models"]) == set(MODELS)
    assert set(j["memory_report"]) == {"current_memory_mb", "peak_memory_mb", "models_mb"}


def test_v2_convert_ai_envelope_and_cache(ai):
    params = {"quality_target": "0.8", "processing_mode": "fast", "return_analysis": "true"}
    r = post_file(ai, "/api/v2/convert-ai", params=params)
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) >= {"success", "data", "ai_metadata", "performance_metrics", "request_id",
                      "timestamp", "svg_content"}
    assert j["svg_content"] == j["data"]["svg_content"]
    assert set(j["ai_metadata"]) >= {"logo_type", "confidence", "selected_tier",
                                     "predicted_quality", "actual_quality",
                                     "optimization_method", "processing_time", "model_versions"}
    assert j["ai_metadata"]["selected_tier"] == 1
    assert set(j["performance_metrics"]) == {"feature_extraction_ms", "classification_ms",
                                             "routing_ms", "optimization_ms", "prediction_ms"}
    assert "analysis" in j["data"]
    assert r.headers["X-Cache"] == "MISS"
    r2 = post_file(ai, "/api/v2/convert-ai", params=params)
    assert r2.status_code == 200 and r2.headers["X-Cache"] == "HIT"
    assert r2.json()["svg_content"] == j["svg_content"]
    r3 = post_file(ai, "/api/v2/convert-ai", params=dict(params, enable_caching="false"))
    assert r3.status_code == 200 and r3.headers["X-Cache"] == "OFF"


@pytest.mark.parametrize("params,field", [
    ({"quality_target": "2"}, "quality_target"), ({"processing_mode": "turbo"}, "processing_mode"),
    ({"return_analysis": "maybe"}, "return_analysis"),
])
def test_v2_convert_ai_400(ai, params, field):
    r = post_file(ai, "/api/v2/convert-ai", params=params)
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text


def test_v2_analyze_and_predict(ai):
    r = post_file(ai, "/api/v2/analyze-image", name="text_based_01.png")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert set(d) >= {"logo_type", "confidence", "class_probabilities", "features",
                      "recommendations", "complexity"}
    assert d["logo_type"] == "text_based"
    assert set(d["recommendations"]) >= {"tier", "parameters", "predicted_quality",
                                         "estimated_time_ms"}
    r2 = post_file(ai, "/api/v2/analyze-image", name="text_based_01.png",
                   params={"include_features": "false", "analysis_depth": "quick"})
    assert r2.status_code == 200 and "features" not in r2.json()["data"]
    r3 = post_file(ai, "/api/v2/analyze-image", params={"analysis_depth": "deep"})
    assert r3.status_code == 400 and r3.json()["error"]["field"] == "analysis_depth"
    # The depth is the features' sampling grid: on a 768 px image each grid samples other
    # pixels, so the features differ; standard (the models' own grid) is the default.
    grids = {}
    for depth in ("quick", "standard", "detailed"):
        r4 = post_file(ai, "/api/v2/analyze-image", name="complex_01.png",
                       params={"analysis_depth": depth})
        assert r4.status_code == 200, r4.text
        grids[depth] = r4.json()["data"]
    assert [grids[k]["sampling_grid"] for k in ("quick", "standard", "detailed")] == [128, 256, 512]
    assert grids["quick"]["features"] != grids["detailed"]["features"]
    plain = post_file(ai, "/api/v2/analyze-image", name="complex_01.png").json()["data"]
    assert plain["sampling_grid"] == 256 and plain["features"] == grids["standard"]["features"]

    body = {"image_analysis": d, "proposed_parameters": {"color_precision": 4, "filter_speckle": 8}}
    p = requests.post(ai.url + "/api/v2/predict-quality", headers=bearer(ai.admin_key), json=body,
                      params={"target_quality": "0.5"}, timeout=60)
    assert p.status_code == 200, p.text
    pd = p.json()["data"]
    assert set(pd) >= {"predicted_quality", "confidence", "meets_target", "suggestions"}
    assert pd["meets_target"] is (pd["predicted_quality"] >= 0.5)
    # The stand-in rewards colour precision: raising it is among the suggestions.
    assert any(s["parameter"] == "color_precision" for s in pd["suggestions"])
    fid = upload_ok(ai.url, ai.admin_key, SMALL)
    p2 = requests.post(ai.url + "/api/v2/predict-quality", headers=bearer(ai.admin_key),
                       json={"image_analysis": {"file_id": fid}, "proposed_parameters": {}},
                       timeout=60)
    assert p2.status_code == 200, p2.text
    bad = requests.post(ai.url + "/api/v2/predict-quality", headers=bearer(ai.admin_key),
                        json={"image_analysis": d, "proposed_parameters": {"color_precision": 99}},
                        timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "color_precision"


def test_v2_model_health_info_update(ai):
    r = requests.get(ai.url + "/api/v2/model-health", timeout=30)
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) >= {"overall_status", "model_status", "performance_metrics", "last_update",
                      "alerts"}
    assert set(j["model_status"]) == set(MODELS)
    h = bearer(ai.admin_key)
    r = requests.get(ai.url + "/api/v2/model-info", headers=h,
                     params={"include_performance": "true", "include_history": "true"}, timeout=30)
    assert r.status_code == 200, r.text
    info = r.json()["data"]["models"]
    assert set(info) == set(MODELS)
    assert set(info["vectorize-quality"]) >= {"version", "versions", "format", "metrics", "inputs",
                                              "outputs", "history"}
    r = requests.get(ai.url + "/api/v2/model-info", headers=h,
                     params={"model_name": "vectorize-params"}, timeout=30)
    assert r.status_code == 200 and set(r.json()["data"]["models"]) == {"vectorize-params"}
    r = requests.get(ai.url + "/api/v2/model-info", headers=h, params={"model_name": "nope"},
                     timeout=30)
    assert r.status_code == 404
    up = requests.post(ai.url + "/api/v2/update-models", headers=h,
                       json={"model_name": "vectorize-params", "version": "1"}, timeout=60)
    assert up.status_code == 200, up.text
    assert up.json()["data"]["switched"] is False  # re-activating the active version: no-op
    for body in ({"model_name": "nope", "version": "1"},
                 {"model_name": "vectorize-params", "version": "9"}):
        bad = requests.post(ai.url + "/api/v2/update-models", headers=h, json=body, timeout=60)
        assert bad.status_code == 404, bad.text


def test_fallback_then_503(start_server):
    s = start_server("--models-dir", AI_MODELS)
    h = bearer(s.admin_key)
    r = requests.post(s.url + "/v2/repository/models/vectorize-classifier/unload", headers=h,
                      timeout=30)
    assert r.status_code == 200, r.text
    fid = upload_ok(s.url, s.admin_key, SMALL)
    r = convert_ai(s, {"file_id": fid, "tier": 1})
    assert r.status_code == 200, r.text
    m = r.json()["ai_metadata"]
    assert m["fallback_used"] is True
    assert "vectorize-classifier" in m["fallback_reason"]
    assert m["model_versions"]["vectorize-classifier"] is None
    assert requests.get(s.url + "/api/ai-health", timeout=30).json()["overall_status"] == "degraded"
    for name in ("vectorize-quality", "vectorize-params"):
        assert requests.post(s.url + "/v2/repository/models/%s/unload" % name, headers=h,
                             timeout=30).status_code == 200
    r = convert_ai(s, {"file_id": fid})
    assert r.status_code == 503, r.text
    assert "/api/convert" in r.json()["fallback_suggestion"]
    assert code(r) == "model_unavailable"
    hr = requests.get(s.url + "/api/ai-health", timeout=30)
    assert hr.status_code == 503 and hr.json()["overall_status"] == "unhealthy"


def test_v2_convert_ai_50_concurrent(ai):
    """50 at once: each is answered, 200 or a clean 503 with Retry-After (never a hang)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        return post_file(ai, "/api/v2/convert-ai",
                         params={"processing_mode": "fast", "enable_caching": "false"})

    with ThreadPoolExecutor(max_workers=50) as ex:
        answers = list(ex.map(one, range(50)))
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1
    for r in answers:
        if r.status_code == 503:
            assert r.headers.get("Retry-After"), r.text
        else:
            assert r.json()["svg_content"].startswith("<")
