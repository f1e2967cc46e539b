"""End-to-end tests of tracing (issue 13, src/base/trace.h): a small local OTLP/HTTP receiver
(http.server collecting the POSTed JSON) gets the spans of one bulk-prediction request that
carries a traceparent and goes through a job; they share the incoming trace id and their parentage
is request -> job queue wait -> job run -> ... -> model run. A collector that never answers:
requests still succeed and the dropped/failed counters move. Waits are for conditions with
generous bounds, never timings."""
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from oip_util import bearer, keyed_server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = json.load(open(os.path.join(ROOT, "tests", "fixtures", "predict",
                                    "expected.json")))["cases"]
CHURN = next(c["features"] for c in CASES if c.get("model") == "churn")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Receiver:
    """OTLP/HTTP JSON receiver on loopback: every POST to /v1/traces is parsed and kept."""

    def __init__(self):
        self.posts = []
        self.paths = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.paths.append(self.path)
                rec.posts.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def spans(self):
        out = []
        for p in list(self.posts):
            for rs in p["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    out.extend(ss["spans"])
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def srv(receiver):
    yield from keyed_server(["--models-dir", os.path.join(ROOT, "models"), "--workers", "1",
                             "--otlp-endpoint", receiver.url, "--otlp-interval", "100ms"])


def churn_csv(n):
    cols = list(CHURN)
    lines = [",".join(cols)] + [",".join(str(CHURN[c]) for c in cols) for _ in range(n)]
    return ("\n".join(lines) + "\n").encode()


def wait_for(cond, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("condition not met in %ss" % timeout)


def test_bulk_job_spans_share_the_trace_and_nest(srv, receiver):
    tp = "00-%s-%s-01" % (TRACE_ID, PARENT)
    h = dict(bearer(srv.write_key), traceparent=tp)
    r = requests.post(srv.url + "/api/churn/bulk", headers=h,
                      files={"file": ("churn.csv", churn_csv(5), "text/csv")})
    assert r.status_code == 202, r.text
    back = r.headers["traceparent"]
    assert back.startswith("00-%s-" % TRACE_ID) and back.split("-")[2] != PARENT
    jid = r.json()["job_id"]

    def done():
        j = requests.get(srv.url + "/api/v1/jobs/" + jid, headers=bearer(srv.write_key)).json()
        return j["status"] in ("SUCCESS", "FAILURE", "CANCELLED") and j
    assert wait_for(done)["status"] == "SUCCESS"

    def ours():
        s = [x for x in receiver.spans() if x["traceId"] == TRACE_ID]
        names = {x["name"] for x in s}
        return {"job run", "model run", "job queue wait", "POST"} <= names and s
    spans = wait_for(ours)
    by_id = {s["spanId"]: s for s in spans}
    req = next(s for s in spans if s["name"] == "POST")
    assert req["parentSpanId"] == PARENT and req["kind"] == 2
    assert req["spanId"] == back.split("-")[2]
    wait = next(s for s in spans if s["name"] == "job queue wait")
    run = next(s for s in spans if s["name"] == "job run")
    model = next(s for s in spans if s["name"] == "model run")
    assert wait["parentSpanId"] == req["spanId"]
    assert run["parentSpanId"] == wait["spanId"]

    def ancestors(s):
        out = []
        while s.get("parentSpanId") in by_id:
            s = by_id[s["parentSpanId"]]
            out.append(s["name"])
        return out
    assert ancestors(model)[-3:] == ["job run", "job queue wait", "POST"], ancestors(model)
    auth = [s for s in spans if s["name"] == "auth" and s["parentSpanId"] == req["spanId"]]
    assert auth, "no auth span under the request"
    for s in spans:
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0
    assert all(p == "/v1/traces" for p in receiver.paths)
    attrs = {a["key"]: a["value"] for a in req["attributes"]}
    assert attrs["http.route"]["stringValue"] == "/api/{model}/bulk"
    assert attrs["http.response.status_code"]["intValue"] == "202"


def test_invalid_traceparent_starts_a_new_trace(srv):
    r = requests.get(srv.url + "/api/health", headers={"traceparent": "00-zz-bad-01"})
    tp = r.headers["traceparent"]
    parts = tp.split("-")
    assert len(parts) == 4 and parts[0] == "00" and len(parts[1]) == 32 and len(parts[2]) == 16
    assert parts[1] != "0" * 32


def test_callback_sends_traceparent(start_server, receiver):
    """A job's completion callback joins the submitter's trace: its `traceparent` names the
    trace id of the request that submitted the job (a "job callback" CLIENT span's id)."""
    from test_schedules_callbacks import ENV, Receiver as Hook
    s = start_server("--test-routes", "--workers", "1", "--otlp-endpoint", receiver.url,
                     "--otlp-interval", "100ms", env=ENV)
    hook = Hook([200])
    try:
        tp = "00-%s-%s-01" % (TRACE_ID, PARENT)
        r = requests.post(s.url + "/api/test/jobs", params={"steps": 1, "step_ms": 0,
                                                             "callback_url": hook.url()},
                          data=b"abc", headers={"Authorization": "Bearer " + s.admin_key,
                                                "traceparent": tp})
        assert r.status_code == 202, r.text
        hook.wait(1)
        got = {k.lower(): v for k, v in hook.requests[0][0].items()}["traceparent"]
        assert got.startswith("00-%s-" % TRACE_ID) and got != tp
        sid = got.split("-")[2]
        cb = wait_for(lambda: [x for x in receiver.spans() if x["spanId"] == sid])
        assert cb[0]["name"] == "job callback" and cb[0]["kind"] == 3
    finally:
        hook.close()


def metric(s, name):
    text = requests.get(s.url + "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def test_stuck_collector_drops_and_counts():
    """A collector that accepts connections and never answers: the exporter's POST waits for its
    timeout, the small queue fills, spans are dropped and counted; requests keep succeeding."""
    from conftest import Server
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    url = "http://127.0.0.1:%d" % lsock.getsockname()[1]
    s = Server(["--otlp-endpoint", url, "--otlp-queue", "4", "--otlp-batch", "2",
                "--otlp-interval", "10ms", "--otlp-timeout", "5s"])
    try:
        def dropped():
            assert requests.get(s.url + "/api/health").status_code == 200
            return metric(s, "modeld_trace_spans_dropped_total") > 0
        assert wait_for(dropped)
        assert metric(s, "modeld_trace_spans_exported_total") == 0
    finally:
        rc = s.stop()
        lsock.close()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()
