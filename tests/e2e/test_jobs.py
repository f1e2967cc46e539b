"""End-to-end tests of the durable job queue and the /api/v1 job routes, driven by the "test"
job kind of --test-routes (POST /api/test/jobs: copies its body to its result in timed steps),
so that they need no network: every job route, field and status code; a 50-job batch and its
ZIP; another key's job and batch answer 404; cancel of a queued and of a running job; the queue
limit (503 + Retry-After); and crash safety: kill -9 of the server during processing, then a
restart: every accepted job finishes; kill -9 of a `modeld worker` process: its job is run again
by another worker. Waits are for conditions with generous bounds, never timing thresholds."""
import io
import os
import signal
import subprocess
import time
import zipfile

import requests

from conftest import _bin, store_args


def auth(key):
    return {"Authorization": "Bearer " + key}


def submit(s, key, body=b"hello", **q):
    r = requests.post(s.url + "/api/test/jobs", params=q, data=body, headers=auth(key))
    assert r.status_code == 202, r.text
    return r.json()


def get(s, key, jid):
    return requests.get(s.url + "/api/v1/jobs/" + jid, headers=auth(key))


def wait_status(s, key, jid, want, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        j = get(s, key, jid).json()
        if j["status"] in want:
            return j
        time.sleep(0.05)
    raise AssertionError("job %s never reached %s: %s" % (jid, want, j))


def new_key(s, role):
    rc, out, err = s.keys("create", "--role", role, "--name", "k-" + role)
    assert rc == 0, err
    return [w for w in out.split() if w.startswith("mdk_")][0]


def test_job_lifecycle_fields_and_result(start_server):
    s = start_server("--test-routes", "--workers", "1")
    k = s.admin_key
    j = submit(s, k, b"\x89PNG-ish bytes", steps=3, step_ms=50, format="png")
    assert j["status"] == "QUEUED"
    assert j["links"]["self"] == "/api/v1/jobs/" + j["job_id"]
    assert j["progress"] == 0 and j["result"] is None
    done = wait_status(s, k, j["job_id"], {"SUCCESS"})
    for f in ("job_id", "status", "progress", "stage", "created_at", "started_at", "completed_at",
              "error_message", "result"):
        assert f in done, f
    assert done["progress"] == 100 and done["error_message"] is None
    assert done["result"] == {"width": 14, "height": 1, "bytes": 14, "format": "png"}
    assert done["steps"] == 3   # the job's parameters are fields of the job
    r = requests.get(s.url + "/api/v1/jobs/%s/result" % j["job_id"], headers=auth(k))
    assert r.status_code == 200
    assert r.content == b"\x89PNG-ish bytes"
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"] == "attachment; filename=test_%s.png" % j["job_id"]


def test_errors_unknown_conflict_failure(start_server):
    s = start_server("--test-routes", "--workers", "1")
    k = s.admin_key
    assert get(s, k, "j_000000000000000000000000").status_code == 404
    assert requests.get(s.url + "/api/v1/batch/b_nope", headers=auth(k)).status_code == 404
    assert requests.get(s.url + "/api/v1/jobs/j_x").status_code == 401
    j = submit(s, k, steps=200, step_ms=20)
    r = requests.get(s.url + "/api/v1/jobs/%s/result" % j["job_id"], headers=auth(k))
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    requests.delete(s.url + "/api/v1/jobs/" + j["job_id"], headers=auth(k))
    f = submit(s, k, steps=1, step_ms=0, fail="corrupt_image")
    done = wait_status(s, k, f["job_id"], {"FAILURE"})
    assert done["error_code"] == "corrupt_image"
    assert "failed as asked" in done["error_message"]
    r = requests.post(s.url + "/api/test/jobs", params={"steps": "x"}, data=b"a", headers=auth(k))
    assert r.status_code == 400 and r.json()["error"]["field"] == "steps"


def test_cancel_queued_and_running(start_server):
    s = start_server("--test-routes", "--workers", "1")
    k = s.admin_key
    run = submit(s, k, steps=1000, step_ms=20)
    wait_status(s, k, run["job_id"], {"PROCESSING"})
    queued = submit(s, k, steps=1, step_ms=0)   # the one worker is busy
    r = requests.delete(s.url + "/api/v1/jobs/" + queued["job_id"], headers=auth(k))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELLED" and r.json()["deleted"] is True
    assert get(s, k, queued["job_id"]).status_code == 404
    r = requests.delete(s.url + "/api/v1/jobs/" + run["job_id"], headers=auth(k))
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    done = wait_status(s, k, run["job_id"], {"CANCELLED"})
    assert done["error_code"] == "cancelled"


def test_other_keys_jobs_are_404(start_server):
    s = start_server("--test-routes", "--workers", "1")
    a, b = new_key(s, "write"), new_key(s, "write")
    j = submit(s, a, steps=1, step_ms=0)
    bt = submit(s, a, steps=1, step_ms=0, count=2)
    wait_status(s, a, j["job_id"], {"SUCCESS"})
    for path in ("/api/v1/jobs/" + j["job_id"], "/api/v1/jobs/%s/result" % j["job_id"],
                 "/api/v1/batch/" + bt["batch_id"], "/api/v1/batch/%s/results" % bt["batch_id"]):
        r = requests.get(s.url + path, headers=auth(b))
        assert r.status_code == 404, (path, r.text)
    assert requests.delete(s.url + "/api/v1/jobs/" + j["job_id"], headers=auth(b)).status_code == 404
    assert get(s, a, j["job_id"]).status_code == 200
    assert get(s, s.admin_key, j["job_id"]).status_code == 200   # admins see all


def test_batch_of_50_and_zip(start_server):
    s = start_server("--test-routes", "--workers", "2")
    k = s.admin_key
    b = submit(s, k, b"result-bytes", steps=1, step_ms=0, format="png", count=50)
    assert len(b["job_ids"]) == 50 and b["status"] == "QUEUED"
    end = time.time() + 300
    while time.time() < end:
        st = requests.get(s.url + "/api/v1/batch/" + b["batch_id"], headers=auth(k)).json()
        if st["status"] not in ("QUEUED", "PROCESSING"):
            break
        time.sleep(0.1)
    assert st["status"] == "SUCCESS", st
    assert st["total"] == 50 and st["completed"] == 50 and st["failed"] == 0
    assert st["progress"] == 100 and len(st["jobs"]) == 50
    assert [j["job_id"] for j in st["jobs"]] == b["job_ids"]
    r = requests.get(s.url + "/api/v1/batch/%s/results" % b["batch_id"], headers=auth(k))
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    names = sorted(z.namelist())
    assert names == sorted("test_%s.png" % j for j in b["job_ids"])
    assert all(z.read(n) == b"result-bytes" for n in names)


def test_health_status_and_queue_limit(start_server):
    s = start_server("--test-routes", "--workers", "1", "--job-queue-max", "2")
    k = s.admin_key
    assert requests.get(s.url + "/api/v1/health").json()["status"] == "healthy"
    submit(s, k, steps=1000, step_ms=20)
    submit(s, k, steps=1000, step_ms=20)
    r = requests.post(s.url + "/api/test/jobs", data=b"x", headers=auth(k))
    assert r.status_code == 503 and "Retry-After" in r.headers
    st = requests.get(s.url + "/api/v1/status", headers=auth(k)).json()
    assert st["jobs"]["queued"] + st["jobs"]["running"] == 2
    assert st["workers"]["threads"] == 1
    assert st["memory"]["total_bytes"] > 0 and st["cpu"]["count"] >= 1


def test_kill_9_during_processing_every_job_finishes(start_server):
    s = start_server("--test-routes", "--workers", "2")
    k = s.admin_key
    ids = [submit(s, k, b"job%d" % i, steps=20, step_ms=50)["job_id"] for i in range(6)]
    wait_status(s, k, ids[0], {"PROCESSING"})
    s.stop(signal.SIGKILL)
    # Same data dir: the new server sees the dead process's leases and runs the jobs again.
    s2 = start_server("--test-routes", "--workers", "2", data_dir=s.data_dir, expect_key=False)
    for i, jid in enumerate(ids):
        done = wait_status(s2, k, jid, {"SUCCESS", "FAILURE"})
        assert done["status"] == "SUCCESS", done
        r = requests.get(s2.url + "/api/v1/jobs/%s/result" % jid, headers=auth(k))
        assert r.content == b"job%d" % i
    assert get(s2, k, ids[0]).json()["attempts"] == 2


def test_kill_9_of_a_worker_process(start_server):
    s = start_server("--test-routes", "--workers", "0")
    k = s.admin_key
    env = dict(os.environ, MODELD_TEST_ROUTES="1")

    def worker():
        return subprocess.Popen([_bin(), "worker", "--data-dir", s.data_dir, "--workers", "1"]
                                + store_args(s.data_dir),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    w1 = worker()
    try:
        j = submit(s, k, b"payload", steps=40, step_ms=50)
        wait_status(s, k, j["job_id"], {"PROCESSING"})
        w1.send_signal(signal.SIGKILL)
        w1.wait()
        w2 = worker()
        try:
            done = wait_status(s, k, j["job_id"], {"SUCCESS", "FAILURE"})
            assert done["status"] == "SUCCESS" and done["attempts"] == 2, done
        finally:
            w2.send_signal(signal.SIGTERM)
            assert w2.wait(timeout=60) == 0
    finally:
        if w1.poll() is None:
            w1.kill()
            w1.wait()
