"""End-to-end tests of the PostgreSQL store (issue 12): `modeld serve --store postgres://...` and
`modeld worker` processes sharing one database. Two workers claim disjoint jobs (every job runs
once); kill -9 of a worker in the middle of a job: the job finishes on the other worker, once;
PostgreSQL restarted in the middle of a run: the server reconnects, /api/ready recovers, and no
accepted job is lost.

The database: $MODELD_E2E_PG with $PGTMP_CTL when run under tests/pg/pgtmp.sh (make e2e-pg),
else this module starts its own throwaway server with that script. Each test's data dir gets
its own schema. Waits are for conditions with generous bounds, never timing thresholds."""
import os
import signal
import subprocess
import time

import pytest
import requests

from cluster_util import pg_ctl, pg_tmp
from conftest import _bin, pg_url


@pytest.fixture(scope="module")
def pg():
    """(base URI, pg_ctl command prefix) of a running PostgreSQL."""
    with pg_tmp() as p:
        yield p


def auth(key):
    return {"Authorization": "Bearer " + key}


def submit(s, key, body, **q):
    r = requests.post(s.url + "/api/test/jobs", params=q, data=body, headers=auth(key))
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def job(s, key, jid):
    return requests.get(s.url + "/api/v1/jobs/" + jid, headers=auth(key)).json()


def wait_status(s, key, jid, want, timeout=120):
    end = time.time() + timeout
    j = None
    while time.time() < end:
        j = job(s, key, jid)
        if j.get("status") in want:
            return j
        time.sleep(0.05)
    raise AssertionError("job %s never reached %s: %s" % (jid, want, j))


def result(s, key, jid):
    return requests.get(s.url + "/api/v1/jobs/%s/result" % jid, headers=auth(key)).content


def serve(start_server, pg, tmp_path, *args):
    data_dir = str(tmp_path / "var")
    url = pg_url(pg[0], data_dir)
    s = start_server("--test-routes", "--store", url, *args, data_dir=data_dir)
    return s, url


def worker(s, url):
    env = dict(os.environ, MODELD_TEST_ROUTES="1")
    return subprocess.Popen([_bin(), "worker", "--data-dir", s.data_dir, "--store", url,
                             "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def stop_worker(w):
    if w.poll() is None:
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=60) == 0


def wait_ready(s, timeout=60):
    end = time.time() + timeout
    while requests.get(s.url + "/api/ready").status_code != 200:
        assert time.time() < end, "never ready again after the database came back"
        time.sleep(0.2)


def test_ready_reports_the_database(start_server, pg, tmp_path):
    s, _ = serve(start_server, pg, tmp_path, "--workers", "0")
    r = requests.get(s.url + "/api/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["database"] == "ok"
    # the schema is in PostgreSQL, not in a SQLite file of the data dir
    assert not os.path.exists(os.path.join(s.data_dir, "modeld.db"))
    pg_ctl(pg, "stop -m fast")
    try:
        r = requests.get(s.url + "/api/ready")
        assert r.status_code == 503 and "Retry-After" in r.headers, r.text
        assert "database (postgresql)" in r.text, r.text
    finally:
        pg_ctl(pg, "start")
    wait_ready(s)


def test_two_workers_claim_disjoint_jobs(start_server, pg, tmp_path):
    s, url = serve(start_server, pg, tmp_path, "--workers", "0")
    k = s.admin_key
    ws = [worker(s, url), worker(s, url)]
    try:
        ids = [submit(s, k, b"job%d" % i, steps=3, step_ms=30) for i in range(12)]
        for i, jid in enumerate(ids):
            done = wait_status(s, k, jid, {"SUCCESS", "FAILURE"})
            assert done["status"] == "SUCCESS", done
            assert done["attempts"] == 1, done  # claimed once: no job ran on both workers
            assert result(s, k, jid) == b"job%d" % i
    finally:
        for w in ws:
            stop_worker(w)


def test_kill_9_of_a_worker_job_finishes_on_the_other_once(start_server, pg, tmp_path):
    s, url = serve(start_server, pg, tmp_path, "--workers", "0")
    k = s.admin_key
    w1 = worker(s, url)
    w2 = None
    try:
        jid = submit(s, k, b"payload", steps=40, step_ms=50)
        wait_status(s, k, jid, {"PROCESSING"})
        w1.send_signal(signal.SIGKILL)
        w1.wait()
        w2 = worker(s, url)
        done = wait_status(s, k, jid, {"SUCCESS", "FAILURE"})
        assert done["status"] == "SUCCESS" and done["attempts"] == 2, done
        assert result(s, k, jid) == b"payload"
        time.sleep(0.5)  # a second completion would show as a changed row; there is none
        assert job(s, k, jid) == done
    finally:
        if w1.poll() is None:
            w1.kill()
            w1.wait()
        if w2:
            stop_worker(w2)


def submit_retrying(s, key, body, **q):
    """Submit, retrying while the database is away (503 + Retry-After); the job id once
    accepted (202)."""
    end = time.time() + 60
    while time.time() < end:
        r = requests.post(s.url + "/api/test/jobs", params=q, data=body, headers=auth(key))
        if r.status_code == 202:
            return r.json()["job_id"]
        assert r.status_code == 503 and "Retry-After" in r.headers, (r.status_code, r.text)
        time.sleep(0.2)
    raise AssertionError("the server never accepted the job again")


def test_postgres_restart_loses_no_accepted_job(start_server, pg, tmp_path):
    s, _ = serve(start_server, pg, tmp_path, "--workers", "2")
    k = s.admin_key
    bodies = {}
    for i in range(6):
        bodies[submit(s, k, b"before%d" % i, steps=10, step_ms=50)] = b"before%d" % i
    pg_ctl(pg, "restart -m fast")
    for i in range(4):
        bodies[submit_retrying(s, k, b"after%d" % i, steps=2, step_ms=10)] = b"after%d" % i
    wait_ready(s)
    for jid, body in bodies.items():
        done = wait_status(s, k, jid, {"SUCCESS", "FAILURE"})
        assert done["status"] == "SUCCESS", done
        assert result(s, k, jid) == body
