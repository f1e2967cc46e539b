"""GET /openapi.json and GET /docs end to end (issue 8 §3).

- Every route the server has is in the document, documented: the route table comes
  independently from `modeld routes` (the same registration code, printed without listening).
- The document is valid OpenAPI 3.1: validated against the official schema (a fixture, see
  tests/fixtures/openapi/README.md) with Debian's python3-jsonschema, and every schema inside it is
  a valid JSON Schema 2020-12. Real answers of the server match the schemas the document gives.
- /docs serves swagger-ui from this server only, and answers 503 with the fix when it is missing.
"""
import json
import os
import re
import subprocess

import jsonschema
import pytest
import requests

from conftest import _bin
from convert_util import bearer, png_bytes

HERE = os.path.dirname(os.path.abspath(__file__))
OAS_SCHEMA = os.path.join(HERE, "..", "fixtures", "openapi", "oas-3.1-schema-2022-10-07.json")
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


@pytest.fixture(scope="module")
def doc(server):
    r = requests.get(server.url + "/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def routes_table(*args):
    """[(method, pattern, role, summary)] from `modeld routes`."""
    p = subprocess.run([_bin(), "routes"] + list(args), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = [line.split("\t") for line in p.stdout.splitlines() if line]
    assert all(len(r) == 4 for r in rows), p.stdout
    return rows


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def template(pattern):
    return pattern.replace("*}", "}")


# ---- (a) every registered route is in the document, documented ----

def test_every_route_is_documented(doc):
    table = routes_table("--test-routes")  # the settings the `server` fixture runs with
    assert len(table) >= 14
    ops = {(m.upper(), p): op for p, m, op in operations(doc)}
    for method, pattern, role, summary in table:
        op = ops.pop((method, template(pattern)), None)
        assert op is not None, "%s %s is not in /openapi.json" % (method, pattern)
        assert summary != "-", "%s %s has no descriptor (http_route_doc)" % (method, pattern)
        assert "x-modeld-undocumented" not in op, (method, pattern)
        assert op["summary"] == summary and op["summary"].strip()
        assert op["x-modeld-role"] == role
        assert op["tags"] and op["tags"][0] in {t["name"] for t in doc["tags"]}
        assert op["responses"], (method, pattern)
        # success is a 2xx, or 101 for a WebSocket route (marked as one)
        assert any(s.startswith("2") or (s == "101" and op.get("x-modeld-websocket")) for s in op["responses"]), \
            (method, pattern)
        if role == "public":
            assert op["security"] == []
        else:
            assert op["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
            assert {"401", "403"} <= set(op["responses"]), (method, pattern)
    assert not ops, "operations with no route: %s" % sorted(ops)


def test_no_schema_errors_and_unique_operation_ids(doc):
    text = json.dumps(doc)
    assert "x-modeld-schema-error" not in text
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    assert "getApiResultsById" in ids and "getRoot" in ids


def test_routes_cli_matches_settings():
    """`modeld routes` follows the settings: no test routes by default, /metrics admin-only
    when metrics_public is off."""
    plain = {(m, p): role for m, p, role, _ in routes_table()}
    assert ("GET", "/api/test/slow") not in plain
    assert plain[("GET", "/metrics")] == "public"
    private = {(m, p): role for m, p, role, _ in routes_table("--metrics-public=false")}
    assert private[("GET", "/metrics")] == "admin"


def test_routes_cli_openapi_is_the_served_document(doc):
    p = subprocess.run([_bin(), "routes", "--test-routes", "--openapi"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == doc


def test_error_responses_follow_the_error_table(doc):
    ops = {(m, p): op for p, m, op in operations(doc)}
    audit = ops[("get", "/api/admin/audit")]
    assert "`invalid_parameter`" in audit["responses"]["400"]["description"]
    assert audit["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    # rate-limited routes have 429 with Retry-After; health is not rate limited
    assert "Retry-After" in audit["responses"]["429"]["headers"]
    assert "429" not in ops[("get", "/api/health")]["responses"]
    # heavy routes can be refused by the compute pool (503) or time out (504)
    assert {"503", "504"} <= set(ops[("post", "/api/convert")]["responses"])
    codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert {"file_not_found", "invalid_parameter", "rate_limited"} <= set(codes)


def test_convert_parameters_are_documented(doc):
    props = doc["paths"]["/api/convert"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    assert props["filter_speckle"] == {"type": "integer", "minimum": 0, "maximum": 128, "default": 3,
                                       "description": props["filter_speckle"]["description"]}
    assert props["mode"]["enum"] == ["spline", "polygon", "pixel"]
    assert props["converter"]["enum"] == ["vtracer", "potrace", "smart"]
    upload = doc["paths"]["/api/upload"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "image/*"}
    assert upload["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"


# ---- (b) the document is valid OpenAPI 3.1, and its schemas are valid JSON Schema ----

def test_document_is_valid_openapi_3_1(doc):
    with open(OAS_SCHEMA) as f:
        schema = json.load(f)
    assert schema["$id"] == "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
    v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in v.iter_errors(doc)]
    assert not errors, "\n".join(errors[:20])
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": "/", "description": "this server"}]


def test_validator_refuses_a_broken_document(doc):
    """The check above can fail: a path parameter that is not required breaks OpenAPI 3.1."""
    with open(OAS_SCHEMA) as f:
        v = jsonschema.Draft202012Validator(json.load(f))
    bad = json.loads(json.dumps(doc))
    bad["paths"]["/api/results/{id}"]["get"]["parameters"][0]["required"] = False
    assert list(v.iter_errors(bad))


def schemas_in(node, where=""):
    """Every JSON Schema in an OpenAPI document: components, parameters, headers, media types."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "schema" and isinstance(v, (dict, bool)):
                yield where + "/schema", v
            elif k == "schemas" and where == "/components":
                for name, s in v.items():
                    yield where + "/schemas/" + name, s
            else:
                yield from schemas_in(v, where + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from schemas_in(v, "%s/%d" % (where, i))


def test_every_schema_is_valid_json_schema_2020_12(doc):
    found = list(schemas_in(doc))
    assert len(found) > 50
    for where, s in found:
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.exceptions.SchemaError as e:
            pytest.fail("%s: %s" % (where, e.message))


# ---- the server's real answers match the document ----

def response_validator(doc, path, method, status="200", media="application/json"):
    schema = doc["paths"][path][method]["responses"][status]["content"][media]["schema"]
    resolver = jsonschema.RefResolver.from_schema(doc)
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def check(doc, r, path, method, status=None):
    status = str(status or r.status_code)
    assert status in doc["paths"][path][method]["responses"], (path, method, status, r.text[:300])
    response_validator(doc, path, method, status).validate(r.json())


def test_answers_match_their_schemas(server, doc):
    key = server.admin_key
    u = server.url
    check(doc, requests.get(u + "/api/health"), "/api/health", "get")
    check(doc, requests.get(u + "/api/ready"), "/api/ready", "get")
    check(doc, requests.get(u + "/api/presets", headers=bearer(key)), "/api/presets", "get")
    check(doc, requests.post(u + "/api/auth/token", headers=bearer(key)), "/api/auth/token", "post")
    check(doc, requests.get(u + "/api/admin/audit?limit=2", headers=bearer(key)), "/api/admin/audit", "get")
    r = requests.post(u + "/api/upload", headers=bearer(key), files={"file": ("a.png", png_bytes(24, 16), "image/png")})
    check(doc, r, "/api/upload", "post")
    body = {"file_id": r.json()["file_id"], "converter": "vtracer", "preset": "fast", "filter_speckle": 2}
    req_schema = doc["paths"]["/api/convert"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(req_schema).validate(body)
    r = requests.post(u + "/api/convert", headers=bearer(key), json=body, timeout=300)
    check(doc, r, "/api/convert", "post")
    rid = r.json()["result_id"]
    check(doc, requests.get(u + "/api/results/" + rid, headers=bearer(key)), "/api/results/{id}", "get")
    svg = requests.get(u + "/api/results/" + rid + ".svg", headers=bearer(key))
    assert svg.headers["Content-Type"] in doc["paths"]["/api/results/{id}"]["get"]["responses"]["200"]["content"]
    # error answers: the common error body, at a status the document lists
    check(doc, requests.get(u + "/api/results/nope", headers=bearer(key)), "/api/results/{id}", "get")
    check(doc, requests.get(u + "/api/admin/audit?limit=0", headers=bearer(key)), "/api/admin/audit", "get")
    check(doc, requests.get(u + "/api/admin/audit"), "/api/admin/audit", "get", 401)
    check(doc, requests.post(u + "/api/convert", headers=bearer(key), json={"file_id": "x", "mode": "curvy"}),
          "/api/convert", "post")


def test_openapi_etag(server):
    r = requests.get(server.url + "/openapi.json")
    r2 = requests.get(server.url + "/openapi.json", headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304


# ---- (c) the docs page ----

EXTERNAL = re.compile(r"""(?:src|href|url)\s*[=:(]\s*["']?\s*(?:https?:)?//""", re.I)


def test_docs_page_and_assets(server):
    r = requests.get(server.url + "/docs")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    page = r.text
    assert "swagger-ui" in page
    assert not EXTERNAL.search(page), "the page names another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    want = {"/docs/swagger-ui.css": "text/css; charset=utf-8",
            "/docs/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
            "/docs/swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
            "/docs/docs-init.js": "text/javascript; charset=utf-8",
            "/docs/favicon-32x32.png": "image/png"}
    assert set(want) <= set(assets), assets
    for a in assets:
        assert a.startswith("/docs/"), a
        ar = requests.get(server.url + a)
        assert ar.status_code == 200, a
        if a in want:
            assert ar.headers["Content-Type"] == want[a], a
        assert ar.headers["ETag"]
    init = requests.get(server.url + "/docs/docs-init.js").text
    assert "url: '/openapi.json'" in init and "validatorUrl: null" in init
    assert not EXTERNAL.search(init)
    assert requests.get(server.url + "/docs/swagger-ui.js.map").status_code == 404
    # literal routes win over the web page's GET /{file}
    assert requests.get(server.url + "/docs").text == page
    assert requests.get(server.url + "/openapi.json").json()["openapi"] == "3.1.0"


def test_docs_missing_package_answers_503_and_server_runs(start_server, tmp_path):
    s = start_server("--docs-dir", str(tmp_path / "nowhere"))
    r = requests.get(s.url + "/docs")
    assert r.status_code == 503
    assert r.headers["Content-Type"].startswith("text/html")
    assert "swagger-ui-dist" in r.text and "scripts/deps.sh build" in r.text and "--docs-dir" in r.text
    f = requests.get(s.url + "/docs/swagger-ui.css")
    assert f.status_code == 503 and f.json()["error"]["code"] == "unavailable"
    assert requests.get(s.url + "/openapi.json").status_code == 200
    assert requests.get(s.url + "/api/health").status_code == 200
    assert any("API docs page not served" in line.get("msg", "") for line in s.log_lines())
