"""End-to-end tests of request bodies spooled to disk (http_route_body_to_file) on
POST /api/{model}/bulk: a 256 MB raw upload (bulk_max_bytes raised for it: the ASan build's
baseline RSS alone is about 200 MB, so a 100 MB body could not show the bound) and a 30 MB
multipart upload sent in chunks (no Content-Length) leave the server's peak RSS (VmHWM in
/proc/<pid>/status) below the body size and its growth during the upload a small fraction of
it, the job's input blob is byte for byte the upload (its name is the SHA-256 of the bytes
sent), and no spool file is left behind. The uploads' jobs fail at once on purpose (a first JSON
line longer than the 1 MiB line limit) so that prediction work, not the upload, never adds to
the peak. No timings are asserted."""
import hashlib
import os
import time

import requests

from oip_util import bearer, make_key
from test_predict_bulk import ROOT, rows, to_csv, wait_job


def vm_hwm(pid):
    """The process's peak resident set size in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def write_upload(path, size):
    """A JSON-lines file of size bytes whose first line is one long string: its job fails after
    reading the first MiB ("longer than 1048576 bytes"). Returns its SHA-256."""
    h = hashlib.sha256()
    block = b"x" * (1 << 20)
    with open(path, "wb") as f:
        head = b'{"a":"'
        f.write(head)
        h.update(head)
        left = size - len(head)
        while left > 0:
            b = block[:min(left, len(block))]
            f.write(b)
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def blob_path(s, hexdigest):
    return os.path.join(s.data_dir, "blobs", hexdigest[:2], hexdigest[2:4], hexdigest)


def spool_files(s):
    """The spool directory's files, once the last request's end has removed its own (the file
    goes when the request completes, just after the answer is out): waits for that, bounded."""
    d = os.path.join(s.data_dir, "spool")
    for _ in range(200):
        left = os.listdir(d) if os.path.isdir(d) else []
        if not left:
            break
        time.sleep(0.05)
    return left


def warm_up(s, key):
    """One small bulk job end to end, so the model and the job machinery are loaded before the
    peak is read."""
    r = requests.post(s.url + "/api/churn/bulk", data=to_csv(rows(50)),
                      headers=dict(bearer(key), **{"Content-Type": "text/csv"}))
    assert r.status_code == 202, r.text
    assert wait_job(s, r.json()["job_id"])["status"] == "SUCCESS"


def check_failed_fast(s, jid):
    j = wait_job(s, jid)
    assert j["status"] == "FAILURE" and "longer than" in j["error_message"], j


def test_quarter_gigabyte_raw(start_server, tmp_path):
    s = start_server("--models-dir", os.path.join(ROOT, "models"), "--workers", "1",
                     "--bulk-max-bytes", "300M")
    key = s.write_key = make_key(s, "write")
    warm_up(s, key)
    size = 256 << 20
    path = str(tmp_path / "big.jsonl")
    digest = write_upload(path, size)
    before = vm_hwm(s.proc.pid)
    with open(path, "rb") as f:  # requests streams a file object, with its Content-Length
        r = requests.post(s.url + "/api/churn/bulk", data=f,
                          headers=dict(bearer(key), **{"Content-Type": "application/x-ndjson"}))
    after = vm_hwm(s.proc.pid)
    assert r.status_code == 202, r.text
    grew = after - before
    assert after < size, "peak RSS %d MB for a %d MB body" % (after >> 20, size >> 20)
    assert grew < size // 8, "peak RSS grew %d MB for a %d MB body" % (grew >> 20, size >> 20)
    assert os.path.getsize(blob_path(s, digest)) == size  # renamed in whole
    assert spool_files(s) == []
    check_failed_fast(s, r.json()["job_id"])


def test_multipart_chunked(start_server, tmp_path):
    s = start_server("--models-dir", os.path.join(ROOT, "models"), "--workers", "1")
    key = s.write_key = make_key(s, "write")
    warm_up(s, key)
    size = 30 << 20
    path = str(tmp_path / "part.jsonl")
    digest = write_upload(path, size)
    boundary = "b0undary-streaming"

    def body():  # a generator: requests sends it chunked, without a Content-Length
        yield ("--%s\r\nContent-Disposition: form-data; name=\"callback_url\"\r\n\r\n\r\n"
               % boundary).encode()
        yield ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jsonl\"\r\n"
               "Content-Type: application/x-ndjson\r\n\r\n" % boundary).encode()
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                yield b
        yield ("\r\n--%s--\r\n" % boundary).encode()

    before = vm_hwm(s.proc.pid)
    r = requests.post(s.url + "/api/churn/bulk", data=body(),
                      headers=dict(bearer(key), **{
                          "Content-Type": "multipart/form-data; boundary=" + boundary}))
    after = vm_hwm(s.proc.pid)
    assert r.status_code == 202, r.text
    assert after - before < size // 4, "peak RSS grew %d MB" % ((after - before) >> 20)
    assert os.path.getsize(blob_path(s, digest)) == size  # exactly the file part's bytes
    assert spool_files(s) == []
    check_failed_fast(s, r.json()["job_id"])


def test_refused_upload_leaves_no_spool_file(start_server, tmp_path):
    s = start_server("--models-dir", os.path.join(ROOT, "models"), "--bulk-max-bytes", "1M")
    key = make_key(s, "write")

    def chunks(n):
        for _ in range(n):
            yield b"a,b\n" * 16384  # 64 KiB

    # chunked, past bulk_max_bytes + 1 MiB of envelope: 413 once the body ends
    r = requests.post(s.url + "/api/churn/bulk", data=chunks(40), headers=bearer(key))
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    # no credentials: 401 before the body is read, and nothing was written
    r = requests.post(s.url + "/api/churn/bulk", data=b"a,b\n" * 16384)
    assert r.status_code == 401, r.text
    assert spool_files(s) == []
    # the server still takes a good one
    r = requests.post(s.url + "/api/churn/bulk", data=to_csv(rows(5)),
                      headers=dict(bearer(key), **{"Content-Type": "text/csv"}))
    assert r.status_code == 202, r.text


def test_bulk_rows_logged_like_single_predictions(start_server):
    """Bulk rows reach the prediction history (and so drift) like single predictions, sampled by
    predict_bulk_log_sample (not predict_log_sample): all of them at 1, none at 0."""
    for sample, want in (("1", 40), ("0", 0)):
        s = start_server("--models-dir", os.path.join(ROOT, "models"), "--workers", "1",
                         "--predict-bulk-log-sample", sample, "--predict-log-sample",
                         "0" if sample == "1" else "1")
        key = s.write_key = make_key(s, "write")
        r = requests.post(s.url + "/api/churn/bulk", data=to_csv(rows(40, bad={3})),
                          headers=dict(bearer(key), **{"Content-Type": "text/csv"}))
        assert r.status_code == 202, r.text
        assert wait_job(s, r.json()["job_id"])["status"] == "SUCCESS"
        h = requests.get(s.url + "/api/churn/history?limit=1000", headers=bearer(key)).json()
        # the bad row is no prediction, so it is not logged
        assert h["count"] == (want - 1 if want else 0), h.get("count")
        if want:
            item = h["items"][0]
            assert item["inputs"]["features"]["tenure"] is not None
            assert item["outputs"]["prediction"] is not None
