"""End-to-end test of examples/ (issue 11 §5): the Python client (requests), the JavaScript one
(Node's fetch) and curl.sh run against a live server, each step's JSON line checked against the
API: a single prediction equal to the one the test asks for itself, a batch whose bad row is
listed with its field, a bulk CSV job to SUCCESS with its bad row in the result and a signed
callback delivered to a local receiver on the allow-list (checked with hmac here), then a
schedule on a stored dataset (created, listed, deleted) and a retrain from rows of churn's
validation split (tests/fixtures/predict/retrain/churn.csv) that adds a CANARY or STANDBY
version, the active one unchanged."""
import csv
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import Server
from oip_util import bearer, make_key

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")
CSV = os.path.join(EX, "data", "churn.csv")
SECRET = "examples-callback-secret"
ENV = {"MODELD_CALLBACK_ALLOW_HOSTS": "127.0.0.1", "MODELD_CALLBACK_SECRET": SECRET}
CLIENTS = {
    "python": ["/usr/bin/python3", os.path.join(EX, "python", "client.py")],
    "js": ["node", os.path.join(EX, "js", "client.mjs")],
    "curl": ["bash", os.path.join(EX, "curl.sh")],
}
# The rows each client's batch sends: the CSV's (python, js) or curl.sh's three literal ones.
BATCH_ROWS = {"python": 24, "js": 24, "curl": 3}
BAD_INDEX = {"python": 5, "js": 5, "curl": 1}


class Receiver:
    """Records every POST on 127.0.0.1 and answers 200."""

    def __init__(self):
        self.requests = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                rec.requests.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]

    def wait_for(self, job_id, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            for headers, body in self.requests:
                if headers.get("X-Modeld-Job-Id") == job_id:
                    return headers, body
            time.sleep(0.05)
        raise AssertionError("no callback for %s: %s" % (job_id, self.requests))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def signed(headers, body):
    parts = dict(p.split("=", 1) for p in headers["X-Modeld-Signature"].split(","))
    want = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(parts["v1"], want) and abs(int(parts["t"]) - time.time()) < 300


def serve():
    s = Server(["--models-dir", os.path.join(ROOT, "models"), "--workers", "1"], env=ENV)
    s.write_key = make_key(s, "write")
    return s


def stop(s):
    rc = s.stop()
    s.check_sanitizers()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()


@pytest.fixture(scope="module")
def srv():
    s = serve()
    rec = Receiver()
    s.receiver = rec
    yield s
    rec.close()
    stop(s)


def run(client, s, steps, key, **env):
    full = dict(os.environ, MODELD_URL=s.url, MODELD_KEY=key, MODELD_ADMIN_KEY=s.admin_key, **env)
    p = subprocess.run(CLIENTS[client] + steps, capture_output=True, text=True, timeout=600, env=full)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return p, {l["step"]: l for l in lines}


def first_row():
    with open(CSV) as f:
        row = next(csv.DictReader(f))
    ints = {"female", "senior_citizen", "partner", "dependents", "tenure", "phone_service",
            "paperless_billing"}
    return {k: int(v) if k in ints else float(v) if k.endswith("charges") else v
            for k, v in row.items()}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_single_batch_bulk_with_callback(srv, client):
    p, out = run(client, srv, ["single", "batch", "bulk"], srv.write_key,
                 MODELD_CALLBACK_URL=srv.receiver.url())
    assert p.returncode == 0, p.stdout + p.stderr
    assert set(out) == {"single", "batch", "bulk"} and all(o["ok"] for o in out.values()), out

    want = requests.post(srv.url + "/api/churn", json={"features": first_row()},
                         headers=bearer(srv.write_key)).json()
    assert out["single"]["prediction"] == want["prediction"]
    assert out["single"]["version"] == want["version"]
    assert out["single"]["prediction_id"].startswith("p_")
    assert out["single"]["reasons"] == want["explanation"]["reasons"]

    b = out["batch"]
    assert b["count"] == BATCH_ROWS[client] - 1
    assert [(f["index"], f["error"]["field"]) for f in b["failed"]] == [(BAD_INDEX[client], "tenure")]
    assert b["first"] == want["prediction"]

    k = out["bulk"]
    assert k["status"] == "SUCCESS" and k["rows"] == 24, k
    assert [(e["row"], e["field"]) for e in k["errors"]] == [(5, "tenure")]
    headers, body = srv.receiver.wait_for(k["job_id"])
    assert signed(headers, body)
    doc = json.loads(body)
    assert doc["job_id"] == k["job_id"] and doc["state"] == "SUCCESS" and doc["error"] is None


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_refused_step_is_reported(srv, client):
    # a read key may not predict: the step prints the error and the client exits 1
    rkey = getattr(srv, "read_key", None) or make_key(srv, "read")
    srv.read_key = rkey
    p, out = run(client, srv, ["single"], rkey)
    assert p.returncode == 1, p.stdout + p.stderr
    assert out["single"]["ok"] is False and out["single"]["status"] == 403, out
    assert out["single"]["code"] and out["single"]["message"], out


@pytest.mark.parametrize("client", list(CLIENTS))
def test_schedule_and_retrain(client):
    # rows of churn's validation split: its test split would be left out whole (leakage)
    retrain_csv = os.path.join(ROOT, "tests", "fixtures", "predict", "retrain", "churn.csv")
    s = serve()
    try:
        before = requests.get(s.url + "/api/models/churn", headers=bearer(s.admin_key)).json()
        p, out = run(client, s, ["schedule", "retrain"], s.write_key,
                     MODELD_CALLBACK_URL="http://127.0.0.1:9/hook", RETRAIN_CSV=retrain_csv)
        assert p.returncode == 0, p.stdout + p.stderr
        sc = out["schedule"]
        assert sc["ok"] and sc["listed"] is True and sc["deleted"] is True, sc
        assert sc["dataset_id"] and sc["schedule_id"].startswith("s_") and sc["next_run"]
        lst = requests.get(s.url + "/api/admin/schedules", headers=bearer(s.admin_key)).json()
        assert sc["schedule_id"] not in [x["schedule_id"] for x in lst["schedules"]]

        rt = out["retrain"]
        assert rt["ok"] and rt["status"] == "SUCCESS", rt
        old = {v["version"] for v in before["model"]["versions"]}
        new = [v for v in rt["versions"] if v["version"] not in old]
        assert len(new) == 1 and new[0]["state"] in ("CANARY", "STANDBY"), rt
        assert rt["active_version"] == before["model"]["active_version"]  # never promoted by itself
    finally:
        stop(s)
