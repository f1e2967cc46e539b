"""Offline checks of the deployment files in deploy/ (issue 12): what can be validated without
Docker or a running systemd.

- deploy/nginx/modeld.conf passes `nginx -t` (Debian's nginx) with its upstreams rewritten to
  loopback addresses, and holds what the cluster needs (upstream of serve nodes, WebSocket
  upgrade on the job status route, body sizes matching modeld's limits, X-Request-ID);
- deploy/docker-compose.yml parses as YAML with the expected services, each modeld node on
  the shared data volume with the store, Redis and JWT secret it needs;
- deploy/Dockerfile is multi-stage on debian:bookworm-slim and runs as a non-root user with no
  build packages in its final stage;
- the systemd units pass `systemd-analyze verify` (ExecStart pointed at the built binary) with
  no warnings, and carry the hardening options.
"""
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

from conftest import _bin

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEPLOY = os.path.join(ROOT, "deploy")


def read(*parts):
    with open(os.path.join(DEPLOY, *parts)) as f:
        return f.read()


def nginx_bin():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.path.exists(p):
            return p
    return None


@pytest.mark.skipif(nginx_bin() is None, reason="nginx is not installed")
def test_nginx_config_is_valid():
    conf = read("nginx", "modeld.conf")
    servers = re.findall(r"^\s*server\s+(\S+):(\d+)", conf, re.M)
    assert [h for h, _ in servers] == ["serve1", "serve2"], servers
    local = conf
    for i, (h, p) in enumerate(servers):
        local = local.replace("server %s:%s" % (h, p), "server 127.0.0.1:%d" % (18081 + i))
    tmp = tempfile.mkdtemp(prefix="modeld-nginx-")
    try:
        path = os.path.join(tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(local)
        p = subprocess.run([nginx_bin(), "-t", "-c", path, "-p", tmp, "-g", "pid %s/nginx.pid;" % tmp],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "test is successful" in p.stderr, p.stderr
        # a broken copy fails, so the check above is a real one
        with open(path, "w") as f:
            f.write(local.replace("proxy_pass http://modeld_serve;", "proxy_pass http://modeld_serve", 1))
        p = subprocess.run([nginx_bin(), "-t", "-c", path, "-p", tmp, "-g", "pid %s/nginx.pid;" % tmp],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_nginx_config_has_what_the_cluster_needs():
    conf = read("nginx", "modeld.conf")
    assert "upstream modeld_serve" in conf
    ws = re.search(r"location ~ \^/api/v1/jobs/\[\^/\]\+/status\$ \{(.*?)\}", conf, re.S)
    assert ws, "no WebSocket location for the job status route"
    assert "proxy_set_header Upgrade $http_upgrade" in ws.group(1)
    assert "proxy_set_header Connection $connection_upgrade" in ws.group(1)
    # body sizes: modeld's body_limit (25M) and bulk_max_bytes (100M, + 1M of form overhead)
    assert re.search(r"^\s*client_max_body_size 25m;", conf, re.M)
    bulk = re.search(r"location ~ \^/api/\[a-z0-9_-\]\+/bulk\$ \{(.*?)\}", conf, re.S)
    assert bulk and "client_max_body_size 101m;" in bulk.group(1)
    assert "proxy_set_header X-Request-ID" in conf
    # nginx waits longer than modeld's request_timeout (30 s), so modeld's own 504 gets through
    assert int(re.search(r"^\s*proxy_read_timeout (\d+)s;", conf, re.M).group(1)) > 30


def test_compose_file_has_the_cluster():
    doc = yaml.safe_load(read("docker-compose.yml"))
    services = doc["services"]
    assert set(services) == {"postgres", "redis", "serve1", "serve2", "worker1", "worker2", "nginx"}
    for name in ("serve1", "serve2"):
        assert services[name]["command"][0] == "serve"
    for name in ("worker1", "worker2"):
        assert services[name]["command"][0] == "worker"
    for name in ("serve1", "serve2", "worker1", "worker2"):
        s = services[name]
        env = s["environment"]
        assert env["MODELD_STORE"].startswith("postgres://") and "@postgres:" in env["MODELD_STORE"]
        assert env["MODELD_REDIS"].startswith("redis://redis:")
        assert "MODELD_JWT_SECRET" in env
        assert "modeld-data:/var/lib/modeld" in s["volumes"]
        assert s["build"]["dockerfile"] == "deploy/Dockerfile"
        assert set(s["depends_on"]) == {"postgres", "redis"}
    nginx = services["nginx"]
    assert "./nginx/modeld.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == {"serve1", "serve2"}
    assert "modeld-data" in doc["volumes"]


def test_dockerfile_shape():
    text = read("Dockerfile")
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["debian:bookworm-slim", "debian:bookworm-slim"], froms
    final = text[text.rindex("\nFROM "):]
    assert re.search(r"^USER modeld", final, re.M)
    assert "COPY --from=build" in final
    installs = " ".join(re.findall(r"apt-get install[^&]*", final))
    assert "-dev" not in installs and "build-essential" not in installs and "cmake" not in installs
    assert "libhiredis0.14" in installs and "libpq5" in installs
    assert 'ENTRYPOINT ["/usr/local/bin/modeld"]' in final


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not available")
@pytest.mark.parametrize("unit,instance", [("modeld.service", "modeld.service"),
                                           ("modeld-worker@.service", "modeld-worker@1.service")])
def test_systemd_units_verify(unit, instance):
    text = read("systemd", unit)
    for opt in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/modeld", "PrivateTmp=yes",
                "CapabilityBoundingSet=", "SystemCallFilter=@system-service", "User=modeld"):
        assert opt in text, opt
    tmp = tempfile.mkdtemp(prefix="modeld-units-")
    try:
        path = os.path.join(tmp, instance)
        with open(path, "w") as f:
            f.write(text.replace("/usr/local/bin/modeld", _bin()))
        p = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", path], capture_output=True, text=True,
                           timeout=120, cwd=tmp)
        out = (p.stdout + p.stderr).strip()
        assert p.returncode == 0, out
        assert instance not in out, out  # an unknown key is only a warning: none allowed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
