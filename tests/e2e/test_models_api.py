"""End-to-end tests of modeld's own model management routes (/api/models...), their roles and
audit, readiness with required models, the models' Prometheus metrics, and the
`modeld models` CLI on a data dir and against a running server."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import _bin
from oip_util import FIXTURES, MODEL, bearer, infer_body, keyed_server, models_dir

ROWS = [[1.0, 2.0, 3.0, 4.0]]


@pytest.fixture(scope="module")
def srv():
    # No automatic canary judgement here: a tiny model's p99 is noise, and these tests drive
    # the canary by hand (test_canary_settings_reach_the_registry covers the automatic side).
    yield from keyed_server(["--models-dir", models_dir(), "--canary-min-requests", "1000000000"])


def post(srv, path, key=None, **kw):
    return requests.post(srv.url + path, headers=bearer(key or srv.admin_key), **kw)


def model(srv, key=None):
    r = requests.get(srv.url + "/api/models/" + MODEL, headers=bearer(key or srv.read_key))
    assert r.status_code == 200, r.text
    return r.json()["model"]


def answer_version(srv):
    r = requests.post(srv.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS), headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["outputs"][0]["data"][0] == pytest.approx(1.0 + int(j["model_version"]))
    return j["model_version"]


def err(r):
    j = r.json()
    assert j["success"] is False and "request_id" in j
    return j["error"]


def test_list_models(srv):
    r = requests.get(srv.url + "/api/models", headers=bearer(srv.read_key))
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["success"] is True
    m = {x["name"]: x for x in j["models"]}[MODEL]
    assert m["family"] == "generic" and m["runtime"] == "onnx"
    assert m["active_version"] == "3"  # nothing remembered: the highest version
    assert m["state"] == "ACTIVE"
    states = {v["version"]: v["state"] for v in m["versions"]}
    assert states["3"] == "ACTIVE" and set(states) == {"1", "2", "3"}


def test_get_model_with_manifest_and_stats(srv):
    answer_version(srv)
    m = model(srv)
    assert m["manifest"]["name"] == MODEL and m["manifest"]["inputs"][0]["name"] == "x"
    assert m["manifest"]["model_card"]["intended_use"]
    st = m["stats"]["3"]
    assert st["requests"] >= 1 and st["successes"] >= 1 and "latency_seconds" in st
    r = requests.get(srv.url + "/api/models/%s?version=1" % MODEL, headers=bearer(srv.read_key))
    assert r.status_code == 200 and r.json()["model"]["manifest"]["version"] == "1"


def test_get_unknown_model(srv):
    r = requests.get(srv.url + "/api/models/nope", headers=bearer(srv.read_key))
    assert r.status_code == 404 and err(r)["code"] == "model_not_found"


def test_activate_canary_promote_rollback(srv):
    r = post(srv, "/api/models/%s/versions/1/activate" % MODEL)
    assert r.status_code == 200, r.text
    m = r.json()["model"]
    assert m["active_version"] == "1"
    assert {v["version"]: v["state"] for v in m["versions"]}["3"] == "STANDBY"
    assert answer_version(srv) == "1"

    r = post(srv, "/api/models/%s/versions/2/canary" % MODEL, json={"percent": 100})
    assert r.status_code == 200, r.text
    m = r.json()["model"]
    assert m["canary_version"] == "2" and m["canary_percent"] == 100
    assert answer_version(srv) == "2"
    r = post(srv, "/api/models/%s/promote" % MODEL)
    assert r.status_code == 200, r.text
    assert r.json()["model"]["active_version"] == "2"
    assert answer_version(srv) == "2"

    r = post(srv, "/api/models/%s/rollback" % MODEL)
    assert r.status_code == 200, r.text
    assert r.json()["model"]["active_version"] == "1"
    assert answer_version(srv) == "1"

    r = post(srv, "/api/models/%s/versions/3/canary" % MODEL, json={"percent": 50})
    assert r.status_code == 200, r.text
    assert r.json()["model"]["canary_version"] == "3"
    assert {answer_version(srv) for _ in range(40)} <= {"1", "3"}
    r = post(srv, "/api/models/%s/versions/3/canary" % MODEL, json={"percent": 0})
    assert r.status_code == 200, r.text
    assert not r.json()["model"].get("canary_version")
    assert answer_version(srv) == "1"
    r = post(srv, "/api/models/%s/versions/2/canary" % MODEL, json={"percent": 0})
    assert r.status_code == 409 and err(r)["code"] == "conflict"  # 2 is not the canary


def test_canary_body_checked(srv):
    path = "/api/models/%s/versions/2/canary" % MODEL
    for body, field in (({"percent": 150}, "percent"), ({"percent": "50"}, "percent"), ({}, "percent"),
                        ({"percent": 5, "extra": 1}, "extra")):
        r = post(srv, path, json=body)
        assert r.status_code == 400, (body, r.text)
        assert err(r)["field"] == field
    r = requests.post(srv.url + path, data=b"{",
                      headers=dict(bearer(srv.admin_key), **{"Content-Type": "application/json"}))
    assert r.status_code == 400 and err(r)["code"] == "invalid_json"


def test_conflicts_and_unknowns(srv):
    active = model(srv)["active_version"]
    r = post(srv, "/api/models/%s/versions/%s/canary" % (MODEL, active), json={"percent": 10})
    assert r.status_code == 409, r.text
    r = post(srv, "/api/models/%s/versions/77/activate" % MODEL)
    assert r.status_code == 404 and err(r)["code"] == "model_not_found"
    r = post(srv, "/api/models/nope/rollback")
    assert r.status_code == 404
    assert model(srv)["active_version"] == active


def test_roles(srv):
    paths = ["/api/models/%s/versions/2/activate" % MODEL, "/api/models/%s/rollback" % MODEL,
             "/api/models/%s/promote" % MODEL]
    before = model(srv)["active_version"]
    for key in (srv.read_key, srv.write_key):
        for p in paths:
            r = post(srv, p, key=key)
            assert r.status_code == 403 and err(r)["code"] == "forbidden", (p, r.text)
        r = post(srv, "/api/models/%s/versions/2/canary" % MODEL, key=key, json={"percent": 50})
        assert r.status_code == 403
    for p in paths:
        assert requests.post(srv.url + p).status_code == 401
    assert requests.get(srv.url + "/api/models").status_code == 401
    assert model(srv)["active_version"] == before


def test_changes_are_audited(srv):
    r = post(srv, "/api/models/%s/versions/3/activate" % MODEL)
    assert r.status_code == 200, r.text
    rid = r.headers["X-Request-ID"]
    entries = []
    for _ in range(50):  # the audit writer is asynchronous
        entries = requests.get(srv.url + "/api/admin/audit?limit=100", headers=bearer(srv.admin_key)).json()["entries"]
        if any(e["request_id"] == rid for e in entries):
            break
        time.sleep(0.05)
    e = [e for e in entries if e["request_id"] == rid][0]
    assert e["route"] == "/api/models/{name}/versions/{v}/activate" and e["status"] == 200


def test_ready_and_metrics(srv):
    r = requests.get(srv.url + "/api/ready")
    assert r.status_code == 200 and r.json()["checks"]["models"] == "ok"
    answer_version(srv)
    text = requests.get(srv.url + "/metrics").text
    assert 'modeld_inference_requests_total{model="%s"' % MODEL in text
    for name in ("modeld_inference_duration_seconds_bucket", "modeld_inference_queue_seconds",
                 "modeld_model_state{", "modeld_model_memory_bytes{"):
        assert name in text, name


def test_required_model_gates_readiness(start_server):
    root = tempfile.mkdtemp(prefix="modeld-models-")
    d = os.path.join(root, MODEL, "1")
    shutil.copytree(os.path.join(FIXTURES, MODEL, "1"), d)
    with open(os.path.join(d, "modeld.json")) as f:
        mf = json.load(f)
    mf["required"] = True
    mf["validation"]["samples"][0]["outputs"]["y"][0][0] += 1  # validation must fail
    with open(os.path.join(d, "modeld.json"), "w") as f:
        json.dump(mf, f)
    s = start_server("--models-dir", root)
    r = requests.get(s.url + "/api/ready")
    assert r.status_code == 503 and MODEL in r.json()["error"]["message"]
    r = requests.get(s.url + "/v2/health/ready")
    assert r.status_code == 400 and MODEL in r.json()["error"]  # OIP: 4xx means false
    m = requests.get(s.url + "/api/models/" + MODEL, headers=bearer(s.admin_key)).json()["model"]
    v1 = [v for v in m["versions"] if v["version"] == "1"][0]
    assert v1["state"] == "FAILED" and v1.get("reason")


# ---- the CLI ----

def cli(*args):
    p = subprocess.run([_bin(), "models"] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_cli_validate():
    rc, out, e = cli("validate", os.path.join(FIXTURES, MODEL, "2"))
    assert rc == 0, e
    bad = tempfile.mkdtemp(prefix="modeld-bad-")
    shutil.copytree(os.path.join(FIXTURES, MODEL, "2"), os.path.join(bad, "2"))
    with open(os.path.join(bad, "2", "model.onnx"), "ab") as f:
        f.write(b"tampered")
    rc, out, e = cli("validate", os.path.join(bad, "2"))
    assert rc == 1 and "sha256" in e.lower(), e
    assert cli("validate")[0] == 2
    assert cli("frobnicate")[0] == 2


def test_cli_remote(srv):
    rc, out, e = cli("list", "--url", srv.url, "--key", srv.read_key)
    assert rc == 0, e
    assert MODEL in out and "ACTIVE" in out
    rc, out, e = cli("list", "--json", "--url", srv.url, "--key", srv.read_key)
    assert rc == 0 and MODEL in [m["name"] for m in json.loads(out)]
    rc, out, e = cli("info", MODEL, "--url", srv.url, "--key", srv.read_key)
    assert rc == 0 and json.loads(out)["manifest"]["name"] == MODEL
    rc, out, e = cli("activate", MODEL, "2", "--url", srv.url, "--key", srv.read_key)
    assert rc == 1 and "403" in e
    rc, out, e = cli("activate", MODEL, "2", "--url", srv.url, "--key", srv.admin_key)
    assert rc == 0, e
    assert json.loads(out)["active_version"] == "2" and answer_version(srv) == "2"
    rc, out, e = cli("rollback", MODEL, "--url", srv.url, "--key", srv.admin_key)
    assert rc == 0, e
    assert answer_version(srv) != "2"
    rc, out, e = cli("info", "nope", "--url", srv.url, "--key", srv.read_key)
    assert rc == 1 and "404" in e
    rc, out, e = cli("list", "--url", "http://127.0.0.1:1", "--key", "k")
    assert rc == 1 and "connect" in e


def cli_info(data_dir, mdir):
    rc, out, e = cli("info", MODEL, "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 0, e
    return json.loads(out)


def test_cli_on_data_dir(start_server):
    mdir = models_dir()
    data_dir = os.path.join(tempfile.mkdtemp(prefix="modeld-e2e-data-"), "var")
    s = start_server("--models-dir", mdir, data_dir=data_dir)
    assert s.stop() == 0
    rc, out, e = cli("list", "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 0, e
    assert MODEL in out
    # the CLI loads nothing: it shows what the store remembers (the server activated 3)
    m = cli_info(data_dir, mdir)
    assert m["name"] == MODEL and m["active_version"] == "3" and m["state"] == "UNLOADED", m
    rc, out, e = cli("rollback", MODEL, "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 1 and "no standby or previous version" in e  # nothing was active before 3
    rc, out, e = cli("activate", MODEL, "1", "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 0, e
    assert "restart" in e  # a server already running does not see it
    m = cli_info(data_dir, mdir)
    assert m["active_version"] == "1" and m["state"] == "UNLOADED", m
    assert {v["version"]: v["state"] for v in m["versions"]}["1"] == "UNLOADED"
    assert m["stats"]["1"]["state"] == "UNLOADED"
    rc, out, e = cli("list", "--json", "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 0 and {x["name"]: x for x in json.loads(out)}[MODEL]["active_version"] == "1"
    rc, out, e = cli("activate", MODEL, "9", "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 1 and "9" in e
    # rollback on the data dir returns to the version active before (3), and back again
    rc, out, e = cli("rollback", MODEL, "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 0, e
    assert cli_info(data_dir, mdir)["active_version"] == "3"
    rc, out, e = cli("rollback", MODEL, "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 0, e
    assert cli_info(data_dir, mdir)["active_version"] == "1"
    s2 = start_server("--models-dir", mdir, data_dir=data_dir, expect_key=False)
    r = requests.post(s2.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS), headers=bearer(s.admin_key))
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    # after a restart nothing stands by, yet the server rolls back to the remembered version
    r = requests.post(s2.url + "/api/models/%s/rollback" % MODEL, headers=bearer(s.admin_key))
    assert r.status_code == 200, r.text
    assert r.json()["model"]["active_version"] == "3"
    r = requests.post(s2.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS), headers=bearer(s.admin_key))
    assert r.status_code == 200 and r.json()["model_version"] == "3"
    # the CLI changing the store under a running server: the server keeps what it serves
    rc, out, e = cli("activate", MODEL, "2", "--data-dir", data_dir, "--models-dir", mdir)
    assert rc == 0, e
    r = requests.post(s2.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS), headers=bearer(s.admin_key))
    assert r.status_code == 200 and r.json()["model_version"] == "3"
    assert s2.stop() == 0
    s3 = start_server("--models-dir", mdir, data_dir=data_dir, expect_key=False)
    r = requests.post(s3.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS), headers=bearer(s.admin_key))
    assert r.status_code == 200 and r.json()["model_version"] == "2"  # picked up at the restart


def test_canary_settings_reach_the_registry(start_server):
    s = start_server("--models-dir", models_dir(), "--canary-promote-after", "5", "--canary-p99-ratio", "1000",
                     "--canary-error-margin", "1")
    base = s.url + "/api/models/" + MODEL
    r = requests.post(base + "/versions/1/canary", json={"percent": 100}, headers=bearer(s.admin_key))
    assert r.status_code == 200, r.text
    seen = set()
    for _ in range(12):
        r = requests.post(s.url + "/v2/models/%s/infer" % MODEL, json=infer_body(ROWS), headers=bearer(s.admin_key))
        assert r.status_code == 200, r.text
        seen.add(r.json()["model_version"])
    m = requests.get(base, headers=bearer(s.admin_key)).json()["model"]
    assert m["active_version"] == "1" and not m.get("canary_version"), m  # promoted after 5 successes
    assert seen == {"1"}


def test_bad_canary_setting_refused(tmp_path):
    p = subprocess.run([_bin(), "serve", "--canary-error-margin", "0x1", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "canary_error_margin" in p.stderr
