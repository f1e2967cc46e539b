"""Security end to end: the auth matrix (no key, bad key, revoked key, expired / tampered /
alg-none JWT, read key on an admin route), key and token headers, token exchange, the first
admin key printed once, rate limiting with 429 and X-RateLimit-* headers, and the audit log."""
import base64
import hashlib
import hmac
import json
import time

import requests

from conftest import JWT_SECRET


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=JWT_SECRET, alg="HS256", extra_header=None):
    head = b64(json.dumps(dict({"alg": alg, "typ": "JWT"}, **(extra_header or {}))).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + (b64(sig) if alg == "HS256" else "")


def key_id(key):
    return key.split("_")[1]


def bearer(k):
    return {"Authorization": "Bearer " + k}


def code(r):
    return r.json()["error"]["code"]


def test_first_start_prints_admin_key_once(start_server, tmp_path):
    d = str(tmp_path / "data")
    s = start_server(data_dir=d)
    assert s.admin_key and s.admin_key.startswith("mdk_")
    assert s.stop() == 0
    s2 = start_server(data_dir=d, expect_key=False)
    assert "mdk_" not in s2.stdout()
    assert requests.get(s2.url + "/api/admin/audit", headers=bearer(s.admin_key)).status_code == 200
    # the key itself is in no log line
    assert s.admin_key not in s.stderr() and s.admin_key not in s2.stderr()


def test_auth_matrix(server):
    url = server.url + "/api/admin/audit"
    r = requests.get(url)
    assert r.status_code == 401 and code(r) == "unauthorized"
    r = requests.get(url, headers=bearer("mdk_000000000000_nope"))
    assert r.status_code == 401
    r = requests.get(url, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert requests.get(url, headers=bearer(server.admin_key)).status_code == 200
    assert requests.get(url, headers={"X-API-Key": server.admin_key}).status_code == 200
    rc, out, err = server.keys("create", "--role", "read", "--name", "reader")
    assert rc == 0, err
    reader = out.strip()
    r = requests.get(url, headers=bearer(reader))
    assert r.status_code == 403 and code(r) == "forbidden"
    assert requests.post(server.url + "/api/auth/token", headers=bearer(reader)).status_code == 200
    rc, _, err = server.keys("revoke", key_id(reader))
    assert rc == 0, err
    deadline = time.time() + 5  # the server notices another process's revocation within ~100 ms
    while time.time() < deadline:
        r = requests.post(server.url + "/api/auth/token", headers=bearer(reader))
        if r.status_code == 401:
            break
        time.sleep(0.05)
    assert r.status_code == 401 and code(r) == "unauthorized"


def test_jwt_exchange_and_matrix(server):
    r = requests.post(server.url + "/api/auth/token", headers=bearer(server.admin_key))
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    tok = body["access_token"]
    url = server.url + "/api/admin/audit"
    assert requests.get(url, headers=bearer(tok)).status_code == 200
    tampered = tok[:-3] + ("AAA" if tok[-3:] != "AAA" else "BBB")
    assert requests.get(url, headers=bearer(tampered)).status_code == 401
    kid = key_id(server.admin_key)
    now = int(time.time())
    expired = make_jwt({"sub": kid, "role": "admin", "iat": now - 3600, "exp": now - 60})
    r = requests.get(url, headers=bearer(expired))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    valid = make_jwt({"sub": kid, "role": "admin", "iat": now, "exp": now + 60})
    assert requests.get(url, headers=bearer(valid)).status_code == 200
    wrong_secret = make_jwt({"sub": kid, "role": "admin", "iat": now, "exp": now + 60}, secret="x" * 40)
    assert requests.get(url, headers=bearer(wrong_secret)).status_code == 401
    none_alg = make_jwt({"sub": kid, "role": "admin", "iat": now, "exp": now + 60}, alg="none")
    assert requests.get(url, headers=bearer(none_alg)).status_code == 401


def test_jwt_header_fields_refused(server):
    """A correctly signed token whose header carries a field modeld never writes (kid, jku) is
    refused: such fields ask the verifier to choose or fetch a key."""
    url = server.url + "/api/admin/audit"
    kid = key_id(server.admin_key)
    now = int(time.time())
    claims = {"sub": kid, "role": "admin", "iat": now, "exp": now + 60}
    assert requests.get(url, headers=bearer(make_jwt(claims))).status_code == 200
    for extra in ({"kid": "1"}, {"jku": "https://evil.example/keys.json"}):
        r = requests.get(url, headers=bearer(make_jwt(claims, extra_header=extra)))
        assert r.status_code == 401 and code(r) == "unauthorized", extra


def test_conflicting_credentials(server):
    """Authorization and X-API-Key with different credentials: 400 naming both headers, even
    when each one alone is valid; the same credential in both is fine."""
    url = server.url + "/api/admin/audit"
    rc, out, err = server.keys("create", "--role", "read", "--name", "second")
    assert rc == 0, err
    other = out.strip()
    both = dict(bearer(server.admin_key), **{"X-API-Key": other})
    r = requests.get(url, headers=both)
    assert r.status_code == 400 and code(r) == "bad_request"
    msg = r.json()["error"]["message"]
    assert "Authorization" in msg and "X-API-Key" in msg
    r = requests.get(url, headers=dict(bearer(other), **{"X-API-Key": server.admin_key}))
    assert r.status_code == 400 and code(r) == "bad_request"
    same = dict(bearer(server.admin_key), **{"X-API-Key": server.admin_key})
    assert requests.get(url, headers=same).status_code == 200


def test_public_routes_need_no_key(server):
    for path in ("/api/health", "/api/ready", "/metrics"):
        assert requests.get(server.url + path).status_code == 200


def test_rate_limit_429(start_server):
    s = start_server("--rate-admin", "0.01:3")  # no refill within the test
    url = s.url + "/api/admin/audit"
    codes = []
    last = None
    for _ in range(5):
        last = requests.get(url, headers=bearer(s.admin_key))
        codes.append(last.status_code)
        assert last.headers["X-RateLimit-Limit"] == "3"
        assert int(last.headers["X-RateLimit-Remaining"]) >= 0
        assert int(last.headers["X-RateLimit-Reset"]) >= 0
    assert codes[:3] == [200, 200, 200]
    assert codes[-1] == 429
    assert last.json()["error"]["code"] == "rate_limited"
    assert int(last.headers["Retry-After"]) >= 1
    # health is not rate limited and carries no rate headers
    r = requests.get(s.url + "/api/health")
    assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
    m = requests.get(s.url + "/metrics").text
    assert "modeld_rate_limit_rejections_total 2" in m


def test_rate_limit_per_ip_for_anonymous(start_server):
    s = start_server("--rate-anon", "0.01:2")
    codes = [requests.post(s.url + "/api/auth/token").status_code for _ in range(4)]
    assert codes[:2] == [401, 401]  # anonymous callers spend the IP's bucket too
    assert codes[-1] == 429


def test_audit_log(server):
    rid = "audit-e2e-1"
    r = requests.post(server.url + "/api/test/echo", json={"a": 1},
                      headers={**bearer(server.admin_key), "X-Request-ID": rid})
    assert r.status_code == 200 and r.json()["echo"] == {"a": 1}
    # issuing a token stores a refresh token (a new family), so it is audited
    requests.post(server.url + "/api/auth/token", headers={**bearer(server.admin_key), "X-Request-ID": "tok-1"})
    found = None
    deadline = time.time() + 5  # entries are written by a background thread
    while time.time() < deadline and not found:
        r = requests.get(server.url + "/api/admin/audit?limit=100", headers=bearer(server.admin_key))
        assert r.status_code == 200
        found = [e for e in r.json()["entries"] if e["request_id"] == rid]
        time.sleep(0.05)
    assert found
    e = found[0]
    assert e["who"] == key_id(server.admin_key) and e["method"] == "POST"
    assert e["route"] == "/api/test/echo" and e["status"] == 200 and e["time_ms"] > 0
    entries = requests.get(server.url + "/api/admin/audit?limit=1000", headers=bearer(server.admin_key)).json()
    tok = [x for x in entries["entries"] if x["request_id"] == "tok-1"]
    while time.time() < deadline + 5 and not tok:
        time.sleep(0.05)
        entries = requests.get(server.url + "/api/admin/audit?limit=1000", headers=bearer(server.admin_key)).json()
        tok = [x for x in entries["entries"] if x["request_id"] == "tok-1"]
    assert tok and tok[0]["route"] == "/api/auth/token" and tok[0]["who"] == key_id(server.admin_key)
    page = requests.get(server.url + "/api/admin/audit?limit=1", headers=bearer(server.admin_key)).json()
    assert len(page["entries"]) == 1 and page["total"] >= 1
    r = requests.get(server.url + "/api/admin/audit?limit=5000", headers=bearer(server.admin_key))
    assert r.status_code == 400 and r.json()["error"]["field"] == "limit"


def test_no_auth_mode(start_server):
    s = start_server("--no-auth", expect_key=False)
    assert any(l.get("level") == "warn" and "no-auth" in l.get("msg", "") for l in s.log_lines())
    assert requests.get(s.url + "/api/admin/audit").status_code == 200
