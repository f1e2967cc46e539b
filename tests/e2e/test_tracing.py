"""End-to-end tests of tracing (issue 13, src/base/trace.h): a small local OTLP/HTTP receiver
(http.server collecting the POSTed JSON) gets the spans of one bulk-prediction request that
carries a traceparent and goes through a job; they share the incoming trace id and their parentage
is request -> job queue wait -> job run -> ... -> model run. The pipelines' stage spans: one AI
conversion (every stage under "pipeline vectorize ai", each candidate conversion under "ai
search" with its SSIM under it), one enhancement job run by a separate `modeld worker` process
(the trace crosses processes through the job row; tiles in batches) and one retraining job (its
five stages). A collector that never answers: requests still succeed and the dropped/failed
counters move. Waits are for conditions with generous bounds, never timings."""
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


def tree(spans, trace_id):
    """(the spans of trace trace_id by id, the list of them)."""
    s = [x for x in spans if x["traceId"] == trace_id]
    return {x["spanId"]: x for x in s}, s


def names_under(by_id, span):
    """Names of span's ancestors, nearest first."""
    out = []
    while span.get("parentSpanId") in by_id:
        span = by_id[span["parentSpanId"]]
        out.append(span["name"])
    return out


def attr(span, key):
    for a in span["attributes"]:
        if a["key"] == key:
            v = a["value"]
            return v.get("stringValue", v.get("intValue", v.get("doubleValue")))
    return None


AI_STAGES = ("ai features", "ai classify", "ai params", "ai route", "ai search")


def test_ai_convert_stage_spans(receiver):
    """One AI conversion: the pipeline span under the request, its stages under it, each
    candidate conversion under "ai search" with its SSIM measurement under it, and the models'
    runs under the stage that ran them."""
    from conftest import Server
    from convert_util import corpus
    ai_models = os.path.join(ROOT, "tests", "fixtures", "models", "vectorize-ai")
    s = Server(["--models-dir", ai_models, "--otlp-endpoint", receiver.url,
                "--otlp-interval", "100ms"])
    try:
        trace_id = "5bf92f3577b34da6a3ce929d0e0e4737"
        tp = "00-%s-%s-01" % (trace_id, PARENT)
        r = requests.post(s.url + "/api/v2/convert-ai", params={"tier": "2", "enable_caching": "false"},
                          headers={"Authorization": "Bearer " + s.admin_key, "traceparent": tp},
                          files={"file": ("a.png", corpus("simple_geometric_03.png"), "image/png")},
                          timeout=300)
        assert r.status_code == 200, r.text

        def ours():
            by_id, sp = tree(receiver.spans(), trace_id)
            names = {x["name"] for x in sp}
            return {"POST", "pipeline vectorize ai", "ssim", "store result"} | set(AI_STAGES) \
                <= names and (by_id, sp)
        by_id, spans = wait_for(ours)
        req = next(x for x in spans if x["name"] == "POST")
        pipe = next(x for x in spans if x["name"] == "pipeline vectorize ai")
        assert req["parentSpanId"] == PARENT
        assert names_under(by_id, pipe)[-1] == "POST"
        for name in AI_STAGES + ("decode", "store result"):
            st = [x for x in spans if x["name"] == name]
            assert len(st) == 1 and st[0]["parentSpanId"] == pipe["spanId"], name
        assert attr(next(x for x in spans if x["name"] == "ai route"), "modeld.tier") == "2"
        assert attr(pipe, "modeld.tier") == "2"
        search = next(x for x in spans if x["name"] == "ai search")
        convs = [x for x in spans if x["name"] == "ai convert"]
        assert convs and all(c["parentSpanId"] == search["spanId"] for c in convs)
        assert len(convs) == int(attr(search, "modeld.conversions"))
        ssims = [x for x in spans if x["name"] == "ssim"]
        assert {x["parentSpanId"] for x in ssims} == {c["spanId"] for c in convs}
        for x in ssims:  # inside its conversion
            c = by_id[x["parentSpanId"]]
            assert int(c["startTimeUnixNano"]) <= int(x["startTimeUnixNano"])
            assert 0 < attr(x, "modeld.ssim") <= 1
        kept = [c for c in convs if attr(c, "modeld.kept") == "1"]
        assert kept, "no conversion was kept"
        runs = [x for x in spans if x["name"] == "model run"]
        parents = {by_id[x["parentSpanId"]]["name"] for x in runs}
        assert {"ai classify", "ai params"} <= parents, parents
        assert {attr(x, "modeld.model") for x in runs} >= {"vectorize-classifier",
                                                          "vectorize-params"}
        assert len(spans) < 80  # bounded: tens of spans for one request
    finally:
        rc = s.stop()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()


NPM = os.path.join(ROOT, "build", "npm", "node_modules")


@pytest.mark.skipif(not os.path.isdir(os.path.join(NPM, "@upscalerjs", "esrgan-slim")),
                    reason="build/npm has no @upscalerjs/esrgan-slim (scripts/deps.sh)")
def test_enhance_job_spans_through_a_worker_process(receiver, tmp_path):
    """An enhance job submitted to a node without workers and run by a `modeld worker` process:
    the worker reads the traceparent from the job row, so its spans (queue wait, job run, the
    pipeline, tiles in batches, encode) join the submitting request's trace."""
    from cluster_util import Worker
    from conftest import Server, store_args
    from test_enhance import data_dir_with_models, photo
    d = data_dir_with_models(tmp_path, only="slim-x2")
    s = Server(["--workers", "0"], data_dir=d)
    w = None
    try:
        w = Worker(d, store_args(d) + ["--otlp-endpoint", receiver.url, "--otlp-interval", "100ms"])
        trace_id = "6bf92f3577b34da6a3ce929d0e0e4738"
        tp = "00-%s-%s-01" % (trace_id, PARENT)
        r = requests.post(s.url + "/api/v1/enhance", files={"file": ("p.png", photo(40, 24))},
                          data={"upscale": "2", "quality": "fast", "output_format": "png"},
                          headers={"Authorization": "Bearer " + s.admin_key, "traceparent": tp})
        assert r.status_code == 202, r.text
        jid = r.json()["job_id"]

        def done():
            j = requests.get(s.url + "/api/v1/jobs/" + jid,
                             headers={"Authorization": "Bearer " + s.admin_key}).json()
            return j["status"] in ("SUCCESS", "FAILURE", "CANCELLED") and j
        assert wait_for(done, 300)["status"] == "SUCCESS"

        def ours():
            by_id, sp = tree(receiver.spans(), trace_id)
            names = {x["name"] for x in sp}
            return {"job run", "pipeline enhance", "enhance encode", "enhance tile batch"} \
                <= names and (by_id, sp)
        by_id, spans = wait_for(ours)
        # The request's span was made by the node (no exporter there): the worker's first span
        # names it as parent, so the chain is whole in the collector from "job queue wait" down.
        wait = next(x for x in spans if x["name"] == "job queue wait")
        assert wait["parentSpanId"] == r.headers["traceparent"].split("-")[2]
        run = next(x for x in spans if x["name"] == "job run")
        assert run["parentSpanId"] == wait["spanId"]
        pipe = next(x for x in spans if x["name"] == "pipeline enhance")
        assert pipe["parentSpanId"] == run["spanId"]
        assert attr(pipe, "modeld.model") == "esrgan-slim-x2"
        for name in ("enhance decode", "enhance tiles", "enhance encode"):
            st = [x for x in spans if x["name"] == name]
            assert len(st) == 1 and st[0]["parentSpanId"] == pipe["spanId"], name
        tiles = next(x for x in spans if x["name"] == "enhance tiles")
        assert attr(tiles, "modeld.version") == "1"
        batches = [x for x in spans if x["name"] == "enhance tile batch"]
        assert batches and all(b["parentSpanId"] == tiles["spanId"] for b in batches)
        assert sum(int(attr(b, "modeld.tiles")) for b in batches) == int(attr(tiles, "modeld.tiles"))
    finally:
        if w:
            assert w.stop() == 0, w.stderr()[-4000:]
            w.check_sanitizers()
            w.cleanup()
        rc = s.stop()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()


RETRAIN_STAGES = ("retrain load dataset", "retrain load test split", "retrain train",
                  "retrain calibrate", "retrain validate", "retrain register")


def test_retrain_job_stage_spans(receiver):
    """A retraining job (churn on rows of its validation split; its test split would be left
    out whole): request -> queue wait -> job run -> "pipeline retrain" -> its stages, with what
    each did as attributes."""
    from conftest import Server
    s = Server(["--models-dir", os.path.join(ROOT, "models"), "--workers", "1",
                "--otlp-endpoint", receiver.url, "--otlp-interval", "100ms"])
    try:
        h = {"Authorization": "Bearer " + s.admin_key}
        test_csv = open(os.path.join(ROOT, "tests", "fixtures", "predict", "retrain",
                             "churn.csv"), "rb").read()
        d = requests.post(s.url + "/api/admin/datasets", headers=h,
                          files={"file": ("churn.csv", test_csv, "text/csv")})
        assert d.status_code == 201, d.text
        trace_id = "7bf92f3577b34da6a3ce929d0e0e4739"
        tp = "00-%s-%s-01" % (trace_id, PARENT)
        r = requests.post(s.url + "/api/admin/retrain", headers=dict(h, traceparent=tp),
                          json={"model": "churn", "data": d.json()["dataset_id"],
                                "params": {"rounds": 10}})
        assert r.status_code == 202, r.text
        jid = r.json()["job_id"]

        def done():
            j = requests.get(s.url + "/api/v1/jobs/" + jid, headers=h).json()
            return j["status"] in ("SUCCESS", "FAILURE", "CANCELLED") and j
        assert wait_for(done, 600)["status"] == "SUCCESS"

        def ours():
            by_id, sp = tree(receiver.spans(), trace_id)
            return set(RETRAIN_STAGES) <= {x["name"] for x in sp} and (by_id, sp)
        by_id, spans = wait_for(ours)
        pipe = next(x for x in spans if x["name"] == "pipeline retrain")
        assert names_under(by_id, pipe)[:3] == ["job run", "job queue wait", "POST"]
        for name in RETRAIN_STAGES:
            st = [x for x in spans if x["name"] == name]
            assert len(st) == 1 and st[0]["parentSpanId"] == pipe["spanId"], name
            assert st[0]["status"]["code"] == 1, st[0]  # OK
        rows = int(d.json()["rows"])
        assert int(attr(next(x for x in spans if x["name"] == "retrain load dataset"),
                        "modeld.rows")) == rows
        assert attr(next(x for x in spans if x["name"] == "retrain train"), "modeld.rounds") == "10"
        reg = next(x for x in spans if x["name"] == "retrain register")
        assert attr(reg, "modeld.state") in ("CANARY", "STANDBY") and attr(reg, "modeld.version")
    finally:
        rc = s.stop()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()
