"""Helpers shared by the tests that run modeld next to real services (issue 12):
test_cluster_redis.py, test_store_pg.py and the whole-cluster test tests/cluster/.

- Redis: Debian's redis-server on a unix socket in its own temporary directory, with a tiny
  RESP client (the tests need no Python Redis package); start() / kill() / stop().
- pg_tmp(): a throwaway PostgreSQL from tests/pg/pgtmp.sh, as (store URL, pg_ctl prefix, its
  directory), or
  the one `make e2e-pg` already runs ($MODELD_E2E_PG, $PGTMP_CTL).
- metric(): one sample of a node's /metrics.
- follow_job_ws(): a job's status WebSocket read to the job's end (TERMINAL: its end states).
- Nginx: Debian's nginx in the foreground on deploy/nginx/modeld.conf itself, rewritten only
  where a test must (listen port, upstream addresses, temporary paths: nginx_conf()).
- Worker: a `modeld worker` process, with conftest's Server's log and stop helpers.
- children() / alive(): for the checks that nothing started is left running.

bench/cluster.py imports this module too (with tests/e2e on its path)."""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

from conftest import JWT_SECRET, Server, _bin

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DEPLOY_CONF = os.path.join(ROOT, "deploy", "nginx", "modeld.conf")


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


def pg_external():
    """True under `make e2e-pg`: the PostgreSQL of tests/pg/pgtmp.sh around the whole run,
    which pg_tmp() hands out and the run's end, not a test, stops."""
    return bool(os.environ.get("MODELD_E2E_PG") and os.environ.get("PGTMP_CTL"))


@contextlib.contextmanager
def pg_tmp():
    """(base store URI, pg_ctl command prefix, directory) of a running PostgreSQL: the one `make e2e-pg`
    started, else a throwaway server of tests/pg/pgtmp.sh, stopped and removed on exit."""
    if pg_external():
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


TERMINAL = ("SUCCESS", "FAILURE", "CANCELLED")


def follow_job_ws(ws):
    """(statuses, progress) of a job's status WebSocket ws until the job ends or the server
    closes it; ws is closed on return."""
    import json
    import websocket
    states, progress = [], []
    try:
        while True:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                break
            if op != websocket.ABNF.OPCODE_TEXT:
                continue
            j = json.loads(data)
            states.append(j["status"])
            progress.append(j["progress"])
            if j["status"] in TERMINAL:
                break
    finally:
        ws.close()
    return states, progress


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(port, upstreams, tmp):
    """deploy/nginx/modeld.conf for a test or a benchmark: listen on 127.0.0.1:port, the
    upstream's servers (docker-compose service names) replaced by one line per address in
    upstreams, each with the deploy file's own parameters; nginx's temporary files in tmp. Each
    rewrite must match, so a change of the deploy file's shape fails here rather than silently
    testing another configuration."""
    with open(DEPLOY_CONF) as f:
        text = f.read()
    block = re.search(r"^([ \t]*)server serve\d+:8080([^;\n]*);\n(?:[ \t]*server serve\d+:8080[^;\n]*;\n)*",
                      text, flags=re.M)
    assert block, "deploy/nginx/modeld.conf: no upstream `server serveN:8080` lines"
    lines = "".join("%sserver %s%s;\n" % (block.group(1), a, block.group(2)) for a in upstreams)
    text = text[:block.start()] + lines + text[block.end():]
    text, n = re.subn(r"^(\s*)listen 80;$", r"\g<1>listen 127.0.0.1:%d;" % port, text, flags=re.M)
    assert n == 1, "deploy/nginx/modeld.conf: expected one `listen 80;`"
    # every temporary path this nginx was built with, so that it writes nothing outside tmp
    built = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=30).stderr
    temps = "".join("    %s_temp_path %s;\n" % (k.replace("client-body", "client_body"), os.path.join(tmp, k))
                    for k in re.findall(r"--http-([a-z-]+)-temp-path=", built)
                    if "--without-http_%s_module" % k not in built)
    text, n = re.subn(r"^http \{\n", "http {\n" + temps, text, flags=re.M)
    assert n == 1, "deploy/nginx/modeld.conf: expected one http block"
    return text


class Nginx:
    """Debian's nginx in the foreground on the rewritten deploy configuration; its access log
    (stdout in the deploy file) is a file here, read by upstreams()."""

    def __init__(self, upstreams):
        self.dir = tempfile.mkdtemp(prefix="modeld-nginx-")
        os.chmod(self.dir, 0o755)  # as root, nginx's workers run as nobody and write temp files here
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(self.port, upstreams, self.dir))
        self.out = os.path.join(self.dir, "access.log")
        self.err = os.path.join(self.dir, "error.log")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-e", self.err, "-c", conf, "-g",
                                      "daemon off; pid %s;" % os.path.join(self.dir, "nginx.pid")],
                                     stdout=open(self.out, "wb"), stderr=open(self.err, "ab"))
        try:
            self._wait_up()
        except BaseException:
            self.stop()
            raise

    def _wait_up(self):
        end = time.time() + 30
        while True:
            assert self.proc.poll() is None, "nginx exited: " + open(self.err).read()
            try:
                requests.get(self.url + "/api/health", timeout=5)
                return
            except requests.ConnectionError:
                assert time.time() < end, "nginx never answered: " + open(self.err).read()
                time.sleep(0.1)

    def upstreams(self, rid_prefix, n):
        """The upstream addresses of the n requests whose X-Request-ID starts with rid_prefix.
        nginx writes a request's log line after its answer, so a client can see the answer
        first: wait (30 s at most) for the n lines."""
        end = time.time() + 30
        while True:
            with open(self.out, errors="replace") as f:
                found = [m.group(1) for m in re.finditer(r"rid=%s\S* upstream=(\S+)" % re.escape(rid_prefix),
                                                         f.read())]
            if len(found) >= n or time.time() > end:
                return found
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the workers finish and exit first
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker(Server):
    """A `modeld worker` process on the cluster's data dir, store and Redis: the log, stop() and
    sanitizer checks of conftest's Server; ready once it logs that it runs jobs."""

    def __init__(self, data_dir, args):
        self.tmp = tempfile.mkdtemp(prefix="modeld-worker-")
        self.killed = False
        self.data_dir = data_dir
        self.out_path = os.path.join(self.tmp, "stdout")
        self.err_path = os.path.join(self.tmp, "stderr")
        env = dict(os.environ, MODELD_TEST_ROUTES="1", MODELD_JWT_SECRET=JWT_SECRET)
        self.proc = subprocess.Popen([_bin(), "worker", "--data-dir", data_dir, "--workers", "1"] + args,
                                     stdout=open(self.out_path, "wb"), stderr=open(self.err_path, "wb"), env=env)
        try:
            self._wait_running()
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def _wait_running(self):
        end = time.time() + 60
        while not any(x.get("msg", "").startswith("worker: running jobs") for x in self.log_lines()):
            assert self.proc.poll() is None, "worker exited: " + self.stderr()[-4000:]
            assert time.time() < end, "worker never started: " + self.stderr()[-4000:]
            time.sleep(0.05)


def children(pid):
    """The pids of pid's child processes (nginx's workers, PostgreSQL's backends)."""
    out = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False
