# Issue A: the audit log. Administrative actions (tenants.create and
# .update, keys.create and .revoke, disconnect) are appended to
# DATA_DIR/audit.log as hash-chained JSON lines; `parley audit verify`
# accepts the untouched file and names the first bad record of every kind of
# tampering (edit, delete, reorder, insert, forged insert, torn line), each
# done on a copy of the file.
import asyncio
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from helpers_api import ADMIN_KEY, api, full_key, with_api
from parley_client import SLOW, connect, expect_disconnect, parley_bin, run, uniq

ACTIONS = ["tenants.create", "tenants.update", "keys.create", "keys.revoke", "disconnect",
           "disconnect"]


@pytest.fixture(scope="module")
def audit_file(module_factory, tmp_path_factory):
    srv = module_factory(tweak=with_api, name="audit")
    tid = "t" + uniq()
    api(srv, "tenants.create", {"id": tid, "jwt_secret": "s-" + uniq() * 2}, key=ADMIN_KEY)
    api(srv, "tenants.update", {"id": tid, "jwt_secrets": ["n-" + uniq() * 2]}, key=ADMIN_KEY)
    made = api(srv, "keys.create", {"tenant": "acme", "scopes": ["disconnect"]}, key=ADMIN_KEY)
    api(srv, "keys.revoke", {"id": made["id"]}, key=ADMIN_KEY)

    async def disconnects():
        cl = await connect(srv, "dora")
        await _to_thread(api, srv, "disconnect", {"user": "dora", "code": 4100})
        await expect_disconnect(cl, 4100)
        await _to_thread(api, srv, "disconnect", {"user": "nobody", "tenant": "globex"},
                         key=ADMIN_KEY)
    run(disconnects())
    path = os.path.join(srv.data_dir, "audit.log")
    # the server may still be writing: copy once it has every record
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == len(ACTIONS), lines
    copy = tmp_path_factory.mktemp("audit") / "audit.log"
    shutil.copy(path, copy)
    return {"path": str(copy), "lines": lines, "tenant": tid, "key_id": made["id"],
            "server": srv}


async def _to_thread(fn, *args, **kw):
    return await asyncio.to_thread(fn, *args, **kw)


def verify(path):
    res = subprocess.run([parley_bin(), "audit", "verify", str(path)], capture_output=True,
                         text=True, timeout=30 * SLOW)
    return res.returncode, res.stdout + res.stderr


def write(tmp_path, lines, name="t.log", newline=True):
    p = tmp_path / name
    p.write_text("\n".join(lines) + ("\n" if newline else ""))
    return p


def test_records_describe_the_actions(audit_file):
    recs = [json.loads(line) for line in audit_file["lines"]]
    assert [r["action"] for r in recs] == ACTIONS
    assert [r["seq"] for r in recs] == list(range(1, len(ACTIONS) + 1))
    keys = ["seq", "ts", "actor", "action", "tenant", "target", "correlation_id", "details",
            "prev", "hash"]
    for line, r in zip(audit_file["lines"], recs):
        assert list(r) == keys, line
        assert isinstance(r["ts"], int) and r["ts"] > 1_600_000_000_000
        assert isinstance(r["details"], dict)
    assert recs[0]["prev"] == "0" * 64
    for prev_line, r in zip(audit_file["lines"], recs[1:]):
        assert r["prev"] == hashlib.sha256(prev_line.encode()).hexdigest()
    for line, r in zip(audit_file["lines"], recs):
        head = line[:line.index(',"hash":')]
        assert r["hash"] == hashlib.sha256(head.encode()).hexdigest()
    tid = audit_file["tenant"]
    assert recs[0]["tenant"] == tid and recs[1]["tenant"] == tid
    assert recs[0]["actor"] == recs[1]["actor"] == recs[2]["actor"] == "admin"
    assert recs[2]["tenant"] == "acme"
    assert recs[3]["target"] == audit_file["key_id"]
    assert recs[4]["actor"].startswith("key:") and recs[4]["tenant"] == "acme"
    assert recs[4]["target"] == "dora"
    assert recs[5]["actor"] == "admin" and recs[5]["tenant"] == "globex"
    text = "\n".join(audit_file["lines"])
    assert ADMIN_KEY not in text and full_key("acme") not in text, "secrets in the audit log"


def test_key_create_names_the_new_key(audit_file):
    rec = json.loads(audit_file["lines"][2])
    assert rec["target"] == audit_file["key_id"], \
        f"keys.create should record the created key id as target: {rec}"


def test_untouched_file_verifies(audit_file):
    rc, out = verify(audit_file["path"])
    assert rc == 0 and f"ok ({len(ACTIONS)} records)" in out, out


def _bad(tmp_path, lines, expect_line, **kw):
    """Verification fails naming the record on line `expect_line` (1-based)."""
    rc, out = verify(write(tmp_path, lines, **kw))
    assert rc == 1, out
    assert f"(line {expect_line})" in out, out
    return out


def test_edited_field_is_detected(audit_file, tmp_path):
    for field, value in (("tenant", "evil"), ("actor", "key:x"), ("target", "nobody"),
                         ("ts", 1), ("details", {"secrets": 99})):
        lines = list(audit_file["lines"])
        rec = json.loads(lines[2])
        rec[field] = value
        lines[2] = json.dumps(rec, separators=(",", ":"))
        _bad(tmp_path, lines, 3)
    # one byte changed in the hash itself
    lines = list(audit_file["lines"])
    lines[1] = lines[1][:-3] + ("0" if lines[1][-3] != "0" else "1") + lines[1][-2:]
    _bad(tmp_path, lines, 2)


def test_deleted_record_is_detected(audit_file, tmp_path):
    lines = list(audit_file["lines"])
    del lines[2]
    _bad(tmp_path, lines, 3)
    lines = list(audit_file["lines"])
    del lines[0]
    _bad(tmp_path, lines, 1)


def test_reordered_records_are_detected(audit_file, tmp_path):
    lines = list(audit_file["lines"])
    lines[1], lines[2] = lines[2], lines[1]
    _bad(tmp_path, lines, 2)


def test_inserted_records_are_detected(audit_file, tmp_path):
    lines = list(audit_file["lines"])
    lines.insert(3, lines[2])  # a replayed record
    _bad(tmp_path, lines, 4)
    # a forged record with a correct prev, seq and hash still breaks the next link
    lines = list(audit_file["lines"])
    prev = hashlib.sha256(lines[2].encode()).hexdigest()
    head = ('{"seq":4,"ts":1700000000000,"actor":"admin","action":"keys.create",'
            '"tenant":"acme","target":"forged","correlation_id":"","details":{},'
            f'"prev":"{prev}"')
    forged = head + ',"hash":"' + hashlib.sha256(head.encode()).hexdigest() + '"}'
    lines.insert(3, forged)
    _bad(tmp_path, lines, 5)
    # garbage and a blank line
    lines = list(audit_file["lines"])
    lines.insert(1, "not json")
    _bad(tmp_path, lines, 2)


def test_torn_last_line_is_detected(audit_file, tmp_path):
    lines = list(audit_file["lines"])
    lines[-1] = lines[-1][: len(lines[-1]) // 2]
    rc, out = verify(write(tmp_path, lines, newline=False))
    assert rc == 1, out


def test_verify_of_missing_file_fails(tmp_path):
    rc, out = verify(tmp_path / "absent.log")
    assert rc != 0 and "absent.log" in out
