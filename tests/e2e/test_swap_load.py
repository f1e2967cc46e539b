"""Swap under load: 32 connections call OIP infer continuously while 100 activations, canary
changes, promotions and rollbacks happen. Every request must succeed, every answer must have
been computed by the version it names (y - x == version for the oip-add models), and that
version must have been serving (ACTIVE, or CANARY with a share > 0) at some moment while the
request was in flight, as the registry itself reported after each change."""
import random
import threading
import time

import requests

from oip_util import MODEL, bearer, infer_body, make_key, models_dir

CONNECTIONS = 32
CHANGES = 100
VERSIONS = ["1", "2", "3"]


def serving_set(model):
    s = {model["active_version"]} if model.get("active_version") else set()
    if model.get("canary_version") and model.get("canary_percent", 0) > 0:
        s.add(model["canary_version"])
    return s


def caller(url, key, stop, answers, failures, seed):
    rows = [[float(seed), 1.0, 2.0, 3.0]]
    body = infer_body(rows)
    with requests.Session() as sess:
        sess.headers.update(bearer(key))
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                r = sess.post(url, json=body, timeout=60)
            except requests.RequestException as e:  # a failed request, whatever the cause
                failures.append(("exception", repr(e)))
                continue
            t1 = time.monotonic()
            if r.status_code != 200:
                failures.append((r.status_code, r.text[:300]))
                continue
            j = r.json()
            y = j["outputs"][0]["data"][0]
            answers.append((t0, t1, j["model_version"], y - rows[0][0]))


def change(srv, rng, model):
    """One random management change; returns the response (200 or a legitimate 409)."""
    active, canary = model["active_version"], model.get("canary_version")
    base = srv.url + "/api/models/" + MODEL
    others = [v for v in VERSIONS if v != active]
    op = rng.choice(["activate", "canary", "canary", "end_canary", "promote", "rollback"])
    if op == "activate":
        return requests.post(base + "/versions/%s/activate" % rng.choice(others), headers=bearer(srv.admin_key))
    if op == "canary":
        return requests.post(base + "/versions/%s/canary" % rng.choice(others), json={"percent": rng.choice([10, 50, 90, 100])},
                             headers=bearer(srv.admin_key))
    if op == "end_canary" and canary:
        return requests.post(base + "/versions/%s/canary" % canary, json={"percent": 0}, headers=bearer(srv.admin_key))
    if op == "promote" and canary:
        return requests.post(base + "/promote", headers=bearer(srv.admin_key))
    return requests.post(base + "/rollback", headers=bearer(srv.admin_key))


def allowed_versions(states, t0, t1):
    """Union of the serving sets that may have been live at some moment of [t0, t1]: state i is
    live from the start of the change that made it until the end of the change that replaced it."""
    out = set()
    for i, (start, _end, s) in enumerate(states):
        live_until = states[i + 1][1] if i + 1 < len(states) else float("inf")
        if start <= t1 and live_until >= t0:
            out |= s
    return out


def test_swap_under_load(start_server):
    s = start_server("--models-dir", models_dir(), "--rate-read", "1000000:1000000",
                     "--rate-admin", "1000000:1000000", "--access-log=false")
    key = make_key(s, "read")
    url = s.url + "/v2/models/%s/infer" % MODEL
    first = requests.get(s.url + "/api/models/" + MODEL, headers=bearer(key)).json()["model"]
    states = [(float("-inf"), float("-inf"), serving_set(first))]
    stop = threading.Event()
    answers, failures = [], []
    threads = [threading.Thread(target=caller, args=(url, key, stop, answers, failures, i), daemon=True)
               for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    rng = random.Random(8)
    model, done, refused = first, 0, 0
    try:
        while done < CHANGES:
            t0 = time.monotonic()
            r = change(s, rng, model)
            t1 = time.monotonic()
            if r.status_code == 409:  # e.g. rollback with no standby left: legitimate, not counted
                refused += 1
                assert refused < 10 * CHANGES, r.text
                continue
            assert r.status_code == 200, r.text
            model = r.json()["model"]
            states.append((t0, t1, serving_set(model)))
            done += 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not failures, failures[:5]
    assert len(answers) >= CONNECTIONS, len(answers)
    used = set()
    for t0, t1, version, delta in answers:
        assert abs(delta - int(version)) < 1e-4, (version, delta)  # computed by the version it names
        ok = allowed_versions(states, t0, t1)
        assert version in ok, (version, ok)
        used.add(version)
    assert len(used) >= 2, used  # the swaps were seen by the callers
    print("swap under load: %d answers, %d changes (%d refused), versions %s" % (len(answers), done, refused, sorted(used)))
