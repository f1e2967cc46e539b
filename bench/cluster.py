"""bench/cluster.py BIN - the cluster benchmark's driver (issue 12 §3; run by bench/cluster.sh).

Starts what tests/cluster/test_cluster.py starts (a throwaway PostgreSQL, redis-server, nginx on
deploy/nginx/modeld.conf, with the helpers of tests/e2e/cluster_util.py), with the release
binary and rate limits high enough never to refuse, then measures through nginx:

1. requests/s of GET /api/health (small JSON) and of a cached POST /api/convert (an L1 hit on
   the node that answers; the L2 in Redis the first time a node sees it) with 1 and then 2
   serve nodes behind nginx (wrk, BENCH_CONNS connections, BENCH_SECS seconds each);
2. jobs per minute with 1 and 2 `modeld worker` processes (one job thread each): empty test
   jobs (the queue's own cost: submit, claim, complete on PostgreSQL) and jobs that wait
   0.5 s (steps=5, step_ms=100: work that is not CPU, which is what a second worker can add on
   this machine), BENCH_JOBS (100) of each, submitted in batches of 50 and followed through
   GET /api/v1/batch/{id}.

For each point it also prints the CPU seconds each process group used (nginx, the serve nodes,
PostgreSQL, redis-server, the workers) from /proc: where the time goes. Everything shares the
machine's CPUs (and wrk too), so two nodes cannot scale as two machines would."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

import requests  # noqa: E402

SECS = int(os.environ.get("BENCH_SECS", "5"))
CONNS = int(os.environ.get("BENCH_CONNS", "32"))
NJOBS = int(os.environ.get("BENCH_JOBS", "100"))
HIGH = "1000000000:1000000000"


def tree(pid):
    out = [pid]
    for task in os.listdir("/proc/%d/task" % pid) if os.path.isdir("/proc/%d/task" % pid) else []:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                for c in f.read().split():
                    out += tree(int(c))
        except OSError:
            pass
    return out


def cpu(pids):
    """CPU seconds (user + sys) of pids and their descendants."""
    t = 0
    for root in pids:
        for p in tree(root):
            try:
                with open("/proc/%d/stat" % p) as f:
                    fields = f.read().rsplit(") ", 1)[1].split()
                t += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                pass
    return t / os.sysconf("SC_CLK_TCK")


class Usage:
    """CPU seconds per process group between start() and stop()."""

    def __init__(self, groups):
        self.groups = groups  # {name: [pid, ...]}

    def start(self):
        self.t0 = {k: cpu(v) for k, v in self.groups.items()}
        self.w0 = time.time()

    def stop(self):
        wall = time.time() - self.w0
        return "  ".join("%s %.1f" % (k, cpu(v) - self.t0[k]) for k, v in self.groups.items()) + \
            "  (CPU s in %.1f s)" % wall


def wrk(url, path, key, body=None):
    script = os.path.join(tempfile.mkdtemp(prefix="modeld-wrk-"), "s.lua")
    with open(script, "w") as f:
        f.write('wrk.headers["Authorization"] = "Bearer %s"\n' % key)
        if body:
            f.write('wrk.method = "POST"\nwrk.body = [[%s]]\n' % body)
            f.write('wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t2", "-c%d" % CONNS, "-d%ds" % SECS, "--latency", "-s", script, url + path],
                         capture_output=True, text=True, timeout=SECS + 60).stdout
    shutil.rmtree(os.path.dirname(script), ignore_errors=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(m.group(1)) if m else 0


def jobs_per_minute(url, key, steps, step_ms):
    """NJOBS test jobs submitted as batches (50 jobs at most per request), then the batches
    polled every 20 ms until every job has ended: the queue's rate, not the client's."""
    h = {"Authorization": "Bearer " + key}
    t0 = time.time()
    batches, left = [], NJOBS
    while left > 0:
        n = min(left, 50)
        r = requests.post(url + "/api/test/jobs", params={"steps": steps, "step_ms": step_ms, "count": n},
                          data=b"x", headers=h, timeout=60)
        assert r.status_code == 202, r.text
        batches.append(r.json()["batch_id"])
        left -= n
    for bid in batches:
        while True:
            b = requests.get(url + "/api/v1/batch/" + bid, headers=h, timeout=60).json()
            if b["completed"] + b["failed"] == b["total"]:
                assert b["failed"] == 0, b
                break
            time.sleep(0.02)
    return NJOBS * 60 / (time.time() - t0)


def main():
    os.environ["MODELD_BIN"] = os.path.abspath(sys.argv[1])
    from cluster_util import Nginx, Redis, Worker, pg_tmp
    from conftest import Server, pg_url
    from convert_util import corpus, upload

    started = []
    with pg_tmp() as pg:
        pg_pid = int(open(os.path.join(pg[2], "data", "postmaster.pid")).readline())
        try:
            redis = Redis()
            started.append(redis.stop)
            root = tempfile.mkdtemp(prefix="modeld-cluster-bench-")
            started.append(lambda: shutil.rmtree(root, ignore_errors=True))
            data_dir = os.path.join(root, "var")
            shared = ["--store", pg_url(pg[0], data_dir), "--redis", redis.url]
            args = shared + ["--workers", "0", "--test-routes", "--rate-admin", HIGH, "--rate-read", HIGH,
                             "--rate-write", HIGH, "--rate-anon", HIGH]
            n1 = Server(args, data_dir=data_dir)
            started += [n1.cleanup, n1.stop]
            n2 = Server(args, data_dir=data_dir, expect_key=False)
            started += [n2.cleanup, n2.stop]
            key = n1.admin_key
            r = upload(n1.url, key, corpus("simple_geometric_00.png"), filename="c.png")
            assert r.status_code == 200, r.text
            convert = '{"file_id": "%s", "converter": "vtracer"}' % r.json()["file_id"]
            r = requests.post(n1.url + "/api/convert", data=convert, headers={"Authorization": "Bearer " + key,
                              "Content-Type": "application/json"}, timeout=300)
            assert r.status_code == 200, r.text

            print("== through nginx: %d connections, %d s per point (wrk on the same CPUs)" % (CONNS, SECS))
            print("%-6s %-22s %10s %9s %9s %7s   %s" % ("nodes", "route", "req/s", "p50", "p99", "non-2xx",
                                                       "CPU seconds by process"))
            workers = []
            for nodes in ([n1], [n1, n2]):
                nginx = Nginx(["127.0.0.1:%d" % n.port for n in nodes])
                try:
                    use = Usage({"nginx": [nginx.proc.pid], "serve": [n.proc.pid for n in nodes],
                                 "postgres": [pg_pid], "redis": [redis.proc.pid]})
                    for name, path, body in (("GET /api/health", "/api/health", None),
                                             ("POST /api/convert HIT", "/api/convert", convert)):
                        use.start()
                        rps, p50, p99, bad = wrk(nginx.url, path, key, body)
                        print("%-6d %-22s %10.0f %9s %9s %7d   %s" % (len(nodes), name, rps, p50, p99, bad, use.stop()))
                finally:
                    nginx.stop()

            print("\n== jobs per minute through nginx (2 serve nodes), %d jobs per point, batches of 50" % NJOBS)
            print("%-8s %-28s %12s   %s" % ("workers", "job", "jobs/min", "CPU seconds by process"))
            nginx = Nginx(["127.0.0.1:%d" % n.port for n in (n1, n2)])
            started.append(nginx.stop)
            for count in (1, 2):
                while len(workers) < count:
                    w = Worker(data_dir, shared)
                    workers.append(w)
                    started += [w.cleanup, w.stop]
                use = Usage({"serve": [n1.proc.pid, n2.proc.pid], "workers": [w.proc.pid for w in workers],
                             "postgres": [pg_pid], "redis": [redis.proc.pid], "nginx": [nginx.proc.pid]})
                for name, steps, step_ms in (("empty (queue overhead)", 0, 0), ("waits 0.5 s (steps=5)", 5, 100)):
                    use.start()
                    jpm = jobs_per_minute(nginx.url, key, steps, step_ms)
                    print("%-8d %-28s %12.0f   %s" % (count, name, jpm, use.stop()))
        finally:
            for stop in reversed(started):
                try:
                    stop()
                except Exception as e:  # keep tearing down
                    print("teardown: %r" % e, file=sys.stderr)


if __name__ == "__main__":
    main()
