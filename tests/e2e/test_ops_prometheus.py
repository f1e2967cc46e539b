"""Issue 13: the Prometheus rules and the Grafana dashboard against a real scrape.

- deploy/prometheus/: `promtool check config`, `promtool check rules` and `promtool test rules`
  (alerts_test.yml: each alert firing and not firing);
- Debian's `prometheus` on loopback (free port, temporary storage, 1 s scrape interval, the
  shipped alerts.yml loaded) scrapes a running modeld (one Redis on a unix socket, so the
  cluster series exist) while load runs: predictions, a conversion, failing requests (404, 422,
  a 504 at the request deadline), jobs that succeed and one that fails. Then, over Prometheus'
  HTTP API: every series the rules use exists, the ones the load drives moved (PromQL
  increase/changes), and every rule evaluates without error;
- deploy/grafana/modeld.json: every panel expression parses and runs in that Prometheus, and
  names only metrics that the live /metrics has.
Bounded: the scrape part waits for conditions at most 60 s; Prometheus, Redis and modeld are
stopped whatever happens."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import Server
from convert_util import corpus
from test_cluster_redis import Redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROM_DIR = os.path.join(ROOT, "deploy", "prometheus")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "modeld.json")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
CASES = json.load(open(os.path.join(ROOT, "tests", "fixtures", "predict", "expected.json")))["cases"]

pytestmark = pytest.mark.skipif(not os.path.exists(PROMETHEUS) or not os.path.exists(PROMTOOL),
                                reason="Debian's prometheus is not installed (scripts/deps.sh test)")

# A metric name: what the rules and panels use all start so (plus Prometheus' own `up`).
METRIC_RE = re.compile(r"\b((?:modeld|process)_[a-zA-Z0-9_]+|up)\b(?!\s*\()")


def metric_names(expr):
    """Metric names in a PromQL expression (label values and strings removed first)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(METRIC_RE.findall(expr))


def bearer(key):
    return {"Authorization": "Bearer " + key}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- promtool -----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["check", "config", "prometheus.yml"],
                                  ["check", "rules", "alerts.yml"],
                                  ["test", "rules", "alerts_test.yml"]])
def test_promtool(args):
    p = subprocess.run([PROMTOOL] + args, cwd=PROM_DIR, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    import yaml
    rules = yaml.safe_load(open(os.path.join(PROM_DIR, "alerts.yml")))
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    tests = yaml.safe_load(open(os.path.join(PROM_DIR, "alerts_test.yml")))["tests"]
    fired, quiet = set(), set()
    for t in tests:
        for c in t.get("alert_rule_test", []):
            (fired if c["exp_alerts"] else quiet).add(c["alertname"])
    for n in names:
        r = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == n)
        for k in ("summary", "description", "runbook"):
            assert r["annotations"].get(k), (n, k)
        assert n in fired, n + " is never tested firing"
        assert n in quiet, n + " is never tested quiet"


# ---- the live scrape ------------------------------------------------------------------------

class Prometheus:
    """Debian's prometheus on loopback: 1 s scrape and evaluation intervals, a temporary
    storage, the rules of rules (default: the shipped alerts.yml), scraping target (an address
    or a list of them; tests/cluster/test_alerts_live.py uses this class too)."""

    def __init__(self, target, rules=None):
        self.dir = tempfile.mkdtemp(prefix="modeld-prom-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        targets = [target] if isinstance(target, str) else list(target)
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules or os.path.join(PROM_DIR, "alerts.yml")],
            "scrape_configs": [{"job_name": "modeld", "metrics_path": "/metrics",
                                "static_configs": [{"targets": targets}]}],
        }
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + path, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=open(os.path.join(self.dir, "log"), "wb"), stderr=subprocess.STDOUT)
        self.wait(lambda: requests.get(self.url + "/-/ready", timeout=2).status_code == 200, "ready")

    def wait(self, cond, what, timeout=60):
        end = time.time() + timeout
        last = None
        while time.time() < end:
            try:
                if cond():
                    return
            except (requests.RequestException, KeyError, IndexError, ValueError) as e:
                last = e
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + self.log())
            time.sleep(0.5)
        raise AssertionError("prometheus: %s not reached in %d s (%s)\n%s" % (what, timeout, last, self.log()[-2000:]))

    def query(self, q):
        r = requests.get(self.url + "/api/v1/query", params={"query": q}, timeout=10)
        body = r.json()
        assert body["status"] == "success", (q, body)
        return body["data"]["result"]

    def value(self, q):
        res = self.query(q)
        return float(res[0]["value"][1]) if res else None

    def log(self):
        with open(os.path.join(self.dir, "log"), errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack():
    redis = Redis()
    srv = prom = None
    try:
        srv = Server(["--test-routes", "--workers", "1", "--models-dir", os.path.join(ROOT, "models"),
                      "--redis", redis.url, "--request-timeout", "1s"])
        prom = Prometheus("127.0.0.1:%d" % srv.port)
        yield srv, prom
    finally:
        if prom:
            prom.stop()
        if srv:
            rc = srv.stop()
            srv.check_sanitizers()
            srv.cleanup()
            assert rc == 0, srv.stderr()[-4000:]
        redis.kill()
        shutil.rmtree(redis.dir, ignore_errors=True)


def put_load(srv):
    k = srv.admin_key
    for c in CASES[:6]:
        r = requests.post(srv.url + "/api/" + c["model"], json={"features": c["features"]},
                          headers=bearer(k), timeout=60)
        assert r.status_code == 200, r.text
    r = requests.post(srv.url + "/api/churn", json={"features": {"nope": 1}}, headers=bearer(k), timeout=60)
    assert r.status_code == 400, r.text
    up = requests.post(srv.url + "/api/upload", headers=bearer(k), timeout=60,
                       files={"file": ("a.png", corpus("simple_geometric_00.png"), "image/png")})
    assert up.status_code == 200, up.text
    r = requests.post(srv.url + "/api/convert", headers=bearer(k), json={"file_id": up.json()["file_id"]},
                      timeout=120)
    assert r.status_code == 200, r.text
    assert requests.get(srv.url + "/api/v1/jobs/j_nope", headers=bearer(k), timeout=10).status_code == 404
    # A 5xx: the slow test route outlives the 1 s request deadline (504).
    assert requests.get(srv.url + "/api/test/slow", params={"ms": 3000}, timeout=30).status_code == 504
    jobs = []
    for fail in (None, "invalid_parameter"):
        q = {"steps": 2, "step_ms": 50}
        if fail:
            q["fail"] = fail
        r = requests.post(srv.url + "/api/test/jobs", params=q,
                          data=b"x", headers=bearer(k), timeout=30)
        assert r.status_code == 202, r.text
        jobs.append(r.json()["job_id"])
    end = time.time() + 60
    for jid in jobs:
        while time.time() < end:
            st = requests.get(srv.url + "/api/v1/jobs/" + jid, headers=bearer(k), timeout=10).json()["status"]
            if st in ("SUCCESS", "FAILURE"):
                break
            time.sleep(0.1)


def rule_exprs():
    import yaml
    rules = yaml.safe_load(open(os.path.join(PROM_DIR, "alerts.yml")))
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


# The series the load moves, each with the PromQL that shows it moved.
MOVES = {
    "modeld_http_requests_total": 'sum(increase(modeld_http_requests_total{status=~"5.."}[2m]))',
    "modeld_http_requests_total ": 'sum(increase(modeld_http_requests_total{status="200",route="/api/convert"}[2m]))',
    "modeld_inference_duration_seconds_bucket": "sum(increase(modeld_inference_duration_seconds_bucket[2m]))",
    "modeld_inference_duration_seconds_count": "sum(increase(modeld_inference_duration_seconds_count[2m]))",
    "modeld_jobs_finished_total": 'sum(increase(modeld_jobs_finished_total{outcome="failure"}[2m]))',
    "modeld_jobs_finished_total ": 'sum(increase(modeld_jobs_finished_total{outcome="success"}[2m]))',
    "modeld_jobs": 'sum(changes(modeld_jobs{state="SUCCESS"}[2m]))',
    "modeld_compute_workers_busy": "sum(max_over_time(modeld_compute_workers_busy[2m]))",
    "modeld_predict_drift_rows": "max(modeld_predict_drift_rows)",
}


def test_scrape_series_exist_and_move(stack):
    srv, prom = stack
    prom.wait(lambda: prom.value('up{job="modeld"}') == 1.0, "modeld scraped")
    # Twice, a few scrapes apart: a series born by the first round (the first 504, the first
    # conversion) has no earlier sample, so only the second round shows in increase().
    put_load(srv)
    time.sleep(3)
    put_load(srv)
    used = set()
    for expr in rule_exprs().values():
        used |= metric_names(expr)
    assert "modeld_store_free_bytes" in used and "modeld_jobs_finished_total" in used
    for name in sorted(used):
        prom.wait(lambda: prom.query("count(%s)" % name), name + " present")
    for name, q in MOVES.items():
        prom.wait(lambda: (prom.value(q) or 0) > 0, "%s moved (%s)" % (name.strip(), q))
    assert prom.value("modeld_redis_up") == 1.0
    assert prom.value("modeld_store_up") == 1.0
    assert prom.value("modeld_store_free_bytes") > prom.value("modeld_store_min_free_bytes")


def test_rules_evaluate_without_error(stack):
    srv, prom = stack

    def all_evaluated():
        groups = requests.get(prom.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == len(rule_exprs())
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, bad
        return all(r["lastEvaluation"] > "2000" for r in rules)

    prom.wait(all_evaluated, "every rule evaluated")


# ---- the dashboard --------------------------------------------------------------------------

def panel_exprs(dash):
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    return out


def grafana_to_promql(expr):
    """Grafana's variables replaced the way it would: a range, and match-anything selectors."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def live_names(srv):
    text = requests.get(srv.url + "/metrics", timeout=30).text
    names = {"up"}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
    return names


def test_dashboard_uses_only_live_metrics(stack):
    srv, prom = stack
    dash = json.load(open(DASHBOARD))
    exprs = panel_exprs(dash)
    assert len(exprs) >= 10
    live = live_names(srv)
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= live, (title, sorted(names - live))
        prom.query(grafana_to_promql(expr))  # parses and runs
    for t in dash.get("templating", {}).get("list", []):
        if t.get("type") == "query":
            q = t["query"]["query"] if isinstance(t["query"], dict) else t["query"]
            m = re.match(r"label_values\((\w+),\s*\w+\)", q)
            assert m and m.group(1) in live, (t["name"], q)


def test_live_metrics_pass_promtool_lint(stack):
    """The exposition itself: names and suffixes as Prometheus' linter wants them, and (which
    promtool does not check) one TYPE per family with all its samples right after it."""
    srv, _ = stack
    text = requests.get(srv.url + "/metrics", timeout=30).text
    typed, current = set(), None
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            assert m.group(1) not in typed, "TYPE twice: " + m.group(1)
            typed.add(m.group(1))
            current = m.group(1)
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            assert name in (current, current + "_bucket", current + "_sum", current + "_count"), \
                "%s outside its family (after TYPE %s)" % (name, current)
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr


def test_rule_metrics_are_live(stack):
    srv, _ = stack
    live = live_names(srv)
    for alert, expr in rule_exprs().items():
        assert metric_names(expr) <= live, (alert, sorted(metric_names(expr) - live))
