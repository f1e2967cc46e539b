"""`modeld keys create|list|revoke` run as a user would: the key is printed once and alone on
stdout, listings never show it, revocation is recorded, and every usage error exits 2 with a
message naming the problem (before any data dir is created)."""
import os
import re
import stat
import subprocess
import tempfile

import pytest

from conftest import _bin

KEY_RE = re.compile(r"^mdk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


def keys(*args):
    p = subprocess.run([_bin(), "keys"] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory(prefix="modeld-keys-") as d:
        yield os.path.join(d, "var")


def test_create_list_revoke(data_dir):
    rc, out, err = keys("create", "--role", "write", "--name", "ci bot", "--data-dir", data_dir)
    assert rc == 0, err
    key = out.strip()
    m = KEY_RE.match(key)
    assert m, out
    key_id = m.group(1)
    assert "not shown again" in err
    db = os.path.join(data_dir, "modeld.db")
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600

    rc, out, err = keys("list", "--data-dir=" + data_dir)
    assert rc == 0, err
    assert key not in out and key[17:] not in out     # the secret is never shown again
    row = [l for l in out.splitlines() if l.startswith(key_id)]
    assert len(row) == 1 and "write" in row[0] and "active" in row[0] and "ci bot" in row[0]

    rc, _, err = keys("revoke", key_id, "--data-dir", data_dir)
    assert rc == 0, err
    rc, out, _ = keys("list", "--data-dir", data_dir)
    assert "revoked" in [l for l in out.splitlines() if l.startswith(key_id)][0]
    rc, _, err = keys("revoke", key_id, "--data-dir", data_dir)   # idempotent
    assert rc == 0, err


def test_unknown_id_is_a_failure_not_a_usage_error(data_dir):
    keys("list", "--data-dir", data_dir)
    rc, _, err = keys("revoke", "000000000000", "--data-dir", data_dir)
    assert rc == 1 and "no such key" in err


@pytest.mark.parametrize("args, words", [
    ([], "usage"),
    (["frob"], "unknown sub-command"),
    (["create", "--name", "x"], "--role and --name"),
    (["create", "--role", "root", "--name", "x"], "read, write or admin"),
    (["create", "--role", "read", "--name", ""], "--name"),
    (["create", "--role", "read"], "--role and --name"),
    (["create", "--role"], "needs a value"),
    (["list", "--bogus"], "unknown option"),
    (["list", "extra"], "unexpected argument"),
    (["revoke"], "key ID"),
    (["revoke", "a", "b"], "unexpected argument"),
])
def test_usage_errors_exit_2(data_dir, args, words):
    rc, out, err = keys(*(args + ["--data-dir", data_dir] if args else args))
    assert rc == 2, (out, err)
    assert words in err
    assert out == ""
    assert not os.path.exists(data_dir)    # a typo never creates a data dir
