"""The write-behind prediction log (src/store/predlog.c, --predict-log-flush-ms) seen from
outside: what a graceful stop and a kill -9 leave in the history.

- SIGTERM loses nothing: every prediction answered before the signal is in the history after a
  restart, though (with a long flush window) they were still queued when it came; /metrics
  counted each answered row as committed or queued.
- kill -9 under load (several clients sending single-row predictions) leaves a prefix: every
  row answered before a read of the history (a reader waits for the queued rows) survives; of
  each client's sequence of answers the history holds a prefix (rows are committed in the order
  they were accepted, whole requests per transaction); every row is whole (its inputs are the
  features sent, its outputs the prediction answered); and history, drift and the number of
  answers agree. Rows answered after the last flush may be lost: at most one flush window.
- --predict-log-flush-ms 0 writes each request's rows in the request (nothing queued).

Waits are for conditions with generous bounds, never timing thresholds."""
import csv
import os
import re
import signal
import threading

import requests

from conftest import _bin  # noqa: F401  (the binary the fixture starts)
from oip_util import bearer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTS = ("female", "senior_citizen", "partner", "dependents", "tenure", "phone_service",
        "paperless_billing")


def churn_features(n):
    with open(os.path.join(ROOT, "models", "churn", "1", "test.csv"), newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    out = []
    for r in rows:
        feats = {k: v for k, v in r.items() if k != "churn"}
        for k in INTS:
            feats[k] = int(feats[k])
        for k in ("monthly_charges", "total_charges"):
            if feats[k] == "":
                del feats[k]
            else:
                feats[k] = float(feats[k])
        out.append(feats)
    return out


def args(flush_ms):
    return ["--models-dir", os.path.join(ROOT, "models"), "--workers", "0",
            "--rate-write", "100000:100000", "--rate-read", "100000:100000",
            "--predict-log-flush-ms", str(flush_ms)]


def metric(s, name):
    text = requests.get(s.url + "/metrics", headers=bearer(s.admin_key)).text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, name
    return float(m.group(1))


def history(s, key):
    """Every logged churn prediction: {prediction_id: item}."""
    items, off = {}, 0
    while True:
        r = requests.get(s.url + "/api/churn/history", params={"limit": 1000, "offset": off},
                         headers=bearer(key))
        assert r.status_code == 200, r.text
        j = r.json()
        for it in j["items"]:
            items[it["prediction_id"]] = it
        if j["next_offset"] is None:
            return items
        off = j["next_offset"]


class Client(threading.Thread):
    """Sends single-row churn predictions one after another until stop is set (or count is
    reached); answers: [(prediction_id, features, prediction)] in the order they came."""

    def __init__(self, s, feats, stop, count=None):
        super().__init__(daemon=True)
        self.s, self.feats, self.stop, self.count = s, feats, stop, count
        self.answers = []
        self.lock = threading.Lock()

    def run(self):
        h = dict(bearer(self.s.admin_key))
        with requests.Session() as sess:
            i = 0
            while not self.stop.is_set() and (self.count is None or i < self.count):
                f = self.feats[i % len(self.feats)]
                i += 1
                try:
                    r = sess.post(self.s.url + "/api/churn", json={"features": f}, headers=h,
                                  timeout=60)
                except requests.RequestException:
                    return  # the server was killed under us
                if r.status_code != 200:
                    return
                with self.lock:
                    self.answers.append((r.json()["prediction_id"], f, r.json()["prediction"]))

    def snapshot(self):
        with self.lock:
            return list(self.answers)


def test_sigterm_loses_nothing(start_server):
    s = start_server(*args(10000))  # the longest window: the rows wait in the queue
    stop = threading.Event()
    clients = [Client(s, churn_features(50), stop, count=40) for _ in range(4)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(timeout=600)
    answered = [a for c in clients for a in c.answers]
    assert len(answered) == 160
    # nothing is in flight: each answered row is either committed or still queued
    behind = metric(s, 'modeld_predict_log_rows_total{path="behind"}')
    queued = metric(s, "modeld_predict_log_queued_rows")
    assert behind + queued + metric(s, 'modeld_predict_log_rows_total{path="inline"}') == 160
    assert metric(s, "modeld_predict_log_rows_failed_total") == 0
    assert s.stop() == 0
    s2 = start_server(*args(10000), data_dir=s.data_dir, expect_key=False)
    s2.admin_key = s.admin_key
    got = history(s2, s.admin_key)
    assert set(got) == {pid for pid, _, _ in answered}


def test_kill9_keeps_a_prefix(start_server):
    s = start_server(*args(1000))
    stop = threading.Event()
    feats = churn_features(200)
    clients = [Client(s, feats[i * 50:(i + 1) * 50], stop) for i in range(4)]
    for c in clients:
        c.start()
    # wait for some answers, then read the history: a reader waits for every queued row, so
    # everything answered before the read is committed once it answers
    while sum(len(c.snapshot()) for c in clients) < 40:
        assert all(c.is_alive() for c in clients)
        threading.Event().wait(0.05)
    before = {pid for c in clients for pid, _, _ in c.snapshot()}
    r = requests.get(s.url + "/api/churn/history?limit=1", headers=bearer(s.admin_key))
    assert r.status_code == 200
    # more load after the read, then the kill while the clients still send
    n0 = sum(len(c.snapshot()) for c in clients)
    while sum(len(c.snapshot()) for c in clients) < n0 + 60:
        assert all(c.is_alive() for c in clients)
        threading.Event().wait(0.05)
    s.stop(signal.SIGKILL)
    stop.set()
    for c in clients:
        c.join(timeout=120)

    s2 = start_server(*args(1000), data_dir=s.data_dir, expect_key=False)
    s2.admin_key = s.admin_key
    got = history(s2, s.admin_key)
    answered = {pid: (f, p) for c in clients for pid, f, p in c.answers}
    # everything answered before the read survived
    assert before <= set(got), len(before - set(got))
    # nothing that was never accepted: at most one request per client was in flight at the kill
    assert len(set(got) - set(answered)) <= len(clients)
    for c in clients:
        seq = [pid in got for pid, _, _ in c.answers]
        # a prefix of each client's answers: once one is missing, all later ones are
        assert seq == sorted(seq, reverse=True), seq
    for pid, it in got.items():
        if pid in answered:
            f, p = answered[pid]
            assert it["inputs"]["features"] == f
            assert it["outputs"]["prediction"] == p
    # history and drift count the same rows
    d = requests.get(s2.url + "/api/churn/drift", headers=bearer(s.admin_key))
    assert d.status_code == 200, d.text
    assert d.json()["rows"] == len(got)


def test_flush_zero_writes_in_the_request(start_server):
    s = start_server(*args(0))
    feats = churn_features(5)
    ids = []
    for f in feats:
        r = requests.post(s.url + "/api/churn", json={"features": f}, headers=bearer(s.admin_key))
        assert r.status_code == 200, r.text
        ids.append(r.json()["prediction_id"])
    assert metric(s, "modeld_predict_log_queued_rows") == 0
    assert metric(s, 'modeld_predict_log_rows_total{path="behind"}') == 0
    assert set(history(s, s.admin_key)) == set(ids)
    help_text = os.popen(_bin() + " serve --help").read()
    assert "--predict-log-flush-ms" in help_text
