"""kill -9 of the server and a restart on the same data dir (issue 11 §4, issue 10's "nothing lost
on a crash") for the two things the keeper thread does on its own: schedules and callbacks.

- A schedule whose fire time passes while the server is dead fires exactly once after the
  restart (one predict-bulk job naming it), and its next fire moves to the next day.
- A callback still pending when the server is killed (its receiver answered 500, so it waits for
  its retry) is delivered after the restart, signed, and exactly once: the receiver sees one 2xx
  answered request for the job, also after a later job's callback went through the same loop.

Waits are for conditions with generous bounds (the schedule test waits for a minute boundary of
the real clock, the server has no injected clock), never timing thresholds."""
import calendar
import json
import signal
import time

import requests

from test_schedules_callbacks import ENV, Receiver, auth, check_signature, submit, wait_callback_state


def iso_s(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def bulk_jobs(s):
    r = requests.get(s.url + "/api/admin/jobs", params={"kind": "predict-bulk", "limit": 100},
                     headers=auth(s.admin_key))
    assert r.status_code == 200, r.text
    return r.json()["jobs"]


def test_schedule_due_while_killed_fires_once_after_restart(start_server):
    args = ("--workers", "1")
    s = start_server(*args)
    fire = (int(time.time()) + 10) // 60 * 60 + 60  # a minute boundary 10..70 s away
    tm = time.gmtime(fire)
    body = {"model": "churn", "cron": "%d %d * * *" % (tm.tm_min, tm.tm_hour), "input": "u_gone"}
    r = requests.post(s.url + "/api/admin/schedule", json=body, headers=auth(s.admin_key))
    assert r.status_code == 201, r.text
    sc = r.json()
    assert iso_s(sc["next_run"]) == fire, sc  # daily at that minute, UTC
    s.stop(signal.SIGKILL)
    while time.time() < fire + 2:  # the fire time passes while nothing runs
        time.sleep(0.5)
    s2 = start_server(*args, data_dir=s.data_dir, expect_key=False)
    s2.admin_key = s.admin_key
    end = time.time() + 120
    jobs = []
    while time.time() < end and not jobs:
        jobs = bulk_jobs(s2)
        time.sleep(0.1)
    assert len(jobs) == 1, jobs
    lst = requests.get(s2.url + "/api/admin/schedules", headers=auth(s2.admin_key)).json()
    row = next(x for x in lst["schedules"] if x["schedule_id"] == sc["schedule_id"])
    assert row["last_job_id"] == jobs[0]["job_id"], row
    assert iso_s(row["next_run"]) == fire + 86400, row  # the missed fire ran; the next is tomorrow
    # the job ran (its input is gone, so it fails naming it) and nothing fired a second time
    end = time.time() + 120
    while time.time() < end:
        j = requests.get(s2.url + "/api/v1/jobs/" + jobs[0]["job_id"], headers=auth(s2.admin_key)).json()
        if j["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            break
        time.sleep(0.1)
    assert j["status"] == "FAILURE" and "u_gone" in j["error_message"], j
    assert len(bulk_jobs(s2)) == 1


def test_callback_pending_at_kill9_delivered_once_after_restart(start_server):
    args = ("--test-routes", "--workers", "1")
    s = start_server(*args, env=ENV)
    rec = Receiver([500])  # until the restart: the callback stays pending, waiting for a retry
    try:
        r = submit(s, steps=1, step_ms=0, callback_url=rec.url())
        assert r.status_code == 202, r.text
        jid = r.json()["job_id"]
        rec.wait(1)
        s.stop(signal.SIGKILL)
        before = len(rec.requests)
        rec.statuses = [500] * before + [200]  # from now on the receiver accepts
        s2 = start_server(*args, data_dir=s.data_dir, expect_key=False, env=ENV)
        s2.admin_key = s.admin_key
        j = wait_callback_state(s2, jid, "delivered", timeout=120)
        assert j["status"] == "SUCCESS"
        # another job's callback through the same loop: had the first been due again, it would
        # have gone first (due callbacks are taken oldest try first)
        jid2 = submit(s2, steps=1, step_ms=0, callback_url=rec.url()).json()["job_id"]
        wait_callback_state(s2, jid2, "delivered", timeout=120)
        mine = [(h, b) for h, b in rec.requests if h["X-Modeld-Job-Id"] == jid]
        accepted = [(h, b) for i, (h, b) in enumerate(rec.requests)
                    if h["X-Modeld-Job-Id"] == jid and i >= before]
        assert len(accepted) == 1, [h["X-Modeld-Job-Id"] for h, _ in rec.requests]
        for h, b in mine:
            check_signature(h, b)
        doc = json.loads(accepted[0][1])
        assert doc["job_id"] == jid and doc["state"] == "SUCCESS"
    finally:
        rec.close()
