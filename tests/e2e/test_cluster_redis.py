"""End-to-end tests of the Redis side of a cluster (issue 12): two `modeld serve` nodes on one
data dir and one real redis-server (Debian's, on a unix socket in a temporary directory, so no
port of the machine is used), checking what the nodes share through Redis:

- a burst spread over both nodes meets one shared token bucket (429 at the shared total);
- a conversion cached on node 1 is an X-Cache HIT on node 2 (the L2);
- a model swap on node 1 is served by node 2 (the registry event), polled with a generous
  deadline (the time it took is printed, not asserted);
- a job's progress and end published by the node whose worker runs it (modeld:jobs), and a
  WebSocket on the other node following it to the end;
- redis-server killed mid-run: requests still succeed, /api/ready stays 200 reporting redis
  "down", modeld_redis_up is 0; it recovers when redis-server is started again;
- --redis-down=refuse answers 503 instead of falling back to per-node buckets.

Under `make e2e-pg` (MODELD_E2E_PG) the two nodes' shared data dir names one PostgreSQL schema
(conftest.store_args), so the same checks run with the store on PostgreSQL.
"""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from cluster_util import REDIS, Redis, follow_job_ws, metric, read_reply
from convert_util import corpus, upload
from oip_util import MODEL, bearer, infer_body, make_key, models_dir

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS), reason="redis-server is not installed")


@pytest.fixture(scope="module")
def redis():
    r = Redis()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def cluster(redis):
    """Two nodes on one data dir and one Redis. Reads are limited to a burst of 10 with almost
    no refill (0.05 tokens/s), so a burst's allowed count is exactly the shared burst."""
    from conftest import Server
    mdir = models_dir()
    args = ["--redis", redis.url, "--models-dir", mdir, "--rate-read", "0.05:10", "--test-routes",
            "--canary-min-requests", "1000000000", "--redis-timeout", "200ms"]
    n1 = Server(args)
    n2 = Server(args + ["--workers", "0"], data_dir=n1.data_dir, expect_key=False)
    n2.admin_key = n1.admin_key
    nodes = (n1, n2)
    yield nodes
    for n in reversed(nodes):
        rc = n.stop()
        n.check_sanitizers()
        assert rc == 0, n.stderr()[-4000:]
    n2.cleanup()
    n1.cleanup()
    shutil.rmtree(mdir, ignore_errors=True)


def test_ready_reports_redis(cluster):
    for n in cluster:
        r = requests.get(n.url + "/api/ready", timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["redis"] == "up"
        assert metric(n, "modeld_redis_up") == 1


def test_burst_over_both_nodes_meets_one_shared_limit(cluster, redis):
    n1, n2 = cluster
    key = make_key(n1, "read")
    codes = []
    for i in range(30):
        node = cluster[i % 2]
        r = requests.get(node.url + "/api/models", headers=bearer(key), timeout=30)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["X-RateLimit-Limit"] == "10"
    # per-node buckets would allow 10 on each node (20); the shared bucket allows 10 in all
    assert codes.count(200) == 10, codes
    assert codes.count(429) == 20, codes
    # both nodes answered 200s and 429s: the one bucket is really shared
    assert 200 in codes[0::2] and 200 in codes[1::2] and 429 in codes[0::2] and 429 in codes[1::2]
    keys = redis.command("KEYS", "modeld:rl:*")
    assert any(k.startswith("modeld:rl:k:") for k in keys), keys


def test_conversion_cached_on_node1_is_a_hit_on_node2(cluster, redis):
    n1, n2 = cluster
    r = upload(n1.url, n1.admin_key, corpus("simple_geometric_00.png"), filename="circle.png")
    assert r.status_code == 200, r.text
    body = {"file_id": r.json()["file_id"], "converter": "vtracer", "filter_speckle": 3}
    a = requests.post(n1.url + "/api/convert", headers=bearer(n1.admin_key), json=body, timeout=300)
    assert a.status_code == 200, a.text
    assert a.headers["X-Cache"] == "MISS"
    b = requests.post(n2.url + "/api/convert", headers=bearer(n2.admin_key), json=body, timeout=300)
    assert b.status_code == 200, b.text
    assert b.headers["X-Cache"] == "HIT"
    assert b.json()["svg"] == a.json()["svg"] and b.json()["result_id"] == a.json()["result_id"]
    assert metric(n2, "modeld_convert_cache_l2_hits_total") >= 1
    ttl = [redis.command("PTTL", k) for k in redis.command("KEYS", "modeld:cv:*")]
    assert ttl and all(0 < t <= 3600 * 1000 for t in ttl), ttl


def served_version(node):
    r = requests.post(node.url + "/v2/models/%s/infer" % MODEL, json=infer_body([[1.0, 2.0, 3.0, 4.0]]),
                      headers=bearer(node.admin_key), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def wait_for_version(node, version, deadline_s=10):
    start = time.time()
    while time.time() - start < deadline_s:
        if served_version(node) == version:
            return time.time() - start
        time.sleep(0.02)
    raise AssertionError("node still serves %s, not %s, after %d s" % (served_version(node), version, deadline_s))


def test_model_swap_on_node1_is_served_by_node2(cluster):
    n1, n2 = cluster
    assert served_version(n2) == "3"
    r = requests.post(n1.url + "/api/models/%s/versions/1/activate" % MODEL, headers=bearer(n1.admin_key), timeout=60)
    assert r.status_code == 200, r.text
    took = wait_for_version(n2, "1")
    print("node 2 served the swap %.3f s after node 1 answered" % took)
    r = requests.post(n1.url + "/api/models/%s/rollback" % MODEL, headers=bearer(n1.admin_key), timeout=60)
    assert r.status_code == 200, r.text
    wait_for_version(n2, "3")
    # a canary set on node 2 reaches node 1
    r = requests.post(n2.url + "/api/models/%s/versions/2/canary" % MODEL, headers=bearer(n2.admin_key),
                      json={"percent": 100}, timeout=60)
    assert r.status_code == 200, r.text
    wait_for_version(n1, "2")
    r = requests.post(n2.url + "/api/models/%s/versions/2/canary" % MODEL, headers=bearer(n2.admin_key),
                      json={"percent": 0}, timeout=60)
    assert r.status_code == 200, r.text
    wait_for_version(n1, "3")


def test_job_events_are_published(cluster, redis):
    """Node 1 runs the job (node 2 has no workers); its progress and end are on modeld:jobs,
    which node 2's WebSocket subscribers follow."""
    n1, n2 = cluster
    sock, f = redis.subscribe("modeld:jobs")
    try:
        r = requests.post(n2.url + "/api/test/jobs?steps=4&step_ms=50", headers=bearer(n2.admin_key),
                          data=b"payload", timeout=30)
        assert r.status_code in (200, 202), r.text
        jid = r.json()["job_id"]
        seen = []
        end = time.time() + 30
        while time.time() < end:
            msg = read_reply(f)
            fields = msg[2].split("\t")
            if fields[1] == jid:
                seen.append((int(fields[2]), float(fields[3])))
                if int(fields[2]) >= 2:  # a terminal state
                    break
        states = [s for s, _ in seen]
        assert states and states[-1] == 2, seen  # SUCCESS
        assert any(0 < p < 1 for _, p in seen), seen  # progress on the way
    finally:
        f.close()
        sock.close()


def test_websocket_on_node2_follows_a_job_run_by_node1(cluster):
    import websocket
    n1, n2 = cluster
    r = requests.post(n2.url + "/api/test/jobs?steps=6&step_ms=100", headers=bearer(n2.admin_key),
                      data=b"payload", timeout=30)
    assert r.status_code == 202, r.text
    jid = r.json()["job_id"]
    ws = websocket.create_connection(n2.url.replace("http://", "ws://") + "/api/v1/jobs/%s/status" % jid,
                                     header=["Authorization: Bearer " + n2.admin_key], timeout=30)
    states, progress = follow_job_ws(ws)
    assert states[-1] == "SUCCESS", states
    assert progress == sorted(progress), progress
    assert any(0 < p < 100 for p in progress), progress  # progress (percent) on the way, not only the end
    r = requests.get(n2.url + "/api/v1/jobs/" + jid, headers=bearer(n2.admin_key), timeout=30)
    assert r.json()["status"] == "SUCCESS"


def test_redis_killed_then_restarted(cluster, redis):
    n1, n2 = cluster
    redis.kill()
    for n in cluster:
        for _ in range(3):
            r = requests.get(n.url + "/api/models", headers=bearer(n.admin_key), timeout=30)
            assert r.status_code == 200, r.text
        r = requests.get(n.url + "/api/ready", timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["redis"] == "down"
        assert metric(n, "modeld_redis_up") == 0
        assert metric(n, "modeld_redis_errors_total") >= 1
    warnings = [x for x in n1.log_lines() if x.get("msg", "").startswith("redis is down")]
    assert len(warnings) == 1, warnings
    redis.start()
    end = time.time() + 30
    while time.time() < end and not all(metric(n, "modeld_redis_up") == 1 for n in cluster):
        time.sleep(0.2)
    assert all(metric(n, "modeld_redis_up") == 1 for n in cluster)
    assert any(x.get("msg") == "redis is back" for x in n1.log_lines())
    # shared again: a swap still reaches the other node
    r = requests.post(n1.url + "/api/models/%s/versions/2/activate" % MODEL, headers=bearer(n1.admin_key), timeout=60)
    assert r.status_code == 200, r.text
    end = time.time() + 30
    while time.time() < end and not all(metric(n, "modeld_redis_subscriber_up") == 1 for n in cluster):
        time.sleep(0.2)
    wait_for_version(n2, "2", deadline_s=30)


def test_refuse_policy_answers_503_while_redis_is_down(start_server):
    gone = os.path.join(tempfile.mkdtemp(prefix="modeld-noredis-"), "none.sock")
    s = start_server("--redis", "unix://" + gone, "--redis-down", "refuse", "--redis-timeout", "100ms")
    r = requests.get(s.url + "/api/models", headers=bearer(s.admin_key), timeout=30)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable" and r.headers["Retry-After"] == "1"
    assert requests.get(s.url + "/api/health", timeout=30).status_code == 200
    r = requests.get(s.url + "/api/ready", timeout=30)
    assert r.status_code == 200 and r.json()["checks"]["redis"] == "down"


def test_local_policy_falls_back_to_node_buckets(start_server):
    gone = os.path.join(tempfile.mkdtemp(prefix="modeld-noredis-"), "none.sock")
    s = start_server("--redis", "unix://" + gone, "--rate-admin", "0.05:3", "--redis-timeout", "100ms")
    codes = [requests.get(s.url + "/api/models", headers=bearer(s.admin_key), timeout=30).status_code
             for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429], codes


def test_bad_redis_settings_are_refused():
    from conftest import _bin
    for args, field in ((["--redis", "http://x"], "redis"), (["--redis-down", "maybe"], "redis_down"),
                        (["--redis", "redis://host:99999"], "redis")):
        d = tempfile.mkdtemp(prefix="modeld-e2e-")
        p = subprocess.run([_bin(), "serve", "--port", "0", "--data-dir", os.path.join(d, "var")] + args,
                           capture_output=True, text=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)
        assert p.returncode == 2, (args, p.stderr)
        assert field in p.stderr, p.stderr
