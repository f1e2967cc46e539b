"""GET /api/v1/jobs/{id}/status: a job's status over a WebSocket (issue 10 section 2), against the
real binary with python3-websocket as the client.

The jobs here are rows this test writes into the server's store itself, the way a `modeld
worker` process on the same data dir would (its kind is one no worker of the server runs, and
its lease belongs to another host, so nothing in the server touches it): the server learns of
every change only through the store, which is the path a status takes from another process.
"""
import json
import os
import signal
import socket
import sqlite3
import struct
import threading
import time
import uuid

import pytest
import requests
import websocket

from conftest import JWT_SECRET  # noqa: F401  (the servers sign tokens with it)


def key_id(key):
    return key.split("_")[1]


def bearer(k):
    return {"Authorization": "Bearer " + k}


@pytest.fixture(scope="module")
def keys(server):
    out = {"admin": server.admin_key}
    for name in ("read", "other"):
        rc, stdout, stderr = server.keys("create", "--role", "read", "--name", "e2e-ws-" + name)
        assert rc == 0, stderr
        out[name] = stdout.strip()
    return out


def db(server):
    c = sqlite3.connect(os.path.join(server.data_dir, "modeld.db"), timeout=30)
    c.execute("PRAGMA busy_timeout = 30000")
    return c


def now_ms():
    return int(time.time() * 1000)


def insert_job(server, owner, params=None):
    jid = "j_" + uuid.uuid4().hex
    with db(server) as c:
        c.execute("INSERT INTO jobs (id, kind, owner, params, state, max_attempts, created_ms, input_ttl_ms,"
                  " result_ttl_ms, lease_owner, lease_expires_ms) VALUES (?, 'e2e_elsewhere', ?, ?, 'QUEUED', 3,"
                  " ?, 3600000, 86400000, '', 0)",
                  (jid, owner, json.dumps(params or {"quality": "fast", "upscale": 2}), now_ms()))
    return jid


def update_job(server, jid, **f):
    """Change a row as a worker of another host would, bumping seq (what pollers compare)."""
    if f.get("state") == "PROCESSING":
        f.setdefault("lease_owner", "e2e-other-host:1:ws")
        f.setdefault("lease_expires_ms", now_ms() + 3600 * 1000)
        f.setdefault("started_ms", now_ms())
    if f.get("state") in ("SUCCESS", "FAILURE", "CANCELLED"):
        f.setdefault("completed_ms", now_ms())
        f.setdefault("lease_owner", "")
        f.setdefault("expires_ms", now_ms() + 86400 * 1000)
    cols = ", ".join("%s = ?" % k for k in f)
    with db(server) as c:
        c.execute("UPDATE jobs SET %s, seq = seq + 1 WHERE id = ?" % cols, list(f.values()) + [jid])


def ws_url(server, jid, query=""):
    return server.url.replace("http://", "ws://") + "/api/v1/jobs/%s/status%s" % (jid, query)


def connect(server, jid, key=None, query=""):
    hdr = ["Authorization: Bearer " + key] if key else []
    return websocket.create_connection(ws_url(server, jid, query), header=hdr, timeout=15)


def refused(server, jid, key=None, query=""):
    """The status of a handshake the server refuses (it must refuse it)."""
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        connect(server, jid, key, query)
    return e.value.status_code


def next_frame(ws):
    """(opcode, payload) of the next text or close frame (pings are answered by the library)."""
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_CLOSE):
            return op, data


def next_status(ws):
    op, data = next_frame(ws)
    assert op == websocket.ABNF.OPCODE_TEXT, (op, data)
    return json.loads(data)


def close_code(data):
    return struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None


# ---- messages until a terminal state --------------------------------------------------------

def test_messages_until_terminal_state(server, keys):
    jid = insert_job(server, key_id(keys["read"]))
    ws = connect(server, jid, keys["read"])
    first = next_status(ws)
    assert first["job_id"] == jid and first["status"] == "QUEUED" and first["progress"] == 0
    assert first["quality"] == "fast" and first["upscale"] == 2 and first["result"] is None
    # The job's own status object: the fields of issue 10 section 4 are there.
    for field in ("stage", "created_at", "started_at", "completed_at", "error_message"):
        assert field in first

    update_job(server, jid, state="PROCESSING", progress=0.25, stage="tile 1/4", attempts=1)
    s = next_status(ws)
    while s["status"] == "QUEUED":  # a tick of the old state may come first
        s = next_status(ws)
    assert s["status"] == "PROCESSING" and s["progress"] == 25 and s["stage"] == "tile 1/4"
    assert s["started_at"] is not None

    # Nothing changes: the status still comes again (at least once a second while running).
    again = next_status(ws)
    assert again["status"] == "PROCESSING" and again["progress"] == 25

    update_job(server, jid, progress=0.75, stage="tile 3/4")
    s = next_status(ws)
    while s["progress"] == 25:
        s = next_status(ws)
    assert s["progress"] == 75 and s["stage"] == "tile 3/4"

    update_job(server, jid, state="SUCCESS", progress=1.0, stage="done", result_sha256="ab" * 32,
               result_bytes=1234, result_meta=json.dumps({"width": 64, "height": 48, "format": "png"}))
    s = next_status(ws)
    while s["status"] == "PROCESSING":
        s = next_status(ws)
    assert s["status"] == "SUCCESS" and s["progress"] == 100 and s["completed_at"] is not None
    assert s["result"] == {"width": 64, "height": 48, "bytes": 1234, "format": "png"}
    op, data = next_frame(ws)  # nothing after the terminal status but a normal close
    assert op == websocket.ABNF.OPCODE_CLOSE and close_code(data) == 1000
    ws.close()


def test_finished_job_sends_once_and_closes(server, keys):
    jid = insert_job(server, key_id(keys["read"]))
    update_job(server, jid, state="FAILURE", error_code="internal_error", error_message="the network failed")
    ws = connect(server, jid, keys["read"])
    s = next_status(ws)
    assert s["status"] == "FAILURE" and s["error_message"] == "the network failed"
    op, data = next_frame(ws)
    assert op == websocket.ABNF.OPCODE_CLOSE and close_code(data) == 1000
    ws.close()
    # The same object GET /api/v1/jobs/{id} answers (that route comes with the jobs routes; on a
    # server that has it, the two must agree field by field).
    r = requests.get(server.url + "/api/v1/jobs/" + jid, headers=bearer(keys["read"]))
    if r.status_code == 200:
        plain = r.json()
        plain.pop("success", None)
        assert plain == s
    else:
        assert r.status_code == 404 and "no route" in r.json()["error"]["message"]


# ---- refusals before the upgrade ------------------------------------------------------------

def test_unknown_job_404(server, keys):
    assert refused(server, "j_" + "0" * 32, keys["read"]) == 404
    assert refused(server, "nope", keys["admin"]) == 404


def test_another_keys_job_404(server, keys):
    jid = insert_job(server, key_id(keys["read"]))
    assert refused(server, jid, keys["other"]) == 404  # the same answer as an unknown job
    ws = connect(server, jid, keys["admin"])  # admins see every job
    assert next_status(ws)["job_id"] == jid
    ws.close()
    ws = connect(server, jid, keys["read"])
    assert next_status(ws)["job_id"] == jid
    ws.close()


def test_credentials(server, keys):
    jid = insert_job(server, key_id(keys["read"]))
    assert refused(server, jid) == 401
    assert refused(server, jid, "mdk_bogus_key") == 401
    # Browsers: a JWT in ?token= (never an API key: it would end up in proxy logs).
    tok = requests.post(server.url + "/api/auth/token", headers=bearer(keys["read"])).json()["access_token"]
    ws = connect(server, jid, query="?token=" + tok)
    assert next_status(ws)["job_id"] == jid
    ws.close()
    assert refused(server, jid, query="?token=" + keys["read"]) == 401
    assert refused(server, jid, keys["read"], query="?token=" + tok) == 400  # credentials twice
    other = requests.post(server.url + "/api/auth/token", headers=bearer(keys["other"])).json()["access_token"]
    assert refused(server, jid, query="?token=" + other) == 404


def test_not_a_websocket_400(server, keys):
    jid = insert_job(server, key_id(keys["read"]))
    r = requests.get(server.url + "/api/v1/jobs/%s/status" % jid, headers=bearer(keys["read"]))
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "Upgrade"


def test_route_documented(server):
    doc = requests.get(server.url + "/openapi.json").json()
    op = doc["paths"]["/api/v1/jobs/{id}/status"]["get"]
    assert "101" in op["responses"] and "404" in op["responses"] and "503" in op["responses"]


# ---- the socket limit and the drain (one server of its own: it is stopped at the end) --------

def test_socket_limit_then_drain(start_server):
    s = start_server("--ws-max", "2")
    rc, out, err = s.keys("create", "--role", "read", "--name", "limit")
    assert rc == 0, err
    key = out.strip()
    jid = insert_job(s, key_id(key))
    update_job(s, jid, state="PROCESSING", progress=0.5, stage="tile 2/4")
    a, b = connect(s, jid, key), connect(s, jid, key)
    for w in (a, b):
        assert next_status(w)["status"] == "PROCESSING"
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        connect(s, jid, key)
    assert e.value.status_code == 503
    assert (e.value.resp_headers or {}).get("retry-after") == "1"
    metrics = requests.get(s.url + "/metrics").text
    assert "\nmodeld_websockets_open 2\n" in metrics
    assert "\nmodeld_websockets_refused_total 1\n" in metrics
    a.close()  # a close handshake frees the slot
    deadline = time.time() + 10
    while True:
        try:
            c = connect(s, jid, key)
            break
        except websocket.WebSocketBadStatusException as x:
            assert x.status_code == 503 and time.time() < deadline
            time.sleep(0.05)
    assert next_status(c)["job_id"] == jid

    # SIGTERM with two sockets open: each gets a close frame 1001 before the server exits.
    frames = {0: [], 1: []}

    def read(i, ws):
        while True:
            try:
                op, data = next_frame(ws)
            except (websocket.WebSocketException, OSError):
                return
            frames[i].append((op, data))
            if op == websocket.ABNF.OPCODE_CLOSE:
                return

    readers = [threading.Thread(target=read, args=(i, w)) for i, w in enumerate((b, c))]
    for t in readers:
        t.start()
    s.proc.send_signal(signal.SIGTERM)
    for t in readers:
        t.join(30)
    for i in (0, 1):
        last = frames[i][-1] if frames[i] else (None, b"")
        assert last[0] == websocket.ABNF.OPCODE_CLOSE and close_code(last[1]) == 1001, frames[i]
    assert s.proc.wait(30) == 0
    b.close()
    c.close()
    # The job itself was not touched: it belongs to another process.
    with db(s) as conn:
        assert conn.execute("SELECT state FROM jobs WHERE id = ?", (jid,)).fetchone()[0] == "PROCESSING"


def test_raw_handshake_answer(server, keys):
    """The 101 answer itself (RFC 6455 section 4.2.2), read off a plain socket."""
    jid = insert_job(server, key_id(keys["read"]))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(("GET /api/v1/jobs/%s/status HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (jid, keys["read"])).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk
        head += chunk
    text = head.decode()
    assert text.startswith("HTTP/1.1 101")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in text
    assert "X-Request-ID:" in text
    sock.close()
