"""Issue 13: the Kubernetes manifests in deploy/k8s/, checked offline.

There is no cluster here, and `kubectl apply --dry-run=client` needs one (it downloads the
API's discovery and OpenAPI documents), so the check is made of what works offline and can fail:
- `kubectl kustomize deploy/k8s` builds the whole set (every file parses, the kustomization
  names them all) and `kubectl annotate --local` maps every object to a kind kubectl knows;
- a schema of the fields we rely on, written here: apiVersions, required fields and types,
  Deployment selectors matching their pod labels, Service / Ingress / HPA / PDB references
  resolving to objects of the set, named ports existing, requests <= limits;
- the manifests against the binary: every ConfigMap / Secret key is a setting `modeld serve
  --help` documents, the probe paths are public GET routes of `modeld routes`, a serve node run
  with the ConfigMap's settings and the Deployment's args answers both probes with 200 and
  exports the metrics the HPAs scale on, and a worker run likewise starts, answers its liveness
  probe and serves /metrics on the annotated port, and stops cleanly."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests
import yaml

from conftest import Server, _bin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "k8s")
KUBECTL = shutil.which("kubectl")
# No kubeconfig: nothing here may reach a real cluster (or a local server on :8080).
KENV = dict(os.environ, KUBECONFIG=os.devnull)

API = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "PersistentVolumeClaim": "v1",
       "Service": "v1", "Deployment": "apps/v1", "Ingress": "networking.k8s.io/v1",
       "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1"}


def docs():
    out = []
    for f in sorted(os.listdir(K8S)):
        if f.endswith(".yaml") and f != "kustomization.yaml":
            for d in yaml.safe_load_all(open(os.path.join(K8S, f))):
                if d:
                    out.append((f, d))
    return out


def by_kind(kind):
    return {d["metadata"]["name"]: d for _, d in docs() if d["kind"] == kind}


def get(d, path):
    for p in path.split("."):
        assert isinstance(d, dict) and p in d, "missing " + path
        d = d[p]
    return d


@pytest.mark.skipif(not KUBECTL, reason="kubectl is not installed")
def test_kubectl_builds_and_recognises_every_object():
    p = subprocess.run([KUBECTL, "kustomize", K8S], capture_output=True, text=True, timeout=60, env=KENV)
    assert p.returncode == 0, p.stderr
    built = [d for d in yaml.safe_load_all(p.stdout) if d]
    assert len(built) == len(docs())
    assert all(d["metadata"].get("namespace") == "modeld" for d in built if d["kind"] != "Namespace")
    for f in sorted(os.listdir(K8S)):
        if f.endswith(".yaml") and f != "kustomization.yaml":
            p = subprocess.run([KUBECTL, "annotate", "--local", "-o", "name", "-f", os.path.join(K8S, f),
                                "checked=yes"], capture_output=True, text=True, timeout=60, env=KENV)
            assert p.returncode == 0, (f, p.stderr)
    listed = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))["resources"]
    assert sorted(listed) == sorted({f for f, _ in docs()})


def test_api_versions_and_names():
    kinds = set()
    for f, d in docs():
        assert d["kind"] in API, (f, d["kind"])
        assert d["apiVersion"] == API[d["kind"]], (f, d["kind"], d["apiVersion"])
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), f
        kinds.add(d["kind"])
    assert kinds == set(API)


def quantity(q):
    """A Kubernetes quantity as a float (cpu cores or bytes)."""
    m = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?", str(q))
    assert m, q
    mult = {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    return float(m.group(1)) * mult[m.group(2)]


def test_deployments():
    deps = by_kind("Deployment")
    assert set(deps) == {"modeld-serve", "modeld-worker"}
    cms, secrets = by_kind("ConfigMap"), by_kind("Secret")
    pvcs = by_kind("PersistentVolumeClaim")
    for name, d in deps.items():
        sel = get(d, "spec.selector.matchLabels")
        labels = get(d, "spec.template.metadata.labels")
        assert sel and all(labels.get(k) == v for k, v in sel.items()), name
        pod = get(d, "spec.template.spec")
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            assert c["image"] and c["args"][0] in ("serve", "worker"), name
            req, lim = get(c, "resources.requests"), get(c, "resources.limits")
            for r in ("cpu", "memory"):
                assert quantity(req[r]) <= quantity(lim[r]), (name, r)
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    assert ref["configMapRef"]["name"] in cms, name
                if "secretRef" in ref:
                    assert ref["secretRef"]["name"] in secrets, name
            for m in c.get("volumeMounts", []):
                assert m["name"] in vols, (name, m["name"])
        for v in vols.values():
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in pvcs, name
    assert get(deps["modeld-serve"], "spec.template.spec.containers")[0].get("livenessProbe")
    assert get(deps["modeld-serve"], "spec.template.spec.containers")[0].get("readinessProbe")


def pod_labels(deployment):
    return get(deployment, "spec.template.metadata.labels")


def test_service_ingress_hpa_pdb_resolve():
    deps, svcs = by_kind("Deployment"), by_kind("Service")
    serve = deps["modeld-serve"]
    c = get(serve, "spec.template.spec.containers")[0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ports, probe
    ann = get(serve, "spec.template.metadata.annotations")
    assert int(ann["prometheus.io/port"]) in ports.values()
    svc = svcs["modeld"]
    assert all(pod_labels(serve).get(k) == v for k, v in svc["spec"]["selector"].items())
    assert all(p["targetPort"] in ports for p in svc["spec"]["ports"])
    svc_ports = {p["name"] for p in svc["spec"]["ports"]} | {p["port"] for p in svc["spec"]["ports"]}
    ing = by_kind("Ingress")["modeld"]
    for rule in ing["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            assert p["pathType"] in ("Prefix", "Exact", "ImplementationSpecific")
            b = p["backend"]["service"]
            assert b["name"] in svcs and (b["port"].get("name") or b["port"].get("number")) in svc_ports
    a = ing["metadata"]["annotations"]
    assert int(a["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 60  # > the 20 s WebSocket ping
    for h in by_kind("HorizontalPodAutoscaler").values():
        t = h["spec"]["scaleTargetRef"]
        assert t["kind"] == "Deployment" and t["name"] in deps
        assert 1 <= h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]
        types = [m["type"] for m in h["spec"]["metrics"]]
        assert "Resource" in types and ({"Pods", "External"} & set(types)), h["metadata"]["name"]
        for m in h["spec"]["metrics"]:
            body = m[m["type"].lower()]
            assert body["target"]["type"] in ("Utilization", "AverageValue", "Value")
    for p in by_kind("PodDisruptionBudget").values():
        sel = p["spec"]["selector"]["matchLabels"]
        assert ("minAvailable" in p["spec"]) != ("maxUnavailable" in p["spec"])
        assert any(all(pod_labels(d).get(k) == v for k, v in sel.items()) for d in deps.values())


def serve_settings():
    out = subprocess.run([_bin(), "serve", "--help"], capture_output=True, text=True, timeout=60).stdout
    return set(re.findall(r"\b(MODELD_[A-Z0-9_]+)\b", out))


def test_config_keys_are_real_settings():
    known = serve_settings()
    assert "MODELD_JWT_SECRET" in known and "MODELD_STORE" in known
    for kind in ("ConfigMap", "Secret"):
        for name, d in by_kind(kind).items():
            keys = set(d.get("data", {})) | set(d.get("stringData", {}))
            assert keys and keys <= known, (name, sorted(keys - known))
    assert len(by_kind("Secret")["modeld-secrets"]["stringData"]["MODELD_JWT_SECRET"]) >= 32


def test_probe_paths_are_public_get_routes():
    routes = subprocess.run([_bin(), "routes"], capture_output=True, text=True, timeout=60).stdout
    public = {l.split("\t")[1] for l in routes.splitlines() if l.startswith("GET\t") and "\tpublic\t" in l}
    c = get(by_kind("Deployment")["modeld-serve"], "spec.template.spec.containers")[0]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in public, probe


def manifest_env():
    """The ConfigMap's settings, less the ones that name the cluster's services."""
    env = dict(by_kind("ConfigMap")["modeld-config"]["data"])
    for k in ("MODELD_REDIS", "MODELD_DATA_DIR", "MODELD_HOST"):
        env.pop(k)
    return env


def test_serve_node_as_deployed_answers_probes_and_exports_hpa_metrics():
    serve = by_kind("Deployment")["modeld-serve"]
    c = get(serve, "spec.template.spec.containers")[0]
    s = Server(c["args"][1:], env=manifest_env())
    try:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            r = requests.get(s.url + c[probe]["httpGet"]["path"], timeout=c[probe].get("timeoutSeconds", 3) + 30)
            assert r.status_code == 200, (probe, r.text)
        text = requests.get(s.url + "/metrics", timeout=30).text
        for h in by_kind("HorizontalPodAutoscaler").values():
            for m in h["spec"]["metrics"]:
                if m["type"] in ("Pods", "External"):
                    metric = m[m["type"].lower()]["metric"]
                    want = metric["name"]
                    for k, v in metric.get("selector", {}).get("matchLabels", {}).items():
                        want += '{%s="%s"}' % (k, v)
                    assert re.search(r"^%s " % re.escape(want), text, re.M), want
    finally:
        rc = s.stop()
        s.check_sanitizers()
        s.cleanup()
    assert rc == 0


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_worker_metrics_port_is_annotated_and_probed():
    w = by_kind("Deployment")["modeld-worker"]
    c = get(w, "spec.template.spec.containers")[0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    ann = get(w, "spec.template.metadata.annotations")
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == ports["metrics"]
    assert int(c["args"][c["args"].index("--metrics-port") + 1]) == ports["metrics"]
    assert c["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_worker_as_deployed_starts_serves_metrics_and_stops():
    w = by_kind("Deployment")["modeld-worker"]
    c = get(w, "spec.template.spec.containers")[0]
    # The Deployment's args, on a port free here (9464 may be taken on a shared machine).
    args = list(c["args"])
    port = free_port()
    args[args.index("--metrics-port") + 1] = str(port)
    tmp = tempfile.mkdtemp(prefix="modeld-k8s-")
    try:
        env = dict(os.environ, **manifest_env(), MODELD_DATA_DIR=tmp,
                   MODELD_JWT_SECRET="k8s-test-secret-0123456789abcdef0123456789")
        # The data dir's store must exist: a serve run creates it, as the serve pods do.
        s = Server([], data_dir=tmp)
        assert s.stop() == 0
        s.cleanup()
        log = open(os.path.join(tmp, "worker.log"), "wb")
        p = subprocess.Popen([_bin()] + args, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = "http://127.0.0.1:%d" % port
        end = time.time() + 60
        while True:
            assert p.poll() is None, open(os.path.join(tmp, "worker.log")).read()
            try:
                r = requests.get(url + c["livenessProbe"]["httpGet"]["path"], timeout=5)
                break
            except requests.ConnectionError:
                assert time.time() < end, open(os.path.join(tmp, "worker.log")).read()
                time.sleep(0.1)
        assert r.status_code == 200
        text = requests.get(url + get(w, "spec.template.metadata.annotations")["prometheus.io/path"],
                            timeout=30).text
        assert re.search(r'^modeld_jobs_claimed_total\{kind="enhance"\} 0$', text, re.M), text[:2000]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]) == 0
        text = open(os.path.join(tmp, "worker.log"), errors="replace").read()
        assert "ERROR: AddressSanitizer" not in text and "runtime error:" not in text, text[-3000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
