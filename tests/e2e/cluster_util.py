"""Helpers shared by the tests that run modeld next to real services (issue 12):
test_cluster_redis.py, test_store_pg.py and the whole-cluster test tests/cluster/.

- Redis: Debian's redis-server on a unix socket in its own temporary directory, with a tiny
  RESP client (the tests need no Python Redis package); start() / kill() / stop().
- pg_tmp(): a throwaway PostgreSQL from tests/pg/pgtmp.sh, as (store URL, pg_ctl prefix, its
  directory), or
  the one `make e2e-pg` already runs ($MODELD_E2E_PG, $PGTMP_CTL).
- metric(): one sample of a node's /metrics."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    """redis-server on a unix socket in its own temporary directory; start() / kill()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="modeld-redis-")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.url = "unix://" + self.sock
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([REDIS, "--port", "0", "--unixsocket", self.sock, "--save", "",
                                      "--appendonly", "no", "--dir", self.dir],
                                     stdout=open(os.path.join(self.dir, "log"), "ab"), stderr=subprocess.STDOUT)
        end = time.time() + 20
        while time.time() < end:
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def command(self, *args):
        """One command in RESP over the socket; the reply as str / int / list."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.sock)
        req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
        s.sendall(req)
        f = s.makefile("rb")
        try:
            return read_reply(f)
        finally:
            f.close()
            s.close()

    def subscribe(self, channel):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(15)
        s.connect(self.sock)
        s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel.encode()))
        f = s.makefile("rb")
        read_reply(f)  # the confirmation
        return s, f

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_reply(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:n]
        return data.decode()
    if kind == b"*":
        return [read_reply(f) for _ in range(int(rest))]
    raise ValueError("bad RESP line %r" % line)


@contextlib.contextmanager
def pg_tmp():
    """(base store URI, pg_ctl command prefix, directory) of a running PostgreSQL: the one `make e2e-pg`
    started, else a throwaway server of tests/pg/pgtmp.sh, stopped and removed on exit."""
    if os.environ.get("MODELD_E2E_PG") and os.environ.get("PGTMP_CTL"):
        yield os.environ["MODELD_E2E_PG"], os.environ["PGTMP_CTL"], os.environ.get("PGTMP_DIR", "")
        return
    p = subprocess.Popen([os.path.join(ROOT, "tests", "pg", "pgtmp.sh"), "sh", "-c",
                          'echo "$MODELD_TEST_PG"; echo "$PGTMP_CTL"; echo "$PGTMP_DIR"; read x'],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url, ctl, where = (p.stdout.readline().strip() for _ in range(3))
        assert url and ctl and where, "tests/pg/pgtmp.sh could not start PostgreSQL"
        yield url, ctl, where
    finally:
        p.stdin.close()  # the script's `read` returns: it stops the server and removes its files
        p.wait(timeout=60)


def pg_ctl(pg, what):
    """Run `pg_ctl what` on the server of pg_tmp() (stop -m fast, start, restart -m fast)."""
    r = subprocess.run(pg[1] + " " + what, shell=True, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def metric(node, name):
    text = requests.get(node.url + "/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)
