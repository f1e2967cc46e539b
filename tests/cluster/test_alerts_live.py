"""The Redis-down and PostgreSQL-down alerts fired live (issue 13): Debian's prometheus on
loopback (1 s scrape and rule evaluation) scrapes a serve node and a `modeld worker`
(--metrics-port) that both run on a throwaway PostgreSQL (tests/pg/pgtmp.sh) and a
redis-server. The rules are a test copy of deploy/prometheus/alerts.yml with every `for:`
shortened to 2 s (the shipped 1 minute would make this test last minutes); expressions, labels
and every other rule are the shipped ones.

redis-server stopped -> ModeldRedisDown goes to firing, for the node and the worker, seen
through Prometheus' HTTP API (/api/v1/alerts); PostgreSQL stopped -> ModeldDatabaseDown fires
likewise, and the targets stay up (a /metrics scrape answers while the database is down, so the
alert is about the database, not ModeldDown); both restarted -> both alerts resolve. Waits are
for conditions, bounded; everything started is stopped whatever happens."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import requests
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from cluster_util import REDIS, Redis, Worker, free_port, pg_ctl, pg_tmp  # noqa: E402
from conftest import Server, pg_url  # noqa: E402
from test_ops_prometheus import PROM_DIR, PROMETHEUS, PROMTOOL, Prometheus  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (os.path.exists(REDIS) and os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL)),
    reason="redis-server or Debian's prometheus is not installed (scripts/deps.sh test)")

FOR = "2s"


def fast_rules(path):
    """alerts.yml with every `for:` set to FOR, written to path; checked by promtool."""
    doc = yaml.safe_load(open(os.path.join(PROM_DIR, "alerts.yml")))
    for g in doc["groups"]:
        for r in g["rules"]:
            if "for" in r:
                r["for"] = FOR
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    p = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def alerts(prom, name):
    """{instance: state} of the active alerts named name."""
    r = requests.get(prom.url + "/api/v1/alerts", timeout=10).json()
    assert r["status"] == "success", r
    return {a["labels"].get("instance"): a["state"] for a in r["data"]["alerts"]
            if a["labels"]["alertname"] == name}


def stop_checked(p):
    rc = p.stop()
    p.check_sanitizers()
    assert rc == 0, "exit %s:\n%s" % (rc, p.stderr()[-4000:])
    p.cleanup()


def test_redis_and_postgres_down_alerts_fire_and_resolve():
    t0 = time.time()
    with pg_tmp() as pg:
        stops = []
        try:
            run(pg, stops)
        finally:
            errors = []
            for stop in reversed(stops):
                try:
                    stop()
                except Exception as e:  # keep tearing down; report all at the end
                    errors.append(repr(e))
        assert not errors, errors
    print("\nalerts fired and resolved, all stopped, in %.1f s" % (time.time() - t0))


def run(pg, stops):
    """The cluster, Prometheus and the outages; every started thing's stop goes on stops."""
    redis = Redis()
    stops.append(redis.stop)
    root = tempfile.mkdtemp(prefix="modeld-alerts-")
    stops.append(lambda: shutil.rmtree(root, ignore_errors=True))
    data_dir = os.path.join(root, "var")
    shared = ["--store", pg_url(pg[0], data_dir), "--redis", redis.url, "--redis-timeout", "200ms"]
    node = Server(shared + ["--workers", "0"], data_dir=data_dir)
    stops.append(lambda: stop_checked(node))
    wport = free_port()
    worker = Worker(data_dir, shared + ["--metrics-port", str(wport)])
    stops.append(lambda: stop_checked(worker))
    rules = os.path.join(root, "alerts-fast.yml")
    fast_rules(rules)
    targets = ["127.0.0.1:%d" % node.port, "127.0.0.1:%d" % wport]
    prom = Prometheus(targets, rules=rules)
    stops.append(prom.stop)

    def series_up(metric):
        return lambda: {r["metric"]["instance"] for r in prom.query(metric + " == 1")} == set(targets)
    prom.wait(series_up("up"), "both targets scraped")
    prom.wait(series_up("modeld_redis_up"), "modeld_redis_up 1 on both")
    prom.wait(series_up("modeld_store_up"), "modeld_store_up 1 on both")
    assert alerts(prom, "ModeldRedisDown") == {} and alerts(prom, "ModeldDatabaseDown") == {}

    redis.kill()
    prom.wait(lambda: alerts(prom, "ModeldRedisDown") == dict.fromkeys(targets, "firing"),
              "ModeldRedisDown firing for the node and the worker")
    redis.start()
    pg_ctl(pg, "stop -m fast")
    try:
        prom.wait(lambda: alerts(prom, "ModeldDatabaseDown") == dict.fromkeys(targets, "firing"),
                  "ModeldDatabaseDown firing for the node and the worker")
        # the scrapes still answer: the database alert, not a down target
        assert series_up("up")(), prom.query("up")
        assert alerts(prom, "ModeldDown") == {}
    finally:
        pg_ctl(pg, "start")
    prom.wait(lambda: alerts(prom, "ModeldRedisDown") == {} and alerts(prom, "ModeldDatabaseDown") == {},
              "both alerts resolved")
    assert requests.get(node.url + "/api/ready", timeout=30).status_code == 200
