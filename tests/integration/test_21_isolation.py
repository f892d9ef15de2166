# Issue A: tenant isolation matrix. Tenant globex holds a channel, pubs, a
# live user in presence and a read cursor; every client method and every
# API method used with acme's credentials on the same channel name sees only
# acme's own stream, cannot act on globex's users, and no reply, error or
# push carries anything of globex (its data, user name, client id or id).
import asyncio
import json
import time

import pytest

from helpers_api import ADMIN_KEY, api, api_error, api_raw, full_key, with_api
from parley_client import (SECRETS, Client, LoopThread, connect, jwt_encode, make_token, open_ws,
                           run, uniq)

GUS = "gus_" + uniq("z")
SECRET_DATA = "GLOBEX-SECRET-" + uniq("d")


@pytest.fixture(scope="module")
def world(module_factory):
    """A server where globex has a live stream on channel `ch`; acme has two
    pubs on the same name. Yields a dict of what was set up."""
    srv = module_factory(tweak=with_api, name="iso")
    loop = LoopThread()
    ch = "room:" + uniq("shared")
    w = {"srv": srv, "ch": ch, "loop": loop}

    async def setup():
        gus = await connect(srv, GUS, "globex")
        await gus.subscribe(ch)
        for i in range(3):
            await gus.publish(ch, {"s": SECRET_DATA, "i": i})
        await gus.call("read", {"channel": ch, "offset": 2})
        await gus.pubs(ch, 3)
        w["gus"] = gus
        w["gus_client"] = gus.connect_result["client"]
        alice = await connect(srv, "alice", "acme")
        await alice.publish(ch, {"acme": 1})
        await alice.publish(ch, {"acme": 2})
        w["alice"] = alice
    loop.run(setup())
    yield w

    async def teardown():
        await w["gus"].close()
        await w["alice"].close()
    loop.run(teardown())
    loop.stop()


def forbidden(w):
    return [SECRET_DATA, GUS, w["gus_client"], "globex"]


def assert_clean(w, obj, what):
    text = obj if isinstance(obj, str) else json.dumps(obj)
    for bad in forbidden(w):
        assert bad not in text, f"{what} leaks {bad!r}: {text[:500]}"


def gus_quiet(w, since_kinds=("pub", "typing", "read", "join", "leave", "subscribe",
                              "unsubscribe", "disconnect")):
    """Globex's connection received nothing from acme's activity and is alive."""
    async def check():
        await asyncio.sleep(0.4)
        gus = w["gus"]
        got = gus.drain(lambda m: m.get("push") in since_kinds)
        assert got == [], f"globex connection received {got}"
        assert not gus.closed.is_set(), "globex connection was closed"
        st = await gus.call("presence_stats", {"channel": w["ch"]})
        assert st == {"clients": 1, "users": 1}
    w["loop"].run(check())


def test_client_methods_see_only_own_tenant(world):
    w, ch = world, world["ch"]

    async def body():
        a = await connect(w["srv"], "alice", "acme")
        peer = await connect(w["srv"], "bob", "acme")
        replies = [a.connect_result]
        sub = await a.subscribe(ch)
        replies.append(sub)
        assert sub["offset"] == 2 and sub.get("unread") == 2
        rec = await a.subscribe(ch + "x", since={"offset": 0, "epoch": sub["epoch"]})
        replies.append(rec)
        await peer.subscribe(ch)
        h = await a.history(ch)
        replies.append(h)
        assert [p["data"] for p in h["pubs"]] == [{"acme": 1}, {"acme": 2}] and h["offset"] == 2
        pr = await a.call("presence", {"channel": ch})
        replies.append(pr)
        assert sorted(c["user"] for c in pr["clients"]) == ["alice", "bob"]
        st = await a.call("presence_stats", {"channel": ch})
        assert st == {"clients": 2, "users": 2}
        ack = await a.publish(ch, {"acme": 3})
        replies.append(ack)
        assert ack["offset"] == 3
        replies.append(await a.call("typing", {"channel": ch}))
        rd = await a.call("read", {"channel": ch, "offset": 3})
        replies.append(rd)
        assert rd == {"offset": 3, "unread": 0}
        replies.append(await a.call("unsubscribe", {"channel": ch}))
        # everything the acme connections received, replies and pushes alike
        await asyncio.sleep(0.3)
        replies += a.mailbox + peer.mailbox
        # errors must not name globex's things either
        replies.append(await a.error("subscribe", {"channel": "secret:" + GUS}))
        replies.append(await a.error("history", {"channel": "dm:#" + GUS}))
        for r in replies:
            assert_clean(w, r, "acme client reply")
        await a.close()
        await peer.close()
    run(body())
    gus_quiet(w)


def test_tokens_cannot_cross_tenants(world):
    w = world
    srv = w["srv"]

    async def refused(token):
        cl = Client(await open_ws(srv))
        reply = await cl.rpc("connect", {"token": token})
        assert reply["error"]["code"] == 101, reply
        code, _ = await cl.wait_closed()
        assert code == 4500
        assert_clean(w, reply, "connect error")

    async def body():
        exp = int(time.time()) + 600
        # a globex tenant claim signed with acme's secret, and the reverse
        await refused(jwt_encode({"sub": GUS, "tenant": "globex", "exp": exp}, SECRETS["acme"]))
        await refused(jwt_encode({"sub": "alice", "tenant": "acme", "exp": exp}, SECRETS["globex"]))
        await refused(jwt_encode({"sub": "alice", "exp": exp}, SECRETS["acme"]))  # no tenant
        await refused(jwt_encode({"sub": "alice", "tenant": "nosuch", "exp": exp},
                                 SECRETS["acme"]))
        # refresh of an acme session with a globex token of the same user name
        a = await connect(srv, "alice", "acme")
        err = await a.error("refresh", {"token": make_token("alice", "globex")})
        assert err["code"] in (101, 103), err
        assert a.connect_result["tenant"] == "acme"
        # a globex channel token does not open acme's private channel
        ch = "secret:" + uniq()
        tok = jwt_encode({"sub": "alice", "tenant": "globex", "channel": ch, "exp": exp},
                         SECRETS["globex"])
        assert (await a.error("subscribe", {"channel": ch, "token": tok}))["code"] == 103
        await a.close()
    run(body())


def _api_calls(ch):
    """(method, body, check(result)) for every tenant API method."""
    return [
        ("history", {"channel": ch},
         lambda r: all("acme" in p["data"] for p in r["pubs"])
         and [p["offset"] for p in r["pubs"]] == list(range(1, r["offset"] + 1))),
        ("presence", {"channel": ch}, lambda r: GUS not in json.dumps(r)),
        ("presence_stats", {"channel": ch}, lambda r: r["users"] <= 1 and r["clients"] <= 1),
        ("channels", {"prefix": ch}, lambda r: all(c["users"] <= 1 for c in r["channels"])),
        ("channels", {}, lambda r: True),
        ("info", {}, lambda r: True),
        ("subscribe", {"user": GUS, "channel": ch}, lambda r: r == {}),
        ("unsubscribe", {"user": GUS, "channel": ch}, lambda r: r == {}),
        ("disconnect", {"user": GUS}, lambda r: r == {}),
        ("publish", {"channel": ch, "data": {"acme": "api"}}, lambda r: r["offset"] >= 3),
        ("broadcast", {"channels": [ch], "data": {"acme": "bc"}},
         lambda r: r["responses"][0]["offset"] >= 4),
    ]


def test_api_methods_see_only_own_tenant(world):
    w, ch, srv = world, world["ch"], world["srv"]
    calls = _api_calls(ch) + [("disconnect", {"client": w["gus_client"]}, lambda r: r == {})]
    for method, body, check in calls:
        res = api(srv, method, body, key=full_key("acme"))
        assert check(res), f"{method}: {res}"
        assert_clean(w, res, f"API {method}")
    # the acme copy of the channel grew by two pubs; globex's is untouched
    acme = api(srv, "history", {"channel": ch})
    assert [p["data"] for p in acme["pubs"]][-2:] == [{"acme": "api"}, {"acme": "bc"}]
    glob = api(srv, "history", {"channel": ch}, tenant="globex")
    assert [p["data"]["i"] for p in glob["pubs"]] == [0, 1, 2] and glob["offset"] == 3
    gus_quiet(w)


def test_admin_key_acts_only_on_the_named_tenant(world):
    w, ch, srv = world, world["ch"], world["srv"]
    for method, body, check in _api_calls(ch):
        res = api(srv, method, dict(body, tenant="acme"), key=ADMIN_KEY)
        assert check(res), f"{method}: {res}"
        assert_clean(w, res, f"admin {method}")
    for body in ({"channel": ch}, {"channel": ch, "tenant": "nosuch"},
                 {"channel": ch, "tenant": 5}):
        st, err = api_error(srv, "history", body, key=ADMIN_KEY)
        assert (st, err["code"]) == (404, 102), err
        assert_clean(w, err, "admin error")
    gus_quiet(w)


def test_cursors_are_per_tenant(world):
    w, ch, srv = world, world["ch"], world["srv"]
    # acme has no user GUS: no cursor; globex's GUS read up to 2 of 3
    res = api(srv, "cursors", {"tenant": "acme", "user": GUS, "channels": [ch]}, key=ADMIN_KEY)
    (cur,) = res["cursors"]
    assert cur["cursor"] == 0 and cur["unread"] == cur["offset"] >= 2
    assert_clean(w, cur, "cursors")
    res = api(srv, "cursors", {"tenant": "globex", "user": GUS, "channels": [ch]}, key=ADMIN_KEY)
    assert res["cursors"][0]["cursor"] == 2 and res["cursors"][0]["unread"] == 1
    res = api(srv, "cursors", {"tenant": "globex", "user": "alice", "channels": [ch]},
              key=ADMIN_KEY)
    assert res["cursors"][0]["cursor"] == 0


def test_cursors_with_tenant_key_see_only_own_tenant(world):
    w, ch, srv = world, world["ch"], world["srv"]
    st, reply = api_raw(srv, "cursors", {"user": GUS, "channels": [ch]}, full_key("acme"))
    assert st == 200, f"a '*' key must be allowed to call cursors: {st} {reply}"
    (cur,) = reply["result"]["cursors"]
    assert cur["cursor"] == 0
    assert_clean(w, cur, "cursors")


def test_key_of_one_tenant_cannot_manage_another(world):
    w, srv = world, world["srv"]
    for m in ("tenants.list", "keys.list", "tenants.update", "keys.create", "keys.revoke"):
        for body in ({}, {"tenant": "globex"}, {"id": "globex", "jwt_secret": "x" * 20}):
            st, err = api_error(srv, m, body, key=full_key("acme"))
            assert (st, err["code"]) == (403, 103), (m, body, err)
            assert_clean(w, err, m)
    # the admin-only "tenant" body member is ignored for tenant keys
    res = api(srv, "history", {"channel": w["ch"], "tenant": "globex"}, key=full_key("acme"))
    assert_clean(w, res, "history with a foreign tenant member")
    # and nothing was changed in globex
    assert api(srv, "history", {"channel": w["ch"]}, tenant="globex")["offset"] == 3


def test_globex_still_intact(world):
    w = world

    async def check():
        gus = w["gus"]
        assert not gus.closed.is_set()
        h = await gus.history(w["ch"])
        assert [p["data"]["i"] for p in h["pubs"]] == [0, 1, 2]
        pr = await gus.call("presence", {"channel": w["ch"]})
        assert [c["user"] for c in pr["clients"]] == [GUS]
        assert "alice" not in json.dumps(pr) and "bob" not in json.dumps(pr)
        unexpected = gus.drain(lambda m: m.get("push") not in (None, "ping"))
        assert unexpected == [], unexpected
    w["loop"].run(check())
