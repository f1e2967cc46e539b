"""Fixtures for the end-to-end API tests: start the real modeld binary on a free port with a
temporary data dir, and stop it again.

The binary comes from $MODELD_BIN (make e2e sets it to the ASan build). Each server writes its
stdout and stderr to files in its data dir's parent, so a chatty access log can never block it
on a full pipe; the port is read from the "listening" log line (the server binds port 0).

    def test_x(server):                    # one shared default server per test module
        r = requests.get(server.url + "/api/health")

    def test_y(start_server):              # a server with its own settings
        s = start_server("--rate-read", "1:2", env={"MODELD_TEST_ROUTES": "1"})

PostgreSQL: with MODELD_E2E_PG set to a PostgreSQL URI (`make e2e-pg` runs a subset of these
files so, under tests/pg/pgtmp.sh), every server, `keys` call and worker that names a data dir
uses a schema of its own in that database (store_args), derived from the data dir, so a server
restarted on the same data dir finds its jobs again, and two servers never share a database.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

JWT_SECRET = "e2e-secret-0123456789abcdef0123456789abcdef"


def _bin():
    b = os.environ.get("MODELD_BIN")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", "build", "asan", "modeld")
    return os.path.abspath(b)


def pg_url(base, data_dir):
    """The store URL of data_dir's own schema in the PostgreSQL database base (created here)."""
    schema = "e2e_" + hashlib.sha1(os.path.abspath(data_dir).encode()).hexdigest()[:16]
    subprocess.run(["psql", base, "-q", "-c", "CREATE SCHEMA IF NOT EXISTS " + schema],
                   check=True, capture_output=True, timeout=60)
    return base + ("&" if "?" in base else "?") + "options=-csearch_path%3D" + schema


def store_args(data_dir):
    """["--store", URL] for data_dir under MODELD_E2E_PG, else [] (SQLite in the data dir)."""
    base = os.environ.get("MODELD_E2E_PG")
    return ["--store", pg_url(base, data_dir)] if base else []


class Server:
    """A running `modeld serve`; .url, .admin_key, .data_dir, .log_lines(), .stop()."""

    def __init__(self, args, env=None, data_dir=None, expect_key=True):
        self.tmp = tempfile.mkdtemp(prefix="modeld-e2e-")
        self.killed = False  # set by stop(SIGKILL)
        self.data_dir = data_dir or os.path.join(self.tmp, "var")
        self.out_path = os.path.join(self.tmp, "stdout")
        self.err_path = os.path.join(self.tmp, "stderr")
        full_env = dict(os.environ)
        full_env.setdefault("MODELD_JWT_SECRET", JWT_SECRET)
        full_env.update(env or {})
        cmd = [_bin(), "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", self.data_dir]
        cmd += store_args(self.data_dir) + list(args)
        self.proc = subprocess.Popen(cmd, stdout=open(self.out_path, "wb"), stderr=open(self.err_path, "wb"),
                                     env=full_env)
        self.port = self._wait_listening()
        self.url = "http://127.0.0.1:%d" % self.port
        self.admin_key = self._admin_key() if expect_key else None

    def _wait_listening(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            for line in self.log_lines():
                if line.get("msg") == "listening":
                    return int(line["port"])
            if self.proc.poll() is not None:
                raise RuntimeError("modeld exited with %d:\n%s" % (self.proc.returncode, self.stderr()))
            time.sleep(0.05)
        raise RuntimeError("modeld did not start:\n" + self.stderr())

    def _admin_key(self):
        for word in self.stdout().split():
            if word.startswith("mdk_"):
                return word
        return None

    def stdout(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def log_lines(self):
        """The JSON log lines written so far (non-JSON lines, e.g. sanitizer output, skipped)."""
        out = []
        for line in self.stderr().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def keys(self, *args):
        """Run `modeld keys ...` on this server's data dir; returns (rc, stdout, stderr)."""
        p = subprocess.run([_bin(), "keys"] + list(args) + ["--data-dir", self.data_dir]
                           + store_args(self.data_dir),
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Send sig and wait; returns the exit code. A test that kills with SIGKILL (crash safety)
        marks the server killed, so teardown expects -9 from it."""
        if sig == signal.SIGKILL:
            self.killed = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_sanitizers(self):
        text = self.stderr()
        assert "ERROR: AddressSanitizer" not in text, text[-4000:]
        assert "ERROR: LeakSanitizer" not in text, text[-4000:]
        assert "runtime error:" not in text, text[-4000:]


@pytest.fixture
def start_server():
    started = []

    def start(*args, env=None, data_dir=None, expect_key=True):
        s = Server(args, env=env, data_dir=data_dir, expect_key=expect_key)
        started.append(s)
        return s

    yield start
    for s in started:
        rc = s.stop()
        s.check_sanitizers()
        expected = -signal.SIGKILL if s.killed else 0
        assert rc == expected, "modeld exited with %s:\n%s" % (rc, s.stderr()[-4000:])
        s.cleanup()


@pytest.fixture(scope="module")
def server():
    s = Server(["--test-routes"])
    yield s
    rc = s.stop()
    s.check_sanitizers()
    assert rc == 0, s.stderr()[-4000:]
    s.cleanup()
