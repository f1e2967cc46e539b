"""Conversion API under time and load: results and cached answers expire with the configured
retention, an expired upload is a 404, and 50 concurrent conversions of different images all
succeed or get a clean 503 (JSON body, Retry-After) - none hangs or fails otherwise."""
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from convert_util import bearer, code, convert, corpus, labels, upload, upload_ok


def test_result_retention(start_server):
    s = start_server("--result-ttl", "2")
    fid = upload_ok(s.url, s.admin_key, "simple_geometric_06.png")
    body = {"file_id": fid, "converter": "vtracer"}
    a = convert(s.url, s.admin_key, body)
    assert a.status_code == 200 and a.headers["X-Cache"] == "MISS"
    rid = a.json()["result_id"]
    h = bearer(s.admin_key)
    assert requests.get(s.url + "/api/results/" + rid, headers=h, timeout=30).status_code == 200
    b = convert(s.url, s.admin_key, body)
    assert b.headers["X-Cache"] == "HIT" and b.json()["result_id"] == rid
    time.sleep(2.5)
    for path in (rid, rid + ".svg"):
        r = requests.get(s.url + "/api/results/" + path, headers=h, timeout=30)
        assert r.status_code == 404, (path, r.text)
        assert code(r) == "not_found"
    # The cached answer expired with its result: the same request converts again.
    c = convert(s.url, s.admin_key, body)
    assert c.status_code == 200 and c.headers["X-Cache"] == "MISS"
    assert c.json()["result_id"] != rid


def test_expired_upload_is_404(start_server):
    s = start_server("--upload-ttl", "1s")
    fid = upload_ok(s.url, s.admin_key, "simple_geometric_03.png")
    assert convert(s.url, s.admin_key, {"file_id": fid}).status_code == 200
    time.sleep(2.2)
    r = convert(s.url, s.admin_key, {"file_id": fid})
    assert r.status_code == 404 and code(r) == "file_not_found"


def test_50_concurrent_converts(start_server):
    # A short compute queue makes the overload path certain on any machine: what does not fit
    # must be refused at once with 503, and everything admitted must finish.
    s = start_server("--compute-threads", "2", "--compute-queue", "8", "--request-timeout", "600s",
                     "--rate-admin", "1000:2000")
    names = sorted(labels(), key=lambda n: len(corpus(n)))[:50]
    assert len(names) == 50
    ids = {}
    with ThreadPoolExecutor(8) as ex:  # uploads, 8 at a time (they use the same queue)
        for name, fid in zip(names, ex.map(lambda n: upload_retry(s, n), names)):
            ids[name] = fid

    def one(name):
        t0 = time.time()
        r = convert(s.url, s.admin_key, {"file_id": ids[name], "converter": "vtracer"}, timeout=600)
        return name, r, time.time() - t0

    with ThreadPoolExecutor(50) as ex:
        results = list(ex.map(one, names))
    ok = busy = 0
    for name, r, secs in results:
        if r.status_code == 200:
            ok += 1
            assert r.json()["success"] is True and "<svg" in r.json()["svg"], name
        else:
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert code(r) == "overloaded" and r.json()["success"] is False
            assert int(r.headers["Retry-After"]) >= 1
            assert secs < 30, "a 503 must come at once, not after waiting (%.1f s)" % secs
            busy += 1
    assert ok >= 10 and ok + busy == 50, (ok, busy)
    # The refused ones succeed when retried.
    refused = [name for name, r, _ in results if r.status_code == 503][:5]
    for name in refused:
        r = convert(s.url, s.admin_key, {"file_id": ids[name], "converter": "vtracer"}, timeout=600)
        assert r.status_code == 200, r.text


def upload_retry(s, name):
    for _ in range(100):
        r = upload(s.url, s.admin_key, corpus(name), filename=name)
        if r.status_code != 503:
            assert r.status_code == 200, r.text
            return r.json()["file_id"]
        time.sleep(0.2)
    raise AssertionError("upload kept getting 503")
