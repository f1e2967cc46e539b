"""End-to-end tests of bulk prediction (issue 11 §4, src/api/bulk.c): POST /api/{model}/bulk with
a CSV (multipart and raw) and a JSON-lines upload, each with bad rows, run as a "predict-bulk"
job to SUCCESS; the result CSV (GET /api/v1/jobs/{id}/result) has one line per input row in
order, the bad rows with their error, and good rows matching POST /api/{model}/batch; 413 past
bulk_max_bytes; 404 for unknown and non-predict models; the write role; cancel; and a
100,000-row CSV generated here. Waits are for conditions with generous bounds, never timings."""
import csv
import io
import json
import os
import time

import pytest
import requests

from oip_util import bearer, keyed_server, make_key

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = json.load(open(os.path.join(ROOT, "tests", "fixtures", "predict",
                                    "expected.json")))["cases"]
CHURN = next(c["features"] for c in CASES if c.get("model") == "churn")
COLS = list(CHURN)


@pytest.fixture(scope="module")
def srv():
    yield from keyed_server(["--models-dir", os.path.join(ROOT, "models"), "--workers", "1"])


def rows(n, bad=()):
    """n churn rows varying tenure and charges; the rows in bad get tenure "abc"."""
    out = []
    for i in range(n):
        r = dict(CHURN)
        r["tenure"] = "abc" if i in bad else i % 72
        r["monthly_charges"] = 20.0 + (i % 100)
        r["total_charges"] = r["monthly_charges"] * (i % 72 + 1)
        out.append(r)
    return out


def to_csv(rs):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLS, lineterminator="\n")
    w.writeheader()
    for r in rs:
        w.writerow(r)
    return buf.getvalue().encode()


def wait_job(s, jid, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        j = requests.get(s.url + "/api/v1/jobs/" + jid, headers=bearer(s.write_key)).json()
        if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            return j
        time.sleep(0.1)
    raise AssertionError("job %s did not finish: %s" % (jid, j))


def result(s, jid):
    r = requests.get(s.url + "/api/v1/jobs/%s/result" % jid, headers=bearer(s.write_key))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


def test_csv_with_a_bad_row(srv):
    rs = rows(300, bad={17})
    r = requests.post(srv.url + "/api/churn/bulk", headers=bearer(srv.write_key),
                      files={"file": ("churn.csv", to_csv(rs), "text/csv")})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "QUEUED" and body["links"]["result"].endswith("/result")
    j = wait_job(srv, body["job_id"])
    assert j["status"] == "SUCCESS", j
    out = result(srv, body["job_id"])
    assert [int(x["row"]) for x in out] == list(range(300))
    assert out[17]["error_code"] == "invalid_parameter" and out[17]["error_field"] == "tenure"
    assert "number" in out[17]["error"]
    assert all(not x["error"] for i, x in enumerate(out) if i != 17)
    # good rows are the batch route's predictions, flattened
    items = [dict(r, tenure=int(r["tenure"])) for r in rs[:5]]
    b = requests.post(srv.url + "/api/churn/batch", json={"items": items},
                      headers=bearer(srv.write_key)).json()
    for p in b["predictions"]:
        got = out[p["index"]]
        for k, v in p["prediction"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert abs(float(got[k]) - v) <= 1e-6 * max(1.0, abs(v)), (k, got[k], v)
            elif isinstance(v, str):
                assert got[k] == v, (k, got[k], v)


def test_raw_csv_body(srv):
    r = requests.post(
        srv.url + "/api/churn/bulk", data=to_csv(rows(10)),
        headers=dict(bearer(srv.write_key), **{"Content-Type": "text/csv"}))
    assert r.status_code == 202, r.text
    assert wait_job(srv, r.json()["job_id"])["status"] == "SUCCESS"
    out = result(srv, r.json()["job_id"])
    assert len(out) == 10 and not any(x["error"] for x in out)


def test_json_lines(srv):
    lines = [json.dumps(r) for r in rows(50, bad={3})]
    lines[10] = "{not json"
    lines[20] = "[1, 2]"
    lines.insert(30, "")  # blank lines are skipped
    body = ("\n".join(lines) + "\n").encode()
    r = requests.post(srv.url + "/api/churn/bulk", data=body,
                      headers=dict(bearer(srv.write_key),
                                   **{"Content-Type": "application/x-ndjson"}))
    assert r.status_code == 202, r.text
    assert wait_job(srv, r.json()["job_id"])["status"] == "SUCCESS"
    out = result(srv, r.json()["job_id"])
    assert [int(x["row"]) for x in out] == list(range(50))
    bad = {i: x for i, x in enumerate(out) if x["error"]}
    assert sorted(bad) == [3, 10, 20], bad
    assert bad[3]["error_field"] == "tenure"
    assert bad[10]["error_field"] == "line 11" and "not JSON" in bad[10]["error"]
    assert bad[20]["error_field"] == "line 21" and "object" in bad[20]["error"]
    # told apart by the first byte without a media type
    r = requests.post(srv.url + "/api/churn/bulk", headers=bearer(srv.write_key),
                      files={"file": ("rows", body)})
    assert r.status_code == 202, r.text
    j = wait_job(srv, r.json()["job_id"])
    assert j["status"] == "SUCCESS" and len(result(srv, r.json()["job_id"])) == 50


def test_errors(srv):
    r = requests.post(srv.url + "/api/nosuchmodel/bulk", data=to_csv(rows(2)),
                      headers=bearer(srv.write_key))
    assert r.status_code == 404, r.text
    r = requests.post(srv.url + "/api/digits-cnn/bulk", data=to_csv(rows(2)),
                      headers=bearer(srv.write_key))
    assert r.status_code == 404 and r.json()["error"]["field"] == "model", r.text
    r = requests.post(srv.url + "/api/churn/bulk", data=to_csv(rows(2)),
                      headers=bearer(srv.read_key))
    assert r.status_code == 403, r.text
    r = requests.post(srv.url + "/api/churn/bulk", data=b"", headers=bearer(srv.write_key))
    assert r.status_code == 400 and r.json()["error"]["field"] == "file", r.text
    r = requests.post(srv.url + "/api/churn/bulk", files={"other": ("a", b"x")},
                      headers=bearer(srv.write_key))
    assert r.status_code == 400 and r.json()["error"]["field"] == "file", r.text
    # callbacks are refused without an allow-list
    r = requests.post(srv.url + "/api/churn/bulk", data=to_csv(rows(2)),
                      params={"callback_url": "http://127.0.0.1:9/x"},
                      headers=bearer(srv.write_key))
    assert r.status_code == 400 and r.json()["error"]["field"] == "callback_url", r.text


def test_malformed_csv_fails_naming_the_line(srv):
    body = to_csv(rows(3)) + b'1,"open\n'
    r = requests.post(srv.url + "/api/churn/bulk", data=body,
                      headers=dict(bearer(srv.write_key), **{"Content-Type": "text/csv"}))
    assert r.status_code == 202, r.text
    j = wait_job(srv, r.json()["job_id"])
    assert j["status"] == "FAILURE", j
    assert j["error_code"] == "invalid_parameter" and "line " in j["error_message"], j


def test_too_large(start_server):
    s = start_server("--models-dir", os.path.join(ROOT, "models"), "--bulk-max-bytes", "64K")
    key = make_key(s, "write")
    big = to_csv(rows(700))
    assert len(big) > 64 * 1024 and len(big) < 1024 * 1024
    r = requests.post(s.url + "/api/churn/bulk", headers=bearer(key),
                      files={"file": ("big.csv", big, "text/csv")})
    assert r.status_code == 413 and r.json()["error"]["field"] == "file", r.text
    r = requests.post(s.url + "/api/churn/bulk", data=big, headers=bearer(key))
    assert r.status_code == 413, r.text


def test_hundred_thousand_rows(srv):
    n = 100000
    r = requests.post(srv.url + "/api/churn/bulk", data=to_csv(rows(n, bad={n - 1})),
                      headers=dict(bearer(srv.write_key), **{"Content-Type": "text/csv"}))
    assert r.status_code == 202, r.text
    j = wait_job(srv, r.json()["job_id"], timeout=1200)
    assert j["status"] == "SUCCESS", j
    out = result(srv, r.json()["job_id"])
    assert len(out) == n and int(out[-1]["row"]) == n - 1 and out[-1]["error_field"] == "tenure"
    assert sum(1 for x in out if x["error"]) == 1


def test_callback_on_completion(start_server):
    from test_schedules_callbacks import ENV, Receiver, check_signature
    s = start_server("--models-dir", os.path.join(ROOT, "models"), "--workers", "1", env=ENV)
    key = make_key(s, "write")
    rec = Receiver([200])
    try:
        r = requests.post(s.url + "/api/churn/bulk", headers=bearer(key),
                          files={"file": ("c.csv", to_csv(rows(20, bad={4})), "text/csv")},
                          data={"callback_url": rec.url()})
        assert r.status_code == 202, r.text
        jid = r.json()["job_id"]
        rec.wait(1)
        headers, body = rec.requests[0]
        check_signature(headers, body)
        doc = json.loads(body)
        assert doc["job_id"] == jid and doc["state"] == "SUCCESS" and doc["kind"] == "predict-bulk"
        meta = doc["result_meta"]
        assert meta["format"] == "csv" and meta["model"] == "churn"
        assert meta["rows"] == 20 and meta["failed"] == 1
    finally:
        rec.close()
