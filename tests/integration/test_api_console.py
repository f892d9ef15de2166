# The operator views of the HTTP API. `connections` lists a user's live
# connections (WebSocket and SSE, with their channels) gathered from every
# worker, only inside the key's tenant; a listed client id is what
# `disconnect` closes. `audit.list` (admin key only) pages the audit log
# newest first and checks its chain on each call, so an edit of the file
# while the server runs shows as `verified.ok: false` naming the record.
import asyncio
import hashlib
import json
import os
import threading
import time
import urllib.parse

import pytest

from helpers_api import ADMIN_KEY, api, api_error, full_key, wait_until, with_api
from parley_client import SLOW, SSEStream, connect, expect_disconnect, make_token, run, uniq


def _two_workers(cfg):
    with_api(cfg)
    cfg["workers"] = 2  # connections of one user land on both workers
    return cfg


@pytest.fixture(scope="module")
def csrv(module_factory):
    return module_factory(tweak=_two_workers, name="console")


async def _call(*args, **kw):
    return await asyncio.to_thread(api, *args, **kw)


def _sse(srv, user, tenant, *channels):
    q = urllib.parse.urlencode([("token", make_token(user, tenant))] +
                               [("channel", c) for c in channels])
    return SSEStream(srv, q)


async def _user_with_ws_and_sse(srv, user, tenant="acme"):
    """One WebSocket connection subscribed to two channels and one SSE
    stream of a third; returns (client, sse, channels of each)."""
    ws_chans = ["chat:" + uniq(), "room:" + uniq()]
    sse_chan = "chat:" + uniq()
    cl = await connect(srv, user, tenant)
    for ch in ws_chans:
        await cl.subscribe(ch)
    sse = await asyncio.to_thread(_sse, srv, user, tenant, sse_chan)
    assert sse.status == 200, sse.body()
    return cl, sse, ws_chans, [sse_chan]


def test_connections_lists_a_users_ws_and_sse_connections(csrv):
    user = uniq("u")

    async def body():
        t0 = int(time.time() * 1000)
        cl, sse, ws_chans, sse_chans = await _user_with_ws_and_sse(csrv, user)
        t1 = int(time.time() * 1000)
        got = (await _call(csrv, "connections", {"user": user}))["connections"]
        by_transport = {c["transport"]: c for c in got}
        assert len(got) == 2 and set(by_transport) == {"ws", "sse"}, got
        ws, ev = by_transport["ws"], by_transport["sse"]
        assert ws["client"] == cl.connect_result["client"]
        assert ws["channels"] == ws_chans and ev["channels"] == sse_chans, got
        for c in got:
            assert set(c) == {"client", "user", "transport", "remote", "connected_at",
                              "channels"}, c
            assert c["user"] == user
            assert t0 - 5 <= c["connected_at"] <= t1 + 5, (t0, c, t1)
        # remote is the peer's address and port, as the client sees its socket
        assert ws["remote"] == "127.0.0.1:%d" % cl.ws.local_address[1], ws
        assert ev["remote"] == "127.0.0.1:%d" % sse.sock.getsockname()[1], ev
        # oldest first: the WebSocket connected before the stream opened
        assert [c["transport"] for c in got] == ["ws", "sse"]
        one = (await _call(csrv, "connections", {"client": ev["client"]}))["connections"]
        assert one == [ev]
        assert len((await _call(csrv, "connections", {"user": user, "limit": 1}))
                   ["connections"]) == 1
        assert (await _call(csrv, "connections", {"user": uniq("nobody")})) == \
            {"connections": []}
        sse.close()
        await cl.close()
    run(body())


def test_a_tenant_key_sees_only_its_tenants_connections(csrv):
    user = uniq("u")  # the same user name in both tenants

    async def body():
        acme, sse, _, _ = await _user_with_ws_and_sse(csrv, user, "acme")
        globex = await connect(csrv, user, "globex")
        mine = (await _call(csrv, "connections", {"user": user}))["connections"]
        theirs = (await _call(csrv, "connections", {"user": user}, tenant="globex"))["connections"]
        assert len(mine) == 2 and globex.connect_result["client"] not in \
            [c["client"] for c in mine], mine
        assert [c["client"] for c in theirs] == [globex.connect_result["client"]], theirs
        # a client id of another tenant is not found either
        for c in mine:
            assert (await _call(csrv, "connections", {"client": c["client"]},
                                tenant="globex")) == {"connections": []}
        # the admin key names the tenant
        admin = await _call(csrv, "connections", {"user": user, "tenant": "globex"},
                            key=ADMIN_KEY)
        assert admin["connections"] == theirs
        sse.close()
        await acme.close()
        await globex.close()
    run(body())


def test_connections_bad_input(csrv):
    for body, code, status, word in [({}, 107, 400, "user"),
                                     ({"user": 5}, 107, 400, "user"),
                                     ({"user": ""}, 107, 400, "user"),
                                     ({"client": 7}, 107, 400, "client"),
                                     ({"user": "a", "limit": "x"}, 107, 400, "limit"),
                                     ({"user": "a", "limit": 0}, 106, 413, "limit"),
                                     ({"user": "a", "limit": 1001}, 106, 413, "limit")]:
        st, err = api_error(csrv, "connections", body)
        assert (st, err["code"]) == (status, code), (body, st, err)
        assert word in err["message"], (body, err)


def test_disconnect_of_a_listed_client_closes_only_that_one(csrv):
    user = uniq("u")

    async def body():
        cl, sse, _, sse_chans = await _user_with_ws_and_sse(csrv, user)
        other = await connect(csrv, user)
        listed = (await _call(csrv, "connections", {"user": user}))["connections"]
        assert len(listed) == 3, listed
        target = cl.connect_result["client"]
        assert target in [c["client"] for c in listed]
        await _call(csrv, "disconnect", {"client": target, "code": 4100})
        await expect_disconnect(cl, 4100)
        left = await asyncio.to_thread(
            wait_until, lambda: (lambda r: r if len(r) == 2 else None)(
                api(csrv, "connections", {"user": user})["connections"]),
            10 * SLOW, "the listing without the closed connection")
        assert sorted(c["client"] for c in left) == \
            sorted(c["client"] for c in listed if c["client"] != target)
        # the others still work: the stream gets a pub, the socket answers
        await _call(csrv, "publish", {"channel": sse_chans[0], "data": {"n": 1}})
        ev = await asyncio.to_thread(sse.event)
        assert ev["data"]["data"] == {"n": 1}, ev
        await other.subscribe("chat:" + uniq())
        sse.close()
        await other.close()
    run(body())


def test_disconnect_of_a_user_closes_their_sse_streams_too(csrv):
    """Every connection of the user, WebSocket and SSE; nobody else's."""
    user = uniq("u")

    async def body():
        cl, sse, _, _ = await _user_with_ws_and_sse(csrv, user)
        other = await connect(csrv, uniq("keep"))
        await _call(csrv, "disconnect", {"user": user, "code": 4100})
        await expect_disconnect(cl, 4100)

        def drained():
            try:
                while True:
                    sse._more()
            except (EOFError, OSError):
                return sse.text
        text = await asyncio.to_thread(drained)
        assert "event: disconnect" in text and '"code":4100' in text, text[-300:]
        assert await asyncio.to_thread(
            lambda: api(csrv, "connections", {"user": user})["connections"]) == []
        await other.subscribe("chat:" + uniq())  # still served
        await other.close()
    run(body())


# ---- audit.list ---------------------------------------------------------------


@pytest.fixture
def asrv(server_factory):
    """A server whose audit log holds five records: three tenants.create,
    keys.create, keys.revoke."""
    srv = server_factory(tweak=with_api, name="auditlist")
    for _ in range(3):
        api(srv, "tenants.create", {"id": "t" + uniq(), "jwt_secret": "s-" + uniq() * 2},
            key=ADMIN_KEY)
    made = api(srv, "keys.create", {"tenant": "acme", "scopes": ["history"]}, key=ADMIN_KEY)
    api(srv, "keys.revoke", {"id": made["id"]}, key=ADMIN_KEY)
    return srv


def _lines(srv):
    with open(os.path.join(srv.data_dir, "audit.log")) as f:
        return f.read().splitlines()


def test_audit_list_newest_first_with_paging(asrv):
    stored = [json.loads(line) for line in _lines(asrv)]
    assert [r["seq"] for r in stored] == [1, 2, 3, 4, 5]
    page = api(asrv, "audit.list", {}, key=ADMIN_KEY)
    assert page["entries"] == stored[::-1]
    assert page["cursor"] == 0
    assert page["verified"] == {"ok": True, "entries": 5}
    seen, before = [], 0
    for want in ([5, 4], [3, 2], [1]):
        body = {"limit": 2, **({"before": before} if before else {})}
        page = api(asrv, "audit.list", body, key=ADMIN_KEY)
        assert [e["seq"] for e in page["entries"]] == want, page
        seen += page["entries"]
        before = page["cursor"]
        assert before == (want[-1] if want[-1] > 1 else 0), page
    assert seen == stored[::-1]
    # the listing itself is not audited; a change made now is the newest record
    api(asrv, "disconnect", {"user": "nobody"})
    page = api(asrv, "audit.list", {"limit": 1}, key=ADMIN_KEY)
    assert [(e["seq"], e["action"]) for e in page["entries"]] == [(6, "disconnect")]
    assert page["cursor"] == 6 and page["verified"] == {"ok": True, "entries": 6}


def test_audit_list_sees_a_record_edited_while_the_server_runs(asrv):
    lines = _lines(asrv)
    path = os.path.join(asrv.data_dir, "audit.log")
    # change one byte of record 3 (its tenant), keeping the line's length
    rec = json.loads(lines[2])
    at = sum(len(line) + 1 for line in lines[:2]) + lines[2].index(rec["target"])
    with open(path, "r+b") as f:
        f.seek(at)
        old = f.read(1)
        f.seek(at)
        f.write(b"X" if old != b"X" else b"Y")
    page = api(asrv, "audit.list", {}, key=ADMIN_KEY)
    v = page["verified"]
    assert v["ok"] is False and v["entries"] == 2, v
    assert "record 3 (line 3)" in v["error"] and "hash mismatch" in v["error"], v
    # the entries show the file as it is now
    assert [e["seq"] for e in page["entries"]] == [5, 4, 3, 2, 1]
    assert page["entries"][2] != rec and page["entries"][2]["hash"] == rec["hash"]
    # a line that is not JSON any more shows as corrupt, and still fails the check
    with open(path, "r+b") as f:
        f.seek(sum(len(line) + 1 for line in lines[:3]))
        f.write(b"#")
    page = api(asrv, "audit.list", {}, key=ADMIN_KEY)
    assert page["entries"][1] == {"corrupt": "#" + lines[3][1:]}, page["entries"][1]
    assert page["verified"]["ok"] is False and "record 3 (line 3)" in page["verified"]["error"]


def test_audit_list_needs_the_admin_key(asrv):
    for key in [full_key("acme"), full_key("globex")]:
        st, err = api_error(asrv, "audit.list", {}, key=key)
        assert (st, err["code"]) == (403, 103), err
    for body, status, code in [({"limit": 0}, 413, 106), ({"limit": 1001}, 413, 106),
                               ({"before": "x"}, 400, 107), ({"limit": "x"}, 400, 107)]:
        st, err = api_error(asrv, "audit.list", body, key=ADMIN_KEY)
        assert (st, err["code"]) == (status, code), (body, err)


def _chain(n, path):
    """Writes a valid audit log of n records to path (the format of
    src/obs/audit.h)."""
    prev = "0" * 64
    with open(path, "w") as f:
        for i in range(1, n + 1):
            head = ('{"seq":%d,"ts":%d,"actor":"admin","action":"keys.create","tenant":"acme",'
                    '"target":"k%d","correlation_id":"","details":{},"prev":"%s"'
                    % (i, 1795361153919 + i, i, prev))
            line = head + ',"hash":"%s"}' % hashlib.sha256(head.encode()).hexdigest()
            f.write(line + "\n")
            prev = hashlib.sha256(line.encode()).hexdigest()


def test_audit_list_of_a_large_log_does_not_stall_the_worker(server_factory):
    def one_worker(cfg):
        with_api(cfg)
        cfg["workers"] = 1  # the API calls below share the one worker
        return cfg
    srv = server_factory(tweak=one_worker, name="biglog", start=False)
    n = 100000  # about 0.7 s to verify (more under sanitizers)
    _chain(n, os.path.join(srv.data_dir, "audit.log"))
    srv.start(timeout=60 * SLOW)
    done = {}

    def listing():
        done["page"] = api(srv, "audit.list", {"limit": 3}, key=ADMIN_KEY)
        done["at"] = time.monotonic()
    sent = time.monotonic()
    t = threading.Thread(target=listing)
    t.start()
    time.sleep(0.1)
    # while the log is verified, the worker answers other calls at once
    asked = time.monotonic()
    api(srv, "info", {})
    latency = time.monotonic() - asked
    t.join(60 * SLOW)
    assert asked < done["at"], "the listing was over before the other call was made"
    assert latency < (done["at"] - sent) / 2, (latency, done["at"] - sent)
    page = done["page"]
    assert [e["seq"] for e in page["entries"]] == [n, n - 1, n - 2]
    assert page["cursor"] == n - 2 and page["verified"] == {"ok": True, "entries": n}
