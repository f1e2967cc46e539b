#!/usr/bin/python3
"""Measure the job status WebSocket (GET /api/v1/jobs/{id}/status) of a release build: memory per
open socket, time to open them, how long a change takes to reach every socket, and the server's
CPU while N sockets of running jobs are open (each gets its status once a second).

    /usr/bin/python3 bench/ws_status.py [--bin build/release/modeld] [--sockets 250]

The job is a row this script writes into the server's store, as a `modeld worker` process on the
same data dir would (the server follows it by polling the store), so the numbers include that
path. Not a test: it prints numbers, it asserts nothing about them.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

import websocket


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(binary, data_dir, sockets):
    err = open(os.path.join(os.path.dirname(data_dir), "stderr"), "wb")
    p = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", data_dir,
                          "--ws-max", str(sockets + 8), "--workers", "1", "--rate-admin", "10000:10000"],
                         stdout=subprocess.PIPE, stderr=err, text=True,
                         env=dict(os.environ, MODELD_JWT_SECRET="bench-secret-0123456789abcdef0123456789",
                                  MODELD_ACCESS_LOG="false"))
    key = None
    while key is None:
        line = p.stdout.readline()
        if not line:
            sys.exit("modeld exited")
        key = next((w for w in line.split() if w.startswith("mdk_")), None)
    port = None
    while port is None:
        line = p.stdout.readline()
        if "http://" in line:
            port = int(line.split("http://")[1].split("/")[0].rsplit(":", 1)[1])
    return p, key, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/release/modeld")
    ap.add_argument("--sockets", type=int, default=250)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="modeld-ws-bench-")
    data = os.path.join(tmp, "var")
    p, key, port = start(os.path.abspath(a.bin), data, a.sockets)
    try:
        db = sqlite3.connect(os.path.join(data, "modeld.db"), timeout=30)
        jid = "j_" + uuid.uuid4().hex
        now = int(time.time() * 1000)
        with db:
            db.execute("INSERT INTO jobs (id, kind, owner, params, state, progress, stage, max_attempts, created_ms,"
                       " started_ms, input_ttl_ms, result_ttl_ms, lease_owner, lease_expires_ms) VALUES"
                       " (?, 'bench_elsewhere', ?, '{}', 'PROCESSING', 0.1, 'tile 1', 3, ?, ?, 3600000, 86400000,"
                       " 'bench-other-host:1:x', ?)", (jid, key.split("_")[1], now, now, now + 3600 * 1000))
        url = "ws://127.0.0.1:%d/api/v1/jobs/%s/status" % (port, jid)
        time.sleep(0.5)
        rss0 = rss_kb(p.pid)
        t0 = time.perf_counter()
        socks = [websocket.create_connection(url, header=["Authorization: Bearer " + key], timeout=30)
                 for _ in range(a.sockets)]
        for s in socks:
            assert json.loads(s.recv())["status"] == "PROCESSING"
        t_open = time.perf_counter() - t0
        time.sleep(0.5)
        rss1 = rss_kb(p.pid)

        # A change, seen by every socket: the time from the store write to the last arrival.
        t0 = time.perf_counter()
        with db:
            db.execute("UPDATE jobs SET progress = 0.5, stage = 'tile 5', seq = seq + 1 WHERE id = ?", (jid,))
        lat = []
        for s in socks:
            while json.loads(s.recv())["progress"] != 50:
                pass
            lat.append(time.perf_counter() - t0)

        # Server CPU while they stay open (a status per socket per second), reading as we go.
        c0, w0 = cpu_s(p.pid), time.perf_counter()
        got = 0
        end = time.time() + 5
        while time.time() < end:
            for s in socks:
                s.recv()
                got += 1
        elapsed = time.perf_counter() - w0
        cpu = (cpu_s(p.pid) - c0) / elapsed

        print("sockets: %d" % a.sockets)
        print("open + first status, all sockets: %.3f s (%.2f ms each)" % (t_open, 1000 * t_open / a.sockets))
        print("server RSS: %d KiB before, %d KiB with the sockets open: %.1f KiB per socket"
              % (rss0, rss1, (rss1 - rss0) / a.sockets))
        lat.sort()
        print("a store change reaches the sockets in: first %.0f ms, median %.0f ms, last %.0f ms"
              % (1000 * lat[0], 1000 * lat[len(lat) // 2], 1000 * lat[-1]))
        print("while open: %d statuses in %.1f s (%.0f/s), server CPU %.1f%% of one core"
              % (got, elapsed, got / elapsed, 100 * cpu))
        for s in socks:
            s.close()
    finally:
        p.terminate()
        p.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
