"""End-to-end test of encryption at rest (issue 13): `modeld serve --encryption-key-file`.

The same workload runs on a server without encryption and on one with a key: an upload and its
conversion (result SVG), an enhancement job (result PNG, preview) and a batch (ZIP) when the
networks are in build/npm, a bulk CSV prediction job, a stored dataset and a retraining from it.
Then every file under the encrypted server's data dir is read and searched for byte strings of
the inputs and outputs (the PNG signature + IHDR of the input, `<svg` and a slice of the SVG,
the CSV header and data lines of the bulk input, its result and the dataset): none may be there
in plain text, and every blob file must start with the encrypted header. The downloads of the
two servers must be byte-identical (the ZIP: its members).

Rotation: the server restarts with a new key and the old one as an old key; everything is read
again (same bytes), and each blob read is found re-encrypted (the key id in its header is the
new key's); then the retention sweeper rewrites the blobs nobody read (job inputs, the
dataset), so that every blob is under the new key. A restart with a wrong key answers 500 io_error naming the key id (and logs it), and
exits cleanly; bad key settings stop `modeld serve` with exit code 2 and a message naming the
setting. Waits are for conditions with generous bounds, never timings."""
import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import time
import zipfile

import pytest
import requests

from conftest import _bin
from convert_util import bearer, corpus, labels

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NPM = os.path.join(ROOT, "build", "npm", "node_modules")
HAVE_NETS = os.path.isdir(os.path.join(NPM, "@upscalerjs", "esrgan-slim"))
# Validation-split rows (retraining leaves test-split rows out, so a dataset of those would
# leave it nothing to learn from).
CHURN_TEST = os.path.join(ROOT, "tests", "fixtures", "predict", "retrain", "churn.csv")
MAGIC = b"MDENC1\0\0"

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K3 = bytes(range(200, 232))


def key_id(key):
    """The key id blob_crypt.c writes in a file's header: BLAKE2b-256("modeld blob key" || key)[:8]."""
    return hashlib.blake2b(b"modeld blob key" + key, digest_size=32).digest()[:8]


def key_file(tmp_path, name, key, form):
    p = tmp_path / name
    text = {"base64": base64.b64encode(key) + b"\n", "hex": key.hex().encode(), "raw": key}[form]
    p.write_bytes(text)
    os.chmod(p, 0o600)
    return str(p)


def data_dir(tmp_path, name):
    d = tmp_path / name
    os.makedirs(d / "models")
    if HAVE_NETS:
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "training", "enhance", "convert.py"),
                        "--npm", NPM, "--out", str(d / "models"), "--only", "slim-x2"],
                       check=True, capture_output=True)
    return str(d)


def serve_args(*extra):
    return ("--models-dir", os.path.join(ROOT, "models"), "--workers", "2",
            "--rate-write", "1000:1000", "--rate-admin", "1000:1000") + extra


def photo(w, h):
    from PIL import Image
    img = Image.new("RGB", (w, h))
    for y in range(h):
        for x in range(w):
            img.putpixel((x, y), (x * 10 % 256, y * 15 % 256, (x + y) * 5 % 256))
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def csv_text(rows, cols):
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


def churn_rows():
    with open(CHURN_TEST, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows


# The inputs, the same for both servers. Columns reversed, so that no line of these CSVs is a
# line of a file a retrained version's directory holds a copy of.
ROWS = churn_rows()
COLS = list(reversed(list(ROWS[0].keys())))
FEATURES = [c for c in COLS if c != "churn"]
BULK_CSV = csv_text(ROWS[:300], FEATURES)
DATASET_CSV = csv_text(ROWS, COLS)
IMAGE_NAME = sorted(n for n in labels() if n.endswith(".png"))[0]
IMAGE = corpus(IMAGE_NAME)


def wait_job(s, jid, timeout=900):
    end = time.time() + timeout
    while time.time() < end:
        j = requests.get(s.url + "/api/v1/jobs/" + jid, headers=bearer(s.admin_key)).json()
        if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            assert j["status"] == "SUCCESS", j
            return j
        time.sleep(0.2)
    raise AssertionError("job %s did not finish" % jid)


def get(s, path):
    r = requests.get(s.url + path, headers=bearer(s.admin_key), timeout=120)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r.content


def workload(s):
    """Run everything once; returns the ids it made and the downloads (name -> bytes)."""
    h = bearer(s.admin_key)
    ids, out = {}, {}
    r = requests.post(s.url + "/api/upload", headers=h,
                      files={"file": (IMAGE_NAME, IMAGE, "image/png")}, timeout=120)
    assert r.status_code == 200, r.text
    ids["file"] = r.json()["file_id"]
    r = requests.post(s.url + "/api/convert", headers=h, json={"file_id": ids["file"]}, timeout=300)
    assert r.status_code == 200, r.text
    ids["result"] = r.json()["result_id"]
    r = requests.post(s.url + "/api/churn/bulk", headers=h, timeout=120,
                      files={"file": ("bulk.csv", BULK_CSV, "text/csv")})
    assert r.status_code == 202, r.text
    ids["bulk"] = r.json()["job_id"]
    r = requests.post(s.url + "/api/admin/datasets", headers=h, timeout=120,
                      files={"file": ("data.csv", DATASET_CSV, "text/csv")})
    assert r.status_code == 201, r.text
    ids["dataset"] = r.json()["dataset_id"]
    r = requests.post(s.url + "/api/admin/retrain", headers=h, timeout=120,
                      json={"model": "churn", "data": ids["dataset"], "params": {"rounds": 5}})
    assert r.status_code == 202, r.text
    ids["retrain"] = r.json()["job_id"]
    if HAVE_NETS:
        r = requests.post(s.url + "/api/v1/enhance", headers=h, timeout=120,
                          files={"file": ("p.png", photo(20, 14))},
                          data={"quality": "fast", "upscale": "2", "output_format": "png"})
        assert r.status_code == 202, r.text
        ids["enhance"] = r.json()["job_id"]
        files = [("files", ("b%d.png" % i, photo(8 + i, 8))) for i in range(2)]
        r = requests.post(s.url + "/api/v1/enhance/batch", headers=h, files=files, timeout=120,
                          data={"quality": "fast", "upscale": "2", "output_format": "png"})
        assert r.status_code == 202, r.text
        ids["batch"] = r.json()["batch_id"]
        ids["batch_jobs"] = r.json()["job_ids"]
    for k in ("bulk", "retrain", "enhance"):
        if k in ids:
            wait_job(s, ids[k])
    for jid in ids.get("batch_jobs", []):
        wait_job(s, jid)
    return ids, read_all(s, ids)


def read_all(s, ids):
    """Every download of the workload: the SVG, the job results, the preview, the ZIP members."""
    out = {"svg": get(s, "/api/results/%s.svg" % ids["result"]),
           "bulk": get(s, "/api/v1/jobs/%s/result" % ids["bulk"]),
           "retrain": get(s, "/api/v1/jobs/%s/result" % ids["retrain"])}
    # a second conversion of the upload reads the upload blob
    r = requests.post(s.url + "/api/convert", headers=bearer(s.admin_key),
                      json={"file_id": ids["file"], "filter_speckle": 5}, timeout=300)
    assert r.status_code == 200, r.text
    if "enhance" in ids:
        out["enhance"] = get(s, "/api/v1/jobs/%s/result" % ids["enhance"])
        out["preview"] = get(s, "/api/v1/jobs/%s/preview" % ids["enhance"])
        raw = get(s, "/api/v1/batch/%s/results" % ids["batch"])
        z = zipfile.ZipFile(io.BytesIO(raw))
        assert len(z.namelist()) == len(ids["batch_jobs"])
        assert z.testzip() is None  # every member's CRC-32 checks
        if shutil.which("unzip"):  # Info-ZIP reads the streamed archive too
            p = os.path.join(s.tmp, "batch.zip")
            with open(p, "wb") as f:
                f.write(raw)
            t = subprocess.run(["unzip", "-tq", p], capture_output=True, text=True)
            assert t.returncode == 0, t.stdout + t.stderr
        for i, m in enumerate(sorted(z.read(n) for n in z.namelist())):
            out["zip%d" % i] = m
    return out


def markers(downloads):
    """Byte strings that must never be found in plain text on disk: long ones (anywhere) and
    short ones (searched outside models/, whose network weights are neither user data nor
    encrypted, so that a 4-byte string there by chance does not fail the test)."""
    svg = downloads["svg"]
    bulk_lines = downloads["bulk"].split(b"\n")
    data_lines = DATASET_CSV.split(b"\n")
    long = {"input PNG signature + IHDR": IMAGE[:29],
            "input PNG bytes": IMAGE[len(IMAGE) // 2:len(IMAGE) // 2 + 32],
            "SVG slice": svg[len(svg) // 2:len(svg) // 2 + 40],
            "SVG head": svg[:40],
            "bulk CSV header": BULK_CSV.split(b"\n")[0],
            "bulk CSV line": BULK_CSV.split(b"\n")[7],
            "bulk result header": bulk_lines[0],
            "bulk result line": bulk_lines[5],
            "dataset CSV header": data_lines[0],
            "dataset CSV line": data_lines[11]}
    if "enhance" in downloads:
        long["enhanced PNG signature + IHDR"] = downloads["enhance"][:29]
        e = downloads["enhance"]
        long["enhanced PNG bytes"] = e[len(e) // 2:len(e) // 2 + 32]
    short = {"<svg": b"<svg", "PNG signature": b"\x89PNG\r\n\x1a\n"}
    for k, v in long.items():
        assert len(v) >= 16, (k, v)
    return long, short


def scan(d, long, short):
    """(file, marker) for each marker found in a file under d."""
    hits = []
    for root, _, files in os.walk(d):
        in_models = os.path.relpath(root, d).split(os.sep)[0] == "models"
        for f in files:
            p = os.path.join(root, f)
            if not os.path.isfile(p):
                continue
            with open(p, "rb") as fh:
                b = fh.read()
            for k, v in long.items():
                if v in b:
                    hits.append((p, k))
            for k, v in short.items():
                if not in_models and v in b:
                    hits.append((p, k))
    return hits


def blob_files(d):
    out = {}
    for root, dirs, files in os.walk(os.path.join(d, "blobs")):
        dirs[:] = [x for x in dirs if x != "tmp"]
        for f in files:
            out[f] = os.path.join(root, f)
    return out


def header_key(path):
    with open(path, "rb") as f:
        h = f.read(16)
    return h[8:16] if h[:8] == MAGIC else None


def same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        if k == "retrain":  # new version name, times: compared by field below
            continue
        assert a[k] == b[k], k


@pytest.mark.skipif(not os.path.exists(CHURN_TEST), reason="models/churn missing")
def test_encryption_at_rest_end_to_end(start_server, tmp_path):
    # the reference: no encryption
    plain = start_server(*serve_args(), data_dir=data_dir(tmp_path, "plain"))
    _, want = workload(plain)
    plain.stop()

    k1 = key_file(tmp_path, "k1", K1, "base64")
    d = data_dir(tmp_path, "enc")
    s = start_server(*serve_args("--encryption-key-file", k1), data_dir=d)
    assert any("encryption at rest: on" in l.get("msg", "") for l in s.log_lines())
    ids, got = workload(s)
    same(want, got)
    s.stop()
    # nothing in plain text under the data dir; every blob is ciphertext under K1
    long, short = markers(got)
    assert scan(d, long, short) == []
    blobs = blob_files(d)
    assert len(blobs) >= 6
    assert {header_key(p) for p in blobs.values()} == {key_id(K1)}
    # the markers are found when the files are plain (the scan itself works)
    assert scan(plain.data_dir, long, {}) != []

    # rotation: K2 writes, K1 still reads; what is read is re-encrypted under K2
    k2 = key_file(tmp_path, "k2", K2, "hex")
    s2 = start_server(*serve_args("--encryption-key-file", k2, "--encryption-old-key-file", k1,
                                  "--sweep-interval", "1h"), data_dir=d, expect_key=False)
    s2.admin_key = s.admin_key  # the same data dir: the key made at the first start
    again = read_all(s2, ids)
    same(want, again)
    read = {hashlib.sha256(v).hexdigest() for k, v in again.items()
            if k != "preview"}
    read.add(hashlib.sha256(IMAGE).hexdigest())  # the upload, read by the second conversion
    blobs = blob_files(d)
    for h in read:
        assert h in blobs, h
        assert header_key(blobs[h]) == key_id(K2), h
    # blobs nobody read (job inputs, the dataset) keep K1 and stay readable under it
    assert {header_key(p) for p in blobs.values()} <= {key_id(K1), key_id(K2)}
    assert any("re-encrypted under key %s" % key_id(K2).hex() in l.get("msg", "")
               for l in s2.log_lines())
    assert scan(d, long, short) == []
    s2.stop()
    # the sweeper finishes the rotation: the blobs nobody read move to K2 as well
    s2b = start_server(*serve_args("--encryption-key-file", k2, "--encryption-old-key-file", k1,
                                   "--sweep-interval", "1s"), data_dir=d, expect_key=False)
    end = time.time() + 120
    while time.time() < end and {header_key(p) for p in blob_files(d).values()} != {key_id(K2)}:
        time.sleep(0.2)
    assert {header_key(p) for p in blob_files(d).values()} == {key_id(K2)}
    assert any("key rotation" in l.get("msg", "") for l in s2b.log_lines())
    s2b.stop()

    # a wrong key: clear 500s naming the key id, a log line, no crash (checked at teardown)
    k3 = key_file(tmp_path, "k3", K3, "raw")
    s3 = start_server(*serve_args("--encryption-key-file", k3), data_dir=d, expect_key=False)
    s3.admin_key = s.admin_key
    for path in ("/api/results/%s.svg" % ids["result"], "/api/v1/jobs/%s/result" % ids["bulk"]):
        r = requests.get(s3.url + path, headers=bearer(s3.admin_key), timeout=60)
        assert r.status_code == 500, r.text
        e = r.json()["error"]
        assert e["code"] == "io_error" and key_id(K2).hex() in e["message"], e
    r = requests.post(s3.url + "/api/convert", headers=bearer(s3.admin_key),
                      json={"file_id": ids["file"]}, timeout=120)
    assert r.status_code == 500 and r.json()["error"]["code"] == "io_error", r.text
    assert any(key_id(K2).hex() in l.get("msg", "") and "not configured" in l.get("msg", "")
               for l in s3.log_lines())
    # metadata (the db) is not encrypted: the job still lists
    r = requests.get(s3.url + "/api/v1/jobs/" + ids["bulk"], headers=bearer(s3.admin_key))
    assert r.status_code == 200 and r.json()["status"] == "SUCCESS"


def run_serve(tmp_path, *args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([_bin(), "serve", "--port", "0", "--data-dir", str(tmp_path / "v")]
                          + list(args), capture_output=True, text=True, timeout=120, env=e)


def test_bad_key_settings(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("not a key\n")
    p = run_serve(tmp_path, "--encryption-key-file", str(bad))
    assert p.returncode == 2 and "encryption_key_file" in p.stderr, p.stderr
    p = run_serve(tmp_path, "--encryption-key-file", str(tmp_path / "missing"))
    assert p.returncode == 2 and "encryption_key_file" in p.stderr, p.stderr
    p = run_serve(tmp_path, env={"MODELD_ENCRYPTION_KEY": "0123456789abcdef0123456789abcdef"})
    assert p.returncode == 2 and "MODELD_ENCRYPTION_KEY" in p.stderr, p.stderr
    good = key_file(tmp_path, "good", K1, "base64")
    p = run_serve(tmp_path, "--encryption-key-file", good, "--encryption-old-key-file", str(bad))
    assert p.returncode == 2 and "encryption_old_key_file" in p.stderr, p.stderr
    p = run_serve(tmp_path, "--encryption-old-key-file", good)
    assert p.returncode == 2 and "encryption_key_file" in p.stderr, p.stderr
    p = run_serve(tmp_path, "--encryption-key-file", good,
                  env={"MODELD_ENCRYPTION_KEY": base64.b64encode(K2).decode()})
    assert p.returncode == 2 and "not both" in p.stderr, p.stderr
    h = subprocess.run([_bin(), "serve", "--help"], capture_output=True, text=True, timeout=60)
    for name in ("--encryption-key-file", "MODELD_ENCRYPTION_KEY", "--encryption-old-key-file"):
        assert name in h.stdout, name


def test_key_from_the_environment(start_server):
    key = base64.b64encode(K1).decode()
    s = start_server("--models-dir", os.path.join(ROOT, "models"),
                     env={"MODELD_ENCRYPTION_KEY": key})
    r = requests.post(s.url + "/api/upload", headers=bearer(s.admin_key),
                      files={"file": (IMAGE_NAME, IMAGE, "image/png")}, timeout=120)
    assert r.status_code == 200, r.text
    blobs = blob_files(s.data_dir)
    h = hashlib.sha256(IMAGE).hexdigest()
    assert header_key(blobs[h]) == key_id(K1)
