"""The whole cluster on one machine (issue 12 §2, `make cluster-test`): on the loopback interface
only and in temporary directories, a real PostgreSQL (tests/pg/pgtmp.sh), redis-server, nginx
with deploy/nginx/modeld.conf itself (only its listen port, upstream addresses and temporary
paths rewritten), two `modeld serve --workers 0` nodes and two `modeld worker` processes, all on
the one database, the one Redis and one shared data dir (the blobs). It checks:

- upload on node 1, convert on node 2; the same through nginx, which spreads over both nodes;
- a job submitted through nginx runs on a worker and its WebSocket progress arrives through
  nginx and through the serve node that did not accept it (the upgrade through nginx works);
- kill -9 of the worker in the middle of a job: the job finishes on the other worker, once
  (attempts 2, each worker's log names its attempt, the row unchanged afterwards); a worker
  stalled (SIGSTOP) past its lease while another takes the job over finds its lease gone when
  it wakes and changes nothing;
- a model swap / rollback / canary on node 1 is served by node 2 (the time is printed; the
  deadline is generous, as no test here asserts a timing);
- a burst spread over both nodes, directly and through nginx, meets one shared rate limit;
- redis-server killed mid-run: requests and jobs still succeed (a WebSocket on another node
  follows a job through the store), /api/ready and modeld_redis_up say so; PostgreSQL restarted: nodes and workers reconnect, no accepted job is lost.

Everything is torn down at the end, on failure too, and the teardown checks that none of the
processes it started (nginx's workers and PostgreSQL's children included) is left running.
Waits are for conditions with generous bounds."""
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from cluster_util import (NGINX, REDIS, TERMINAL, Nginx, Redis, Worker, alive, children,  # noqa: E402
                          follow_job_ws as follow, metric, pg_ctl, pg_external, pg_tmp)
from conftest import Server, pg_url  # noqa: E402
from convert_util import corpus, upload  # noqa: E402
from oip_util import MODEL, bearer, infer_body, models_dir  # noqa: E402


pytestmark = pytest.mark.skipif(not (os.path.exists(REDIS) and os.path.exists(NGINX)),
                                reason="redis-server or nginx is not installed")


class Cluster:
    pass


@pytest.fixture(scope="module")
def cluster():
    """The whole cluster; torn down in reverse order whatever happened, then checked for
    processes left behind."""
    c = Cluster()
    started, pids = [], []
    with pg_tmp() as pg:
        c.pg = pg
        if not pg_external():  # else it outlives this module
            with open(os.path.join(pg[2], "data", "postmaster.pid")) as f:
                pids.append(int(f.readline()))
            pids += children(pids[0])
        try:
            c.redis = Redis()
            started.append(c.redis.stop)
            pids.append(c.redis.proc.pid)
            c.mdir = models_dir()
            started.append(lambda: shutil.rmtree(c.mdir, ignore_errors=True))
            c.data_root = tempfile.mkdtemp(prefix="modeld-cluster-")
            started.append(lambda: shutil.rmtree(c.data_root, ignore_errors=True))
            c.data_dir = os.path.join(c.data_root, "var")
            c.store = pg_url(pg[0], c.data_dir)
            shared = ["--store", c.store, "--redis", c.redis.url, "--redis-timeout", "200ms"]
            node_args = shared + ["--workers", "0", "--models-dir", c.mdir, "--test-routes",
                                  "--rate-read", "0.05:10", "--canary-min-requests", "1000000000"]
            c.n1 = Server(node_args, data_dir=c.data_dir)
            started.append(lambda: stop_checked(c.n1))
            c.n2 = Server(node_args, data_dir=c.data_dir, expect_key=False)
            c.n2.admin_key = c.n1.admin_key
            started.append(lambda: stop_checked(c.n2))
            c.key = c.n1.admin_key
            c.worker_args = shared + ["--models-dir", c.mdir]
            c.workers, c.others = [], []  # others: workers a test starts for itself, stopped here if it fails
            started.append(lambda: [stop_checked(w) for w in c.workers + c.others])
            for _ in range(2):
                c.workers.append(Worker(c.data_dir, c.worker_args))
            c.nginx = Nginx(["127.0.0.1:%d" % c.n1.port, "127.0.0.1:%d" % c.n2.port])
            started.append(c.nginx.stop)
            pids.append(c.nginx.proc.pid)
            pids += children(c.nginx.proc.pid)
            pids += [p.proc.pid for p in (c.n1, c.n2, *c.workers)]
            yield c
        finally:
            errors = []
            for stop in reversed(started):
                try:
                    stop()
                except Exception as e:  # keep tearing down; report all at the end
                    errors.append(repr(e))
            pids += [w.proc.pid for w in getattr(c, "workers", []) + getattr(c, "others", [])]
            # the postmaster of now (a test restarts PostgreSQL) and its backends, before pgtmp stops it
            if not pg_external():
                with open(os.path.join(pg[2], "data", "postmaster.pid")) as f:
                    pids.append(int(f.readline()))
                pids += children(pids[-1])
    left = [p for p in pids if alive(p)]
    assert not left, "processes left running: %s" % left
    assert not errors, errors


def stop_checked(p):
    rc = p.stop()
    p.check_sanitizers()
    assert rc == (-signal.SIGKILL if p.killed else 0), "exit %s:\n%s" % (rc, p.stderr()[-4000:])
    p.cleanup()


def rid(prefix):
    return {"X-Request-ID": "%s-%s" % (prefix, uuid.uuid4().hex[:12])}


def submit(url, key, body, headers=None, **q):
    r = requests.post(url + "/api/test/jobs", params=q, data=body, headers={**bearer(key), **(headers or {})},
                      timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def job(url, key, jid):
    r = requests.get(url + "/api/v1/jobs/" + jid, headers=bearer(key), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(url, key, jid, want, timeout=120):
    end = time.time() + timeout
    j = None
    while time.time() < end:
        j = job(url, key, jid)
        if j["status"] in want:
            return j
        time.sleep(0.05)
    raise AssertionError("job %s never reached %s: %s" % (jid, want, j))


def result(url, key, jid):
    r = requests.get(url + "/api/v1/jobs/%s/result" % jid, headers=bearer(key), timeout=30)
    assert r.status_code == 200, r.text
    return r.content


def test_every_node_is_ready_on_the_shared_services(cluster):
    c = cluster
    for url in (c.n1.url, c.n2.url, c.nginx.url):
        r = requests.get(url + "/api/ready", timeout=30)
        assert r.status_code == 200, r.text
        checks = r.json()["checks"]
        assert checks["database"] == "ok" and checks["redis"] == "up", checks
    # the metadata is in PostgreSQL, not in a SQLite file of the shared data dir
    assert not os.path.exists(os.path.join(c.data_dir, "modeld.db"))
    # the deploy file keeps Prometheus off the balancer
    assert requests.get(c.nginx.url + "/metrics", timeout=30).status_code == 404


def test_upload_on_node1_convert_on_node2_and_through_nginx(cluster):
    c = cluster
    png = corpus("simple_geometric_00.png")
    r = upload(c.n1.url, c.key, png, filename="circle.png")
    assert r.status_code == 200, r.text
    body = {"file_id": r.json()["file_id"], "converter": "vtracer", "filter_speckle": 5}
    a = requests.post(c.n2.url + "/api/convert", headers=bearer(c.key), json=body, timeout=300)
    assert a.status_code == 200, a.text
    assert a.json()["svg"].lstrip().startswith(("<svg", "<?xml")), a.text[:200]
    # through nginx: the upload lands on one node, the conversions are spread over both
    hdr = {**bearer(c.key), **rid("conv")}
    r = requests.post(c.nginx.url + "/api/upload", headers=hdr, files={"file": ("c.png", png, "image/png")},
                      timeout=120)
    assert r.status_code == 200, r.text
    body = {"file_id": r.json()["file_id"], "converter": "vtracer", "filter_speckle": 7}
    svgs, caches = set(), []
    for _ in range(4):
        b = requests.post(c.nginx.url + "/api/convert", headers={**bearer(c.key), **rid("conv")}, json=body,
                          timeout=300)
        assert b.status_code == 200, b.text
        svgs.add(b.json()["svg"])
        caches.append(b.headers["X-Cache"])
    assert len(svgs) == 1 and caches[0] == "MISS" and set(caches[1:]) == {"HIT"}, caches
    ups = c.nginx.upstreams("conv-", 5)
    assert set(ups) == {"127.0.0.1:%d" % c.n1.port, "127.0.0.1:%d" % c.n2.port}, ups


def test_job_through_nginx_followed_over_websockets_on_another_node(cluster):
    import websocket
    c = cluster
    h = rid("job")
    jid = submit(c.nginx.url, c.key, b"through nginx", headers=h, steps=10, step_ms=200)
    accepted = c.nginx.upstreams(h["X-Request-ID"], 1)
    assert len(accepted) == 1, accepted
    other = c.n2 if accepted[0].endswith(":%d" % c.n1.port) else c.n1
    auth = ["Authorization: Bearer " + c.key]
    path = "/api/v1/jobs/%s/status" % jid
    via_nginx = websocket.create_connection(c.nginx.url.replace("http", "ws") + path, header=auth, timeout=60)
    direct = websocket.create_connection(other.url.replace("http", "ws") + path, header=auth, timeout=60)
    seen = [follow(via_nginx), follow(direct)]
    for states, progress in seen:
        assert states[-1] == "SUCCESS", states
        assert progress == sorted(progress), progress
    assert any(0 < p < 100 for p in seen[0][1]), seen  # through nginx on its way, not only its end
    # a socket opened after the end gets the end at once
    states, progress = follow(websocket.create_connection(c.nginx.url.replace("http", "ws") + path,
                                                          header=auth, timeout=60))
    assert states == ["SUCCESS"], states
    assert result(c.nginx.url, c.key, jid) == b"through nginx"


def test_websocket_progress_arrives_on_the_node_that_did_not_accept(cluster):
    import websocket
    c = cluster
    jid = submit(c.n1.url, c.key, b"on node 1", steps=10, step_ms=200)
    ws = websocket.create_connection(c.n2.url.replace("http", "ws") + "/api/v1/jobs/%s/status" % jid,
                                     header=["Authorization: Bearer " + c.key], timeout=60)
    states, progress = follow(ws)
    assert states[-1] == "SUCCESS", states
    assert any(0 < p < 100 for p in progress), progress  # progress on the way, not only the end
    assert result(c.n2.url, c.key, jid) == b"on node 1"


def test_kill_9_of_a_worker_mid_job_finishes_once_on_the_other(cluster):
    c = cluster
    w1, w2 = c.workers
    w2.proc.send_signal(signal.SIGSTOP)  # so that w1 is the one that claims the job
    try:
        jid = submit(c.nginx.url, c.key, b"survives", steps=30, step_ms=100)
        end = time.time() + 60
        while job(c.nginx.url, c.key, jid)["progress"] == 0:
            assert time.time() < end, "the job never started"
            time.sleep(0.05)
        w1.stop(signal.SIGKILL)
    finally:
        w2.proc.send_signal(signal.SIGCONT)
    done = wait_job(c.nginx.url, c.key, jid, TERMINAL, timeout=180)
    assert done["status"] == "SUCCESS" and done["attempts"] == 2, done
    assert result(c.nginx.url, c.key, jid) == b"survives"
    time.sleep(1)  # a second completion would change the row (completed_at, attempts); none does
    assert job(c.n1.url, c.key, jid) == done and job(c.n2.url, c.key, jid) == done
    # attempt 1 on the killed worker, attempt 2 on the other
    assert any("%s started (attempt 1 " % jid in x.get("msg", "") for x in w1.log_lines()), w1.stderr()[-2000:]
    assert any("%s started (attempt 2 " % jid in x.get("msg", "") for x in w2.log_lines()), w2.stderr()[-2000:]
    # a fresh worker takes w1's place for the tests after this one
    stop_checked(w1)
    c.workers[0] = Worker(c.data_dir, c.worker_args)


def test_a_stalled_worker_cannot_complete_a_job_taken_over(cluster):
    """Exactly once against the harder case than a dead worker: one that stalls (SIGSTOP) past
    its lease while the other workers take the job over, then wakes up and finds the lease gone."""
    c = cluster
    for w in c.workers:
        w.proc.send_signal(signal.SIGSTOP)
    stalled = None
    try:
        stalled = Worker(c.data_dir, c.worker_args + ["--job-lease", "2s"])
        c.others.append(stalled)
        jid = submit(c.nginx.url, c.key, b"once", steps=30, step_ms=100)
        end = time.time() + 60
        while job(c.nginx.url, c.key, jid)["progress"] == 0:
            assert time.time() < end, "the job never started"
            time.sleep(0.05)
        stalled.proc.send_signal(signal.SIGSTOP)
    finally:
        for w in c.workers:
            w.proc.send_signal(signal.SIGCONT)
    try:
        # the other workers' lease sweep requeues it once the 2 s lease has run out
        done = wait_job(c.nginx.url, c.key, jid, TERMINAL, timeout=180)
        assert done["status"] == "SUCCESS" and done["attempts"] == 2, done
    finally:
        stalled.proc.send_signal(signal.SIGCONT)
    end = time.time() + 60
    lost = "jobs: lost the lease on %s; stopping its run" % jid
    while not any(x.get("msg") == lost for x in stalled.log_lines()):
        assert time.time() < end, "the stalled worker never noticed: " + stalled.stderr()[-2000:]
        time.sleep(0.05)
    assert job(c.nginx.url, c.key, jid) == done  # its wake-up changed nothing
    assert result(c.nginx.url, c.key, jid) == b"once"
    c.others.remove(stalled)
    stop_checked(stalled)


def served_version(url, key):
    r = requests.post(url + "/v2/models/%s/infer" % MODEL, json=infer_body([[1.0, 2.0, 3.0, 4.0]]),
                      headers=bearer(key), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def wait_for_version(url, key, version, deadline_s=10):
    start = time.time()
    while time.time() - start < deadline_s:
        if served_version(url, key) == version:
            return time.time() - start
        time.sleep(0.01)
    raise AssertionError("%s still serves %s, not %s" % (url, served_version(url, key), version))


def test_model_swap_on_node1_is_served_by_node2(cluster):
    c = cluster
    assert served_version(c.n2.url, c.key) == "3"
    took = []
    for path, body, want in (("versions/1/activate", None, "1"), ("rollback", None, "3"),
                             ("versions/2/canary", {"percent": 100}, "2"),
                             ("versions/2/canary", {"percent": 0}, "3")):
        r = requests.post(c.n1.url + "/api/models/%s/%s" % (MODEL, path), json=body, headers=bearer(c.key),
                          timeout=60)
        assert r.status_code == 200, r.text
        took.append(wait_for_version(c.n2.url, c.key, want))
        for _ in range(4):  # and nginx, whichever node it picks
            assert served_version(c.nginx.url, c.key) == want
    print("node 2 served each change %s s after node 1 answered" % ["%.3f" % t for t in took])


def test_burst_over_both_nodes_meets_one_shared_limit(cluster):
    c = cluster
    for name, urls in (("direct", (c.n1.url, c.n2.url)), ("nginx", (c.nginx.url,))):
        rc, out, err = c.n1.keys("create", "--role", "read", "--name", "burst-" + name, "--store", c.store)
        assert rc == 0, err
        key = out.strip()
        codes = []
        for i in range(30):
            r = requests.get(urls[i % len(urls)] + "/api/models", headers={**bearer(key), **rid("rl" + name)},
                             timeout=30)
            codes.append(r.status_code)
        # per-node buckets would allow the burst (10) on each node, 20 in all
        assert codes.count(200) == 10 and codes.count(429) == 20, (name, codes)
        if name == "direct":
            assert 200 in codes[0::2] and 200 in codes[1::2] and 429 in codes[0::2] and 429 in codes[1::2]
        else:
            assert len(set(c.nginx.upstreams("rlnginx-", 30))) == 2  # nginx used both nodes


def test_redis_killed_requests_and_jobs_still_succeed(cluster):
    c = cluster
    c.redis.kill()
    try:
        for url in (c.n1.url, c.n2.url, c.nginx.url):
            r = requests.get(url + "/api/models", headers=bearer(c.key), timeout=30)
            assert r.status_code == 200, r.text
            r = requests.get(url + "/api/ready", timeout=30)
            assert r.status_code == 200 and r.json()["checks"]["redis"] == "down", r.text
        for n in (c.n1, c.n2):
            assert metric(n, "modeld_redis_up") == 0
        # a job still runs on a worker, and a WebSocket on the other node follows it through
        # the store (polled) instead of Redis's events
        import websocket
        jid = submit(c.n1.url, c.key, b"no redis", steps=5, step_ms=100)
        states, _ = follow(websocket.create_connection(
            c.n2.url.replace("http", "ws") + "/api/v1/jobs/%s/status" % jid,
            header=["Authorization: Bearer " + c.key], timeout=60))
        assert states[-1] == "SUCCESS", states
        assert result(c.nginx.url, c.key, jid) == b"no redis"
    finally:
        c.redis.start()
    end = time.time() + 60
    while not all(metric(n, "modeld_redis_up") == 1 for n in (c.n1, c.n2)):
        assert time.time() < end, "the nodes never saw Redis back"
        time.sleep(0.2)


def submit_retrying(url, key, body, **q):
    """Submit while the database may be away: retried on 503 (+ Retry-After) or nginx's 502;
    the job id once accepted (202)."""
    end = time.time() + 90
    while time.time() < end:
        r = requests.post(url + "/api/test/jobs", params=q, data=body, headers=bearer(key), timeout=30)
        if r.status_code == 202:
            return r.json()["job_id"]
        assert r.status_code in (502, 503), (r.status_code, r.text)
        time.sleep(0.2)
    raise AssertionError("the cluster never accepted the job again")


def test_postgres_restart_loses_no_accepted_job(cluster):
    c = cluster
    bodies = {}
    for i in range(6):
        bodies[submit(c.nginx.url, c.key, b"before%d" % i, steps=10, step_ms=50)] = b"before%d" % i
    pg_ctl(c.pg, "restart -m fast")
    for i in range(4):
        url = (c.n1.url, c.n2.url)[i % 2]
        bodies[submit_retrying(url, c.key, b"after%d" % i, steps=2, step_ms=10)] = b"after%d" % i
    for url in (c.n1.url, c.n2.url, c.nginx.url):
        end = time.time() + 60
        while requests.get(url + "/api/ready", timeout=30).status_code != 200:
            assert time.time() < end, "%s never ready again after the database came back" % url
            time.sleep(0.2)
    for jid, body in bodies.items():
        done = wait_job(c.nginx.url, c.key, jid, TERMINAL)
        assert done["status"] == "SUCCESS", done
        assert result(c.nginx.url, c.key, jid) == body
    # the workers reconnected too: they ran the jobs after the restart (the serve nodes run none)
    assert all(w.proc.poll() is None for w in c.workers)
