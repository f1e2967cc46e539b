"""A full disk, end to end: the data dir is a small tmpfs (mounting one needs root: the test is
skipped otherwise, saying so), filled by a file until writes fail.

While it is full: an upload answers 507 insufficient_storage with Retry-After (not 500
io_error), GET /api/ready answers 503 naming the store as unwritable, and audited requests keep
their audit entries queued. After the filler is removed: uploads work again, readiness is back,
and every audit entry written meanwhile is in the audit log (none dropped)."""
import errno
import os
import subprocess
import time

import pytest
import requests

from convert_util import bearer, png_bytes, upload

TMPFS_SIZE = "4m"


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; run as root to test a full disk")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE, "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + (r.stderr.strip() or "mount failed"))
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path):
    """Write zeros to path until the file system is full; returns the bytes written."""
    total = 0
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * 65536
        while True:
            try:
                n = os.write(fd, block)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    break
                raise
            if n < len(block):
                block = block[:max(1, len(block) // 2)]
            total += n
    finally:
        os.close(fd)
    return total


def echo(s, rid):
    return requests.post(s.url + "/api/test/echo", json={"rid": rid},
                         headers={**bearer(s.admin_key), "X-Request-ID": rid}, timeout=30)


def audited(s):
    r = requests.get(s.url + "/api/admin/audit?limit=1000", headers=bearer(s.admin_key), timeout=30)
    assert r.status_code == 200
    return {e["request_id"] for e in r.json()["entries"]}


def metric(s, name):
    for line in requests.get(s.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(name + " not in /metrics")


def test_disk_full_answers_507_and_keeps_audit(start_server, small_fs):
    s = start_server("--test-routes", "--store-min-free", "256K", data_dir=str(small_fs / "var"))
    try:
        assert upload(s.url, s.admin_key, png_bytes(8, 8)).status_code == 200
        r = requests.get(s.url + "/api/ready", timeout=30)
        assert r.status_code == 200 and r.json()["checks"]["store"] == "ok"

        filler = small_fs / "filler"
        assert fill(filler) > 0
        r = upload(s.url, s.admin_key, png_bytes(9, 9))
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage"
        assert int(r.headers["Retry-After"]) > 0
        r = requests.get(s.url + "/api/ready", timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["field"] == "store" and "unwritable" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) > 0

        rids = ["diskfull-%d" % i for i in range(200)]
        for rid in rids:
            assert echo(s, rid).status_code == 200

        os.unlink(str(filler))
        r = upload(s.url, s.admin_key, png_bytes(10, 10))
        assert r.status_code == 200, r.text
        assert requests.get(s.url + "/api/ready", timeout=30).status_code == 200
        deadline = time.time() + 15  # the audit writer retries about once a second
        while time.time() < deadline and not set(rids) <= audited(s):
            time.sleep(0.2)
        assert set(rids) <= audited(s)
        assert metric(s, "modeld_audit_dropped_total") == 0
        assert metric(s, "modeld_audit_queued") == 0
    finally:
        s.stop()  # before the tmpfs is unmounted; the fixture checks its exit code
