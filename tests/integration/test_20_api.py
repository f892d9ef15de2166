# Issue A: the server HTTP API. Every tenant method answers its documented
# shape, the live-connection methods (subscribe, unsubscribe, disconnect)
# reach the user's connections, and hostile requests (malformed JSON, wrong
# types, oversized bodies, unknown methods, bad keys) get their documented
# error and change nothing.
import asyncio

import pytest

from helpers_api import (ADMIN_KEY, api, api_error, api_raw, full_key, with_api)
from parley_client import (connect, expect_disconnect, run, uniq)

MAX_BODY = 16384


def _tweak(cfg):
    with_api(cfg)
    cfg["limits"]["max_body_bytes"] = MAX_BODY


@pytest.fixture(scope="module")
def asrv(module_factory):
    return module_factory(tweak=_tweak, name="api")


def _history_data(srv, ch):
    return [p["data"] for p in api(srv, "history", {"channel": ch})["pubs"]]


def test_publish_and_history(asrv):
    ch = "chat:" + uniq()
    ack = api(asrv, "publish", {"channel": ch, "data": {"n": 1}, "type": "t.x"})
    assert ack["offset"] == 1 and ack["duplicate"] is False and len(ack["id"]) == 26
    again = api(asrv, "publish", {"channel": ch, "data": {"n": 2}, "idempotency_key": "k1"})
    dup = api(asrv, "publish", {"channel": ch, "data": {"n": 2}, "idempotency_key": "k1"})
    assert again["offset"] == 2 and dup["duplicate"] is True and dup["offset"] == 2
    h = api(asrv, "history", {"channel": ch})
    assert [p["data"] for p in h["pubs"]] == [{"n": 1}, {"n": 2}]
    assert h["offset"] == 2 and h["epoch"] == ack["epoch"]
    rev = api(asrv, "history", {"channel": ch, "reverse": True, "limit": 1})
    assert [p["offset"] for p in rev["pubs"]] == [2]
    since = api(asrv, "history", {"channel": ch, "since": {"offset": 1, "epoch": ack["epoch"]}})
    assert [p["offset"] for p in since["pubs"]] == [2]
    eph = api(asrv, "publish", {"channel": ch, "data": 3, "class": "ephemeral"})
    assert eph["offset"] == 0 and eph["epoch"] == ""
    assert len(api(asrv, "history", {"channel": ch})["pubs"]) == 2


def test_publish_reaches_live_subscribers(asrv):
    async def body():
        ch = "chat:" + uniq()
        sub = await connect(asrv, "bob")
        await sub.subscribe(ch)
        ack = await asyncio.to_thread(api, asrv, "publish", {"channel": ch, "data": "hi"})
        (p,) = await sub.pubs(ch, 1)
        assert p["data"] == "hi" and p["offset"] == ack["offset"] == 1
        await sub.close()
    run(body())


def test_broadcast_answers_per_channel_in_order(asrv):
    async def body():
        a, b = "chat:" + uniq(), uniq("plain")
        sub = await connect(asrv, "bob")
        await sub.subscribe(a)
        await sub.subscribe(b)
        chans = [a, "nosuchns:x", b, "bad channel!", a]
        res = await asyncio.to_thread(api, asrv, "broadcast", {"channels": chans, "data": {"v": 1}})
        r = res["responses"]
        assert len(r) == 5
        assert r[0]["offset"] == 1 and r[2]["offset"] == 1 and r[4]["offset"] == 2
        assert r[1]["error"]["code"] == 102 and r[3]["error"]["code"] == 107
        got = await sub.pubs(a, 2) + await sub.pubs(b, 1)
        assert [p["data"] for p in got] == [{"v": 1}] * 3
        await sub.close()
    run(body())
    st, err = api_error(asrv, "broadcast", {"channels": [], "data": 1})
    assert (st, err["code"]) == (400, 107)
    st, err = api_error(asrv, "broadcast", {"channels": [f"c{i}" for i in range(1001)], "data": 1})
    assert (st, err["code"]) == (413, 106)
    st, err = api_error(asrv, "broadcast", {"channels": "chat:x", "data": 1})
    assert (st, err["code"]) == (400, 107)


def test_ephemeral_publish_and_broadcast_answer_at_once(asrv):
    async def body():
        a, b = "chat:" + uniq(), "chat:" + uniq()
        sub = await connect(asrv, "bob")
        await sub.subscribe(a)
        await sub.subscribe(b)
        one = await asyncio.to_thread(api, asrv, "publish",
                                      {"channel": a, "data": 0, "class": "ephemeral"})
        res = await asyncio.to_thread(api, asrv, "broadcast", {
            "channels": [a, "bad channel!", b], "data": {"v": 1}, "class": "ephemeral"})
        r = res["responses"]
        assert r[1]["error"]["code"] == 107
        for x in (one, r[0], r[2]):
            assert set(x) == {"id", "offset", "epoch", "duplicate"}, x
            assert x["offset"] == 0 and x["epoch"] == "" and x["duplicate"] is False
            assert len(x["id"]) == 26
        got = await sub.pubs(a, 2) + await sub.pubs(b, 1)
        assert [p["id"] for p in got] == [one["id"], r[0]["id"], r[2]["id"]]
        assert [p["data"] for p in got] == [0, {"v": 1}, {"v": 1}]
        for ch in (a, b):  # answered before any commit: nothing was stored
            assert api(asrv, "history", {"channel": ch})["pubs"] == []
        await sub.close()
    run(body())


def test_presence_channels_and_stats(asrv):
    async def body():
        prefix = uniq("pfx")
        ch1, ch2 = f"chat:{prefix}a", f"chat:{prefix}b"
        a1 = await connect(asrv, "alice", params={})
        a2 = await connect(asrv, "alice")
        b1 = await connect(asrv, "bob")
        for c in (a1, a2, b1):
            await c.subscribe(ch1)
        await b1.subscribe(ch2)
        st = await asyncio.to_thread(api, asrv, "presence_stats", {"channel": ch1})
        assert st == {"clients": 3, "users": 2}
        pr = await asyncio.to_thread(api, asrv, "presence", {"channel": ch1})
        assert sorted(c["client"] for c in pr["clients"]) == sorted(
            c.connect_result["client"] for c in (a1, a2, b1))
        assert sorted(c["user"] for c in pr["clients"]) == ["alice", "alice", "bob"]
        assert all(isinstance(c["since"], int) and c["since"] > 0 for c in pr["clients"])
        assert pr["cursor"] == 0
        ls = await asyncio.to_thread(api, asrv, "channels", {"prefix": "chat:" + prefix})
        assert sorted((c["channel"], c["clients"], c["users"]) for c in ls["channels"]) == [
            (ch1, 3, 2), (ch2, 1, 1)]
        for c in (a1, a2, b1):
            await c.close()
    run(body())


def test_info_and_tokens_issue(asrv):
    info = api(asrv, "info")
    assert info["workers"] >= 1 and info["engine"] == "sqlite"
    assert set(info["connections"]) == {"ws", "sse"}
    st, err = api_error(asrv, "tokens.issue", {"user": "alice", "ttl": 60})
    assert (st, err["code"]) == (400, 108)


def test_api_subscribe_and_unsubscribe_push_to_the_users_connections(asrv):
    async def body():
        ch = "chat:" + uniq()
        user = uniq("u")
        d1 = await connect(asrv, user)
        d2 = await connect(asrv, user)
        other = await connect(asrv, "bystander")
        res = await asyncio.to_thread(api, asrv, "subscribe", {"user": user, "channel": ch})
        assert res == {}
        for d in (d1, d2):
            p = await d.push("subscribe", ch)
            assert "offset" in p["result"] and "epoch" in p["result"]
        await asyncio.to_thread(api, asrv, "publish", {"channel": ch, "data": "x"})
        for d in (d1, d2):
            (p,) = await d.pubs(ch, 1)
            assert p["data"] == "x"
        await asyncio.to_thread(api, asrv, "unsubscribe", {"user": user, "channel": ch})
        for d in (d1, d2):
            p = await d.push("unsubscribe", ch)
            assert p["code"] == 2000 and isinstance(p["reason"], str)
        await asyncio.to_thread(api, asrv, "publish", {"channel": ch, "data": "y"})
        await asyncio.sleep(0.3)
        assert d1.drain_pubs(ch) == [] and d2.drain_pubs(ch) == []
        assert other.drain(lambda m: m.get("push") in ("subscribe", "pub")) == []
        # one client only, by its id
        await asyncio.to_thread(api, asrv, "subscribe",
                                {"client": d2.connect_result["client"], "channel": ch})
        await d2.push("subscribe", ch)
        await asyncio.sleep(0.2)
        assert d1.drain(lambda m: m.get("push") == "subscribe") == []
        for c in (d1, d2, other):
            await c.close()
    run(body())


def test_api_disconnect(asrv):
    async def body():
        user = uniq("u")
        a = await connect(asrv, user)
        b = await connect(asrv, user)
        keep = await connect(asrv, "keeper")
        await asyncio.to_thread(api, asrv, "disconnect", {"user": user, "code": 4321})
        assert (await expect_disconnect(a, 4321))["reconnect"] is True
        await expect_disconnect(b, 4321)
        c = await connect(asrv, user)
        await asyncio.to_thread(api, asrv, "disconnect", {"client": c.connect_result["client"]})
        # 4500-4999 tell the client not to reconnect; the push says so too
        assert (await expect_disconnect(c, 4503))["reconnect"] is False
        d = await connect(asrv, user)
        await asyncio.to_thread(api, asrv, "disconnect", {"user": user, "code": 4999})
        assert (await expect_disconnect(d, 4999))["reconnect"] is False
        for bad in ({"user": user, "code": 3999}, {"user": user, "code": 5000},
                    {"user": user, "code": "4100"}, {}, {"user": 7}):
            st, err = await asyncio.to_thread(api_error, asrv, "disconnect", bad)
            assert (st, err["code"]) == (400, 107), bad
        assert (await keep.history("chat:" + uniq()))["offset"] == 0  # still served
        await keep.close()
    run(body())


# ---------------------------------------------------------------- bad input


def test_malformed_json_reports_the_byte_offset(asrv):
    ch = "chat:" + uniq()
    api(asrv, "publish", {"channel": ch, "data": "ok"})
    for text in ('{"channel": "%s", "data": ' % ch, '{"channel" "x"}', "{,}", "nul\x00",
                 '{"a":1}{"b":2}', '{"data": tru}'):
        st, reply = api_raw(asrv, "publish", text, full_key("acme"))
        assert st == 400 and reply["error"]["code"] == 107, (text, st, reply)
        assert "byte" in reply["error"]["message"], reply
    assert _history_data(asrv, ch) == ["ok"]


def test_body_must_be_an_object(asrv):
    for text in ("[]", '"channel"', "42", "null", "true"):
        st, reply = api_raw(asrv, "publish", text, full_key("acme"))
        assert st == 400 and reply["error"]["code"] == 107, (text, reply)


WRONG_TYPES = [
    ("publish", {"channel": 5, "data": 1}),
    ("publish", {"channel": ["chat:x"], "data": 1}),
    ("publish", {"channel": "chat:x"}),  # no data
    ("publish", {"channel": "chat:x", "data": 1, "class": 7}),
    ("publish", {"channel": "chat:x", "data": 1, "headers": {"a": 1}}),
    ("publish", {"channel": "chat:x", "data": 1, "idempotency_key": "k" * 200}),
    ("publish", {"channel": "", "data": 1}),
    ("publish", {"channel": "chat:" + "x" * 300, "data": 1}),
    ("publish", {"channel": "chat:a b", "data": 1}),
    ("history", {"channel": "chat:x", "limit": "10"}),
    ("history", {"channel": "chat:x", "limit": -1}),
    ("history", {"channel": "chat:x", "reverse": "yes"}),
    ("history", {"channel": "chat:x", "since": 3}),
    ("history", {}),
    ("presence", {"channel": 1}),
    ("presence", {"channel": "chat:x", "limit": "a"}),
    ("presence_stats", {}),
    ("channels", {"prefix": 3}),
    ("channels", {"cursor": "x"}),
    ("subscribe", {"user": "u", "channel": 3}),
    ("subscribe", {"channel": "chat:x"}),
    ("unsubscribe", {"user": "", "channel": "chat:x"}),
]


@pytest.mark.parametrize("method,body", WRONG_TYPES)
def test_wrong_types_get_107(asrv, method, body):
    st, err = api_error(asrv, method, body)
    assert (st, err["code"]) == (400, 107), err


def test_documented_limit_and_namespace_errors(asrv):
    st, err = api_error(asrv, "history", {"channel": "chat:x", "limit": 5000})
    assert (st, err["code"]) == (413, 106)
    st, err = api_error(asrv, "publish", {"channel": "nosuchns:x", "data": 1})
    assert (st, err["code"]) == (404, 102)
    st, err = api_error(asrv, "presence", {"channel": "chat:x", "limit": 0})
    assert (st, err["code"]) == (413, 106)
    st, err = api_error(asrv, "channels", {"limit": 10001})
    assert (st, err["code"]) == (413, 106)


def test_oversized_bodies_get_413_and_change_nothing(asrv):
    ch = "chat:" + uniq()
    api(asrv, "publish", {"channel": ch, "data": "before"})
    big = '{"channel": "%s", "data": "%s"}' % (ch, "x" * (MAX_BODY + 10))
    st, reply = api_raw(asrv, "publish", big, full_key("acme"))
    assert st == 413 and reply["error"]["code"] == 106, (st, reply)
    huge = '{"channel": "%s", "data": "%s"}' % (ch, "y" * (4 * 1024 * 1024))
    try:
        st, reply = api_raw(asrv, "publish", huge, full_key("acme"))
        assert st == 413, st
    except (ConnectionError, OSError):
        pass  # the server may cut the upload short once it is over the limit
    # data over max_message_bytes inside a body under max_body_bytes
    st, reply = api_raw(asrv, "publish", {"channel": ch, "data": "z" * 70000}, full_key("acme"))
    assert st == 413 and reply["error"]["code"] == 106, (st, reply)
    assert _history_data(asrv, ch) == ["before"]


def test_unknown_methods_get_404(asrv):
    for m in ("nosuch", "Publish", "publish2", "tenants", "keys.delete", "a" * 300, "%00"):
        st, reply = api_raw(asrv, m, {}, full_key("acme"))
        assert st == 404 and reply["error"]["code"] == 104, (m, st, reply)


def test_missing_invalid_and_revoked_keys_get_401(asrv):
    ch = "chat:" + uniq()
    api(asrv, "publish", {"channel": ch, "data": "ok"})
    body = {"channel": ch, "data": "evil"}
    created = api(asrv, "keys.create", {"tenant": "acme", "scopes": ["publish"]}, key=ADMIN_KEY)
    api(asrv, "publish", {"channel": ch, "data": "by-new-key"}, key=created["key"])
    api(asrv, "keys.revoke", {"id": created["id"]}, key=ADMIN_KEY)
    bad_headers = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
        {"Authorization": f"Basic {full_key('acme')}"},
        {"Authorization": f"Bearer {full_key('acme')}x"},
        {"Authorization": f"Bearer {full_key('acme')[:-1]}"},
        {"Authorization": "Bearer pk_nobody"},
        {"Authorization": f"Bearer {created['key']}"},
        {"Authorization": f"Bearer {created['id']}"},
    ]
    for h in bad_headers:
        st, reply = api_raw(asrv, "publish", body, headers=h)
        assert st == 401 and reply["error"]["code"] == 101, (h, st, reply)
        assert full_key("acme") not in str(reply)
    assert _history_data(asrv, ch) == ["ok", "by-new-key"]


def test_revoke_unknown_key_and_bad_key_requests(asrv):
    st, err = api_error(asrv, "keys.revoke", {"id": "01NOSUCHKEY000000000000000"}, key=ADMIN_KEY)
    assert (st, err["code"]) == (404, 102)
    st, err = api_error(asrv, "keys.create", {"tenant": "acme", "scopes": ["fly"]}, key=ADMIN_KEY)
    assert (st, err["code"]) == (400, 107)
    st, err = api_error(asrv, "keys.create", {"tenant": "acme", "scopes": []}, key=ADMIN_KEY)
    assert (st, err["code"]) == (400, 107)
    st, err = api_error(asrv, "keys.create", {"tenant": "nosuch", "scopes": ["*"]}, key=ADMIN_KEY)
    assert (st, err["code"]) == (404, 102)


def test_server_still_healthy(asrv):
    assert asrv.alive()
    assert asrv.http("GET", "/healthz")[0] == 200
    assert api(asrv, "info")["engine"] == "sqlite"


def test_refused_api_keys_are_logged_without_the_key(asrv):
    import json as _json
    st, _ = api_raw(asrv, "history", {"channel": "chat:x"}, key="pk_not-a-real-key")
    assert st == 401
    st, _ = api_raw(asrv, "history", {"channel": "chat:x"})
    assert st == 401
    lines = [_json.loads(l) for l in open(asrv.log_path) if l.startswith("{")]
    logged = [l for l in lines if l.get("event") == "auth_failed" and l.get("token") == "api key"]
    assert len(logged) >= 2
    assert {l["reason"] for l in logged[-2:]} == {"unknown or revoked key",
                                                 "no Authorization header"}
    assert all(l["remote"] == "127.0.0.1" and isinstance(l["conn"], int) for l in logged[-2:])
    assert "pk_not-a-real-key" not in open(asrv.log_path).read()
