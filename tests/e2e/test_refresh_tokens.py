"""Refresh tokens end to end (issue 13): POST /api/auth/token hands one out with the JWT,
POST /api/auth/refresh rotates it (single use), a used token presented again revokes its whole
family, revoking the key revokes its tokens, expiry (a short --refresh-ttl), bad input (400
naming the field), tokens stored only as hashes, and the audit entries of each outcome."""
import os
import sqlite3
import time

import requests


def bearer(k):
    return {"Authorization": "Bearer " + k}


def key_id(key):
    return key.split("_")[1]


def issue(server, key=None):
    r = requests.post(server.url + "/api/auth/token", headers=bearer(key or server.admin_key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refresh_token"].startswith("mdr_") and len(body["refresh_token"]) == 47
    assert body["refresh_expires_in"] > 0
    return body


def refresh(server, tok, **extra):
    return requests.post(server.url + "/api/auth/refresh", json=dict({"refresh_token": tok}, **extra))


def err(r):
    return r.json()["error"]


def test_rotation_gives_working_tokens(server):
    first = issue(server)
    r = refresh(server, first["refresh_token"])
    assert r.status_code == 200, r.text
    nxt = r.json()
    assert nxt["token_type"] == "Bearer" and nxt["role"] == "admin"
    assert nxt["refresh_token"] != first["refresh_token"]
    # the new access token works on an admin route
    r = requests.get(server.url + "/api/admin/audit", headers=bearer(nxt["access_token"]))
    assert r.status_code == 200
    # and the chain goes on
    r = refresh(server, nxt["refresh_token"])
    assert r.status_code == 200
    # a JWT gets an access token but no refresh token (it would outlive the JWT)
    r = requests.post(server.url + "/api/auth/token", headers=bearer(nxt["access_token"]))
    assert r.status_code == 200 and "refresh_token" not in r.json()


def test_reuse_revokes_the_family(server):
    a = issue(server)["refresh_token"]
    r1 = refresh(server, a)
    assert r1.status_code == 200
    b = r1.json()["refresh_token"]
    other = issue(server)["refresh_token"]   # another family of the same key
    # a used token comes back: 401, and the whole family dies, including its live successor
    r = refresh(server, a)
    assert r.status_code == 401 and "reuse" in err(r)["message"]
    r = refresh(server, b)
    assert r.status_code == 401 and "revoked" in err(r)["message"]
    # the other family is untouched
    assert refresh(server, other).status_code == 200


def test_revoking_the_key_revokes_its_tokens(server):
    rc, out, e = server.keys("create", "--role", "write", "--name", "refresher")
    assert rc == 0, e
    key = out.strip()
    tok = issue(server, key)["refresh_token"]
    r = refresh(server, tok)
    assert r.status_code == 200 and r.json()["role"] == "write"
    tok = r.json()["refresh_token"]
    rc, _, e = server.keys("revoke", key_id(key))
    assert rc == 0, e
    r = refresh(server, tok)
    assert r.status_code == 401 and err(r)["code"] == "unauthorized"


def test_bad_input_names_the_field(server):
    url = server.url + "/api/auth/refresh"
    r = requests.post(url, json={})
    assert r.status_code == 400 and err(r)["field"] == "refresh_token"
    r = requests.post(url, json={"refresh_token": 42})
    assert r.status_code == 400 and err(r)["field"] == "refresh_token"
    r = requests.post(url, json={"refresh_token": ""})
    assert r.status_code == 400 and err(r)["field"] == "refresh_token"
    r = requests.post(url, json={"refresh_token": "mdr_" + "A" * 43, "scope": "x"})
    assert r.status_code == 400 and err(r)["field"] == "scope"
    r = requests.post(url, json={"refresh_token": "x" * 5000})
    assert r.status_code == 400 and err(r)["field"] == "refresh_token"
    r = requests.post(url, data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    # well-formed but unknown, or not a refresh token at all: 401
    assert refresh(server, "mdr_" + "A" * 43).status_code == 401
    assert refresh(server, server.admin_key).status_code == 401
    assert refresh(server, "mdr_" + "*" * 43).status_code == 401


def test_stored_as_hash_and_audited(server):
    tok = issue(server)["refresh_token"]
    r = refresh(server, tok)
    assert r.status_code == 200
    assert refresh(server, tok).status_code == 401   # reuse
    db = os.path.join(server.data_dir, "modeld.db")
    if os.path.exists(db):   # SQLite back end: no token in the database file
        con = sqlite3.connect(db)
        rows = con.execute("SELECT hash, key_id FROM refresh_tokens").fetchall()
        con.close()
        assert rows and all(len(h) == 32 for h, _ in rows)
        assert key_id(server.admin_key) in {k for _, k in rows}
        for name in os.listdir(server.data_dir):
            p = os.path.join(server.data_dir, name)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    assert tok[4:].encode() not in f.read()
    deadline = time.time() + 5
    routes = []
    while time.time() < deadline:
        es = requests.get(server.url + "/api/admin/audit?limit=1000", headers=bearer(server.admin_key)).json()
        routes = [(e["route"], e["status"]) for e in es["entries"] if e["route"].startswith("/api/auth/refresh")]
        if ("/api/auth/refresh (reuse: family revoked)", 401) in routes:
            break
        time.sleep(0.05)
    assert ("/api/auth/refresh", 200) in routes
    assert ("/api/auth/refresh (reuse: family revoked)", 401) in routes


def test_expiry(start_server):
    s = start_server("--refresh-ttl", "1s")
    body = issue(s)
    assert body["refresh_expires_in"] == 1
    time.sleep(1.2)
    r = refresh(s, body["refresh_token"])
    assert r.status_code == 401 and "expired" in err(r)["message"]
