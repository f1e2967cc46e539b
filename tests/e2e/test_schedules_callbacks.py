"""End-to-end tests of issue 11 §4's building blocks on a live server: signed job callbacks to a
small local receiver (the signature checked with Python's hmac, a 500 retried until delivered,
a host off the allow-list refused with 400 naming callback_url), the schedule routes (create,
list, delete, errors naming the field and, for cron, which of the 5 fields) and the admin job
listing (filters, paging, one job with its callback state). Jobs are the "test" kind of
--test-routes. Waits are for conditions with generous bounds, never timing thresholds."""
import hashlib
import hmac
import http.server
import json
import threading
import time

import requests

SECRET = "e2e-callback-secret"
ENV = {"MODELD_CALLBACK_ALLOW_HOSTS": "127.0.0.1", "MODELD_CALLBACK_SECRET": SECRET}


def auth(key):
    return {"Authorization": "Bearer " + key}


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers the next status of
    `statuses` (the last one repeats)."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.requests = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                i = len(rec.requests)
                rec.requests.append((dict(self.headers), body))
                status = rec.statuses[min(i, len(rec.statuses) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def wait(self, n, timeout=60):
        end = time.time() + timeout
        while len(self.requests) < n and time.time() < end:
            time.sleep(0.05)
        assert len(self.requests) >= n, self.requests

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def check_signature(headers, body):
    sig = headers["X-Modeld-Signature"]
    parts = dict(p.split("=", 1) for p in sig.split(","))
    want = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], want), sig
    assert abs(int(parts["t"]) - time.time()) < 300


def submit(s, **q):
    r = requests.post(s.url + "/api/test/jobs", params=q, data=b"abc", headers=auth(s.admin_key))
    return r


def wait_callback_state(s, jid, state, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        j = requests.get(s.url + "/api/admin/jobs/" + jid, headers=auth(s.admin_key)).json()
        if j["callback"] and j["callback"]["state"] == state:
            return j
        time.sleep(0.05)
    raise AssertionError(j)


def test_callback_signed_retried_and_refused(start_server):
    s = start_server("--test-routes", "--workers", "1", env=ENV)
    rec = Receiver([500, 200])
    try:
        r = submit(s, steps=1, step_ms=0, callback_url=rec.url())
        assert r.status_code == 202, r.text
        jid = r.json()["job_id"]
        rec.wait(2)  # the 500, then the retry after the backoff
        j = wait_callback_state(s, jid, "delivered")
        assert j["callback"]["attempts"] == 2 and j["status"] == "SUCCESS"
        for headers, body in rec.requests:
            check_signature(headers, body)
            assert headers["X-Modeld-Job-Id"] == jid
            assert headers["Content-Type"] == "application/json"
        doc = json.loads(rec.requests[1][1])
        assert doc["job_id"] == jid and doc["state"] == "SUCCESS" and doc["kind"] == "test"
        assert doc["error"] is None and doc["result_meta"]["format"] == "bin"
        assert rec.requests[0][1] == rec.requests[1][1]  # the same bytes each try

        # a failing job's callback carries the error
        r = submit(s, steps=1, step_ms=0, fail="unsupported", callback_url=rec.url())
        jid2 = r.json()["job_id"]
        wait_callback_state(s, jid2, "delivered")
        doc = json.loads(rec.requests[-1][1])
        assert doc["job_id"] == jid2 and doc["state"] == "FAILURE"
        assert doc["error"]["code"] == "unsupported"
    finally:
        rec.close()

    for url in ("http://example.com/hook", "ftp://127.0.0.1/x", "http://user@127.0.0.1/"):
        r = submit(s, callback_url=url)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["field"] == "callback_url"


def test_callbacks_refused_without_allow_list(start_server):
    s = start_server("--test-routes", "--workers", "0")
    r = submit(s, callback_url="http://127.0.0.1:9/hook")
    assert r.status_code == 400 and r.json()["error"]["field"] == "callback_url"
    assert "disabled" in r.json()["error"]["message"]


def test_schedule_routes(start_server):
    s = start_server("--test-routes", "--workers", "0", env=ENV)
    h = auth(s.admin_key)
    body = {"model": "churn", "cron": "*/5 9-17 * * mon-fri", "input": "u_data",
            "callback_url": "http://127.0.0.1:9/hook"}
    r = requests.post(s.url + "/api/admin/schedule", json=body, headers=h)
    assert r.status_code == 201, r.text
    sc = r.json()
    assert sc["schedule_id"].startswith("s_") and sc["kind"] == "predict-bulk"
    assert sc["model"] == "churn" and sc["cron"] == body["cron"] and sc["input"] == "u_data"
    assert sc["next_run"] and sc["last_run"] is None and sc["last_job_id"] is None
    lst = requests.get(s.url + "/api/admin/schedules", headers=h).json()
    assert lst["count"] == 1 and lst["schedules"][0]["schedule_id"] == sc["schedule_id"]

    bad = [({"cron": "61 * * * *"}, "cron", "field 1 (minute)"),
           ({"cron": "* * * *"}, "cron", "5 fields"),
           ({"cron": "0 0 30 feb *"}, "cron", "never fire"),
           ({"cron": 5}, "cron", "string"),
           ({"input": None}, "input", ""),
           ({"model": ""}, "model", ""),
           ({"callback_url": "http://example.com/"}, "callback_url", "allow-list")]
    for change, field, needle in bad:
        b = dict(body, **change)
        r = requests.post(s.url + "/api/admin/schedule", json=b, headers=h)
        assert r.status_code == 400, (change, r.text)
        err = r.json()["error"]
        assert err["field"] == field and needle in err["message"], (change, err)

    rc, out, _ = s.keys("create", "--role", "write", "--name", "w")
    wkey = [w for w in out.split() if w.startswith("mdk_")][0]
    r = requests.post(s.url + "/api/admin/schedule", json=body, headers=auth(wkey))
    assert r.status_code == 403
    assert requests.get(s.url + "/api/admin/schedules", headers=auth(wkey)).status_code == 403

    url = s.url + "/api/admin/schedules/" + sc["schedule_id"]
    r = requests.delete(url, headers=h)
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = requests.delete(url, headers=h)
    assert r.status_code == 404 and r.json()["error"]["field"] == "schedule_id"
    assert requests.get(s.url + "/api/admin/schedules", headers=h).json()["count"] == 0


def test_admin_job_listing(start_server):
    s = start_server("--test-routes", "--workers", "0", env=ENV)
    h = auth(s.admin_key)
    ids = [submit(s).json()["job_id"] for _ in range(3)]
    r = requests.get(s.url + "/api/admin/jobs", params={"kind": "test", "state": "QUEUED"},
                     headers=h)
    assert r.status_code == 200, r.text
    assert [j["job_id"] for j in r.json()["jobs"]] == ids[::-1]
    assert r.json()["next_cursor"] is None
    page = requests.get(s.url + "/api/admin/jobs", params={"limit": 2}, headers=h).json()
    assert len(page["jobs"]) == 2 and page["next_cursor"] is not None
    rest = requests.get(s.url + "/api/admin/jobs", params={"limit": 2,
                        "cursor": page["next_cursor"]}, headers=h).json()
    assert [j["job_id"] for j in page["jobs"] + rest["jobs"]] == ids[::-1]
    assert requests.get(s.url + "/api/admin/jobs", params={"kind": "enhance"},
                        headers=h).json()["jobs"] == []
    assert requests.get(s.url + "/api/admin/jobs", params={"model": "nope"},
                        headers=h).json()["jobs"] == []
    for q, field in (({"state": "BOGUS"}, "state"), ({"limit": "0"}, "limit"),
                     ({"cursor": "x"}, "cursor")):
        r = requests.get(s.url + "/api/admin/jobs", params=q, headers=h)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
    j = requests.get(s.url + "/api/admin/jobs/" + ids[0], headers=h).json()
    assert j["job_id"] == ids[0] and j["status"] == "QUEUED" and j["callback"] is None
    r = requests.get(s.url + "/api/admin/jobs/j_nope", headers=h)
    assert r.status_code == 404
