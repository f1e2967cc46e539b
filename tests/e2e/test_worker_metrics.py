"""`modeld worker --metrics-port` (issue 13): a worker process serves GET /metrics, /api/health
and /api/ready on its own small listener (the http module's server with only those routes).
A node without workers takes the jobs; the worker runs one that succeeds and one that fails,
and its /metrics counts them by kind (claimed, finished by outcome, the run-time histogram)
beside the process, store and HTTP families; the failure alert's series exist on it."""
import re
import socket

import pytest
import requests

from cluster_util import Worker
from conftest import store_args
from test_jobs import auth, submit, wait_status


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sample(text, name, labels=""):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    assert m, "no sample %s%s" % (name, labels)
    return float(m.group(1))


@pytest.fixture
def node_and_worker(start_server):
    s = start_server("--test-routes", "--workers", "0")
    port = free_port()
    w = Worker(s.data_dir, store_args(s.data_dir) + ["--metrics-port", str(port)])
    w.url = "http://127.0.0.1:%d" % port
    yield s, w
    assert w.stop() == 0, w.stderr()[-4000:]
    w.check_sanitizers()
    w.cleanup()


def test_worker_serves_health_ready_and_job_metrics(node_and_worker):
    s, w = node_and_worker
    listening = [x for x in w.log_lines() if x.get("msg") == "worker: metrics listening"]
    assert listening and int(listening[0]["port"]) == int(w.url.rsplit(":", 1)[1])
    h = requests.get(w.url + "/api/health", timeout=30)
    assert h.status_code == 200 and h.json()["status"] == "ok"
    r = requests.get(w.url + "/api/ready", timeout=30)
    assert r.status_code == 200 and r.json()["checks"]["redis"] == "not configured", r.text
    # Only the probe routes: the API is the serve node's.
    assert requests.get(w.url + "/api/models", timeout=30).status_code == 404
    before = requests.get(w.url + "/metrics", timeout=30).text
    assert sample(before, "modeld_jobs_claimed_total", '{kind="test"}') == 0
    assert sample(before, "modeld_job_run_duration_seconds_count", '{kind="enhance"}') == 0

    k = s.admin_key
    ok = submit(s, k, b"payload", steps=3, step_ms=20)["job_id"]
    bad = submit(s, k, b"x", steps=1, step_ms=0, fail="invalid_param")["job_id"]
    assert wait_status(s, k, ok, {"SUCCESS", "FAILURE"})["status"] == "SUCCESS"
    assert wait_status(s, k, bad, {"SUCCESS", "FAILURE"})["status"] == "FAILURE"
    assert requests.get(s.url + "/api/v1/jobs/%s/result" % ok, headers=auth(k)).content == b"payload"

    text = requests.get(w.url + "/metrics", timeout=30).text
    assert sample(text, "modeld_jobs_claimed_total", '{kind="test"}') == 2
    assert sample(text, "modeld_jobs_finished_total", '{kind="test",outcome="success"}') == 1
    assert sample(text, "modeld_jobs_finished_total", '{kind="test",outcome="failure"}') == 1
    assert sample(text, "modeld_jobs_retried_total", '{kind="test"}') == 0
    assert sample(text, "modeld_job_run_duration_seconds_count", '{kind="test"}') == 2
    assert sample(text, "modeld_job_run_duration_seconds_bucket", '{kind="test",le="+Inf"}') == 2
    # the 3 x 20 ms job took at least 0.06 s: the sum holds it
    assert sample(text, "modeld_job_run_duration_seconds_sum", '{kind="test"}') >= 0.06
    assert sample(text, "modeld_jobs", '{state="SUCCESS"}') == 1
    assert sample(text, "modeld_job_lease_expiries_total", '{result="requeued"}') == 0
    assert sample(text, "process_resident_memory_bytes") > 0
    assert sample(text, "process_cpu_seconds_total") > 0
    assert re.search(r'^modeld_store_up\{backend="[a-z]+"\} 1$', text, re.M)
    # The serve node ran nothing: its own counters stay at zero, the store's gauge is shared.
    node = requests.get(s.url + "/metrics", timeout=30).text
    assert sample(node, "modeld_jobs_claimed_total", '{kind="test"}') == 0
    assert sample(node, "modeld_jobs", '{state="FAILURE"}') == 1
