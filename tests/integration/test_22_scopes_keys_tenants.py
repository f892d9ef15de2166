# Issue A: API key scopes, key and tenant administration. A key with only
# scope X calls the methods of family X and gets 403 for every other one;
# admin methods need the admin key; keys created and revoked through the API
# and tenants created through it survive a restart; secret rotation keeps
# both secrets valid until the old one is removed, then rejects it with 101.
import time

import pytest

from helpers_api import (ADMIN_KEY, ADMIN_METHODS, METHOD_SCOPE, SCOPES, api, api_error,
                         api_raw, full_key, scope_key, wait_until, with_api)
from parley_client import (SLOW, Client, connect, jwt_encode, make_token, open_ws, run, uniq)


@pytest.fixture(scope="module")
def ssrv(module_factory):
    return module_factory(tweak=with_api, name="scopes")


def _webhook(srv, schedule=("0s",)):
    """A fresh endpoint of acme on a loopback port nothing listens on (the
    server refuses loopback here: every attempt fails at once)."""
    wid = uniq("w")
    api(srv, "webhooks.create", {"id": wid, "url": "http://127.0.0.1:9/hook",
                                 "retry_schedule": list(schedule)})
    return wid


def _route(srv):
    rid = uniq("r")
    api(srv, "routes.create", {"id": rid, "match": {"channel": "chat:" + uniq()},
                               "action": {"publish": "chat:" + uniq()}})
    return rid


def _dead_delivery(srv):
    """A delivery of a fresh endpoint whose only attempt failed."""
    wid, ch = _webhook(srv), "chat:" + uniq()
    api(srv, "routes.create", {"id": uniq("r"), "match": {"channel": ch},
                               "action": {"webhook": wid}})
    pub = api(srv, "publish", {"channel": ch, "data": 1})
    wait_until(lambda: api(srv, "webhooks.health", {"id": wid})["deliveries"]["dead"] == 1,
               10 * SLOW, f"a dead delivery of {pub['id']} to {wid}: "
               f"{api(srv, 'webhooks.health', {'id': wid})} {api(srv, 'routes.list', {})}")
    return f"{pub['id']}.{wid}"


def valid_body(method, srv):
    ch = "chat:" + uniq()
    simple = {
        "publish": {"channel": ch, "data": 1},
        "broadcast": {"channels": [ch], "data": 1},
        "history": {"channel": ch},
        "cursors": {"user": "alice", "channels": [ch]},
        "presence": {"channel": ch},
        "presence_stats": {"channel": ch},
        "channels": {},
        "subscribe": {"user": "nobody", "channel": ch},
        "unsubscribe": {"user": "nobody", "channel": ch},
        "disconnect": {"user": "nobody"},
        "connections": {"user": "nobody"},
        "info": {},
        "routes.test": {"match": {"channel": "chat:*"}, "event": {"channel": ch}},
        "routes.list": {},
        "routes.create": {"id": uniq("r"), "match": {"channel": ch},
                          "action": {"publish": "chat:" + uniq()}},
        "webhooks.list": {},
        "webhooks.create": {"id": uniq("w"), "url": "http://127.0.0.1:9/hook"},
    }
    if method in simple:
        return simple[method]
    if method in ("routes.update", "routes.delete"):
        return {"id": _route(srv), **({"enabled": False} if method == "routes.update" else {})}
    if method in ("webhooks.attempts", "webhooks.replay"):
        return {"delivery": _dead_delivery(srv)}
    if method == "webhooks.recover":
        return {"endpoint": _webhook(srv), "since": 0, "dry_run": True}
    return {"id": _webhook(srv)}  # update, delete, health, rotate_secret


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("method", sorted(METHOD_SCOPE))
def test_scope_matrix(ssrv, scope, method):
    # A refused key is refused whatever the body: build the real one (which
    # may create endpoints and routes) only for the allowed scope.
    body = valid_body(method, ssrv) if METHOD_SCOPE[method] == scope else {}
    st, reply = api_raw(ssrv, method, body, scope_key("acme", scope))
    if METHOD_SCOPE[method] == scope:
        assert st == 200 and "result" in reply, \
            f"key with scope {scope} must be allowed {method}: {st} {reply}"
    else:
        assert st == 403 and reply["error"]["code"] == 103, \
            f"key with scope {scope} must be refused {method}: {st} {reply}"


@pytest.mark.parametrize("method", sorted(METHOD_SCOPE))
def test_star_key_calls_every_tenant_method(ssrv, method):
    st, reply = api_raw(ssrv, method, valid_body(method, ssrv), full_key("acme"))
    assert st == 200 and "result" in reply, f"'*' key refused {method}: {st} {reply}"


@pytest.mark.parametrize("method", ADMIN_METHODS)
def test_admin_methods_need_the_admin_key(ssrv, method):
    for key in [full_key("acme"), full_key("globex")] + [scope_key("acme", s) for s in SCOPES]:
        st, err = api_error(ssrv, method, {"tenant": "acme", "id": "zz", "scopes": ["*"],
                                           "jwt_secret": "s" * 20}, key=key)
        assert (st, err["code"]) == (403, 103), (key, err)
    assert [t["id"] for t in api(ssrv, "tenants.list", key=ADMIN_KEY)["tenants"]] == \
        ["acme", "globex"]


def test_tokens_issue_needs_star_scope(ssrv):
    for s in SCOPES:
        st, err = api_error(ssrv, "tokens.issue", {"user": "a", "ttl": 60}, key=scope_key("acme", s))
        assert (st, err["code"]) == (403, 103), s


def test_keys_create_list_revoke(ssrv):
    made = api(ssrv, "keys.create", {"tenant": "globex", "scopes": ["publish", "history"]},
               key=ADMIN_KEY)
    assert made["tenant"] == "globex" and made["key"] and made["id"]
    ch = "chat:" + uniq()
    api(ssrv, "publish", {"channel": ch, "data": "k"}, key=made["key"])
    assert api(ssrv, "history", {"channel": ch}, key=made["key"])["offset"] == 1
    # the key acts in globex, not acme
    assert api(ssrv, "history", {"channel": ch}, tenant="globex")["offset"] == 1
    assert api(ssrv, "history", {"channel": ch}, tenant="acme")["offset"] == 0
    st, err = api_error(ssrv, "presence", {"channel": ch}, key=made["key"])
    assert (st, err["code"]) == (403, 103)
    listed = api(ssrv, "keys.list", {"tenant": "globex"}, key=ADMIN_KEY)["keys"]
    assert all(k["tenant"] == "globex" for k in listed)
    mine = [k for k in listed if k["id"] == made["id"]]
    assert len(mine) == 1 and sorted(mine[0]["scopes"]) == ["history", "publish"]
    assert mine[0]["revoked"] is False
    everything = str(api(ssrv, "keys.list", key=ADMIN_KEY))
    assert made["key"] not in everything and full_key("acme") not in everything, \
        "keys.list must never show a plaintext key"
    api(ssrv, "keys.revoke", {"id": made["id"]}, key=ADMIN_KEY)
    st, err = api_error(ssrv, "publish", {"channel": ch, "data": "after"}, key=made["key"])
    assert (st, err["code"]) == (401, 101)
    assert api(ssrv, "history", {"channel": ch}, tenant="globex")["offset"] == 1
    listed = api(ssrv, "keys.list", {"tenant": "globex"}, key=ADMIN_KEY)["keys"]
    assert [k["revoked"] for k in listed if k["id"] == made["id"]] == [True]
    # revoking a configured key works too
    cfg_key = [k for k in listed if k["scopes"] == ["info"]][0]
    api(ssrv, "keys.revoke", {"id": cfg_key["id"]}, key=ADMIN_KEY)
    st, err = api_error(ssrv, "info", {}, key=scope_key("globex", "info"))
    assert (st, err["code"]) == (401, 101)


def test_tenant_admin_bad_input(ssrv):
    for body in ({}, {"id": ""}, {"id": "bad id"}, {"id": "x/y", "jwt_secret": "s" * 20},
                 {"id": 5, "jwt_secret": "s"}, {"id": "t" + uniq(), "jwt_secrets": "nolist"},
                 {"id": "t" + uniq(), "jwt_secrets": [1]},
                 {"id": "t" + uniq(), "jwt_secrets": ["s"] * 9},
                 {"id": "t" + uniq(), "jwt_secret": "s" * 20, "max_connections": "10"},
                 {"id": "t" + uniq(), "jwt_secret": "s" * 20, "max_connections": -1},
                 {"id": "acme", "jwt_secret": "s" * 20}):  # exists
        st, err = api_error(ssrv, "tenants.create", body, key=ADMIN_KEY)
        assert (st, err["code"]) == (400, 107), (body, err)
    st, err = api_error(ssrv, "tenants.update", {"id": "nosuch", "jwt_secret": "s" * 20},
                        key=ADMIN_KEY)
    assert (st, err["code"]) == (404, 102)
    assert [t["id"] for t in api(ssrv, "tenants.list", key=ADMIN_KEY)["tenants"]] == \
        ["acme", "globex"]


async def _connect_result(srv, token):
    """('ok', client) or ('error', code, close code)."""
    cl = Client(await open_ws(srv))
    reply = await cl.rpc("connect", {"token": token})
    if "result" in reply:
        cl.connect_result = reply["result"]
        return ("ok", cl)
    code, _ = await cl.wait_closed()
    return ("error", reply["error"]["code"], code)


def test_api_created_tenant_and_keys_survive_restart(server_factory):
    srv = server_factory(tweak=with_api, name="persist")
    tid, secret = "t" + uniq(), "initech-secret-" + uniq()
    assert api(srv, "tenants.create", {"id": tid, "jwt_secret": secret, "max_connections": 5},
               key=ADMIN_KEY) == {"id": tid}
    ks = api(srv, "keys.create", {"tenant": tid, "scopes": ["publish", "history"]}, key=ADMIN_KEY)
    gone = api(srv, "keys.create", {"tenant": tid, "scopes": ["*"]}, key=ADMIN_KEY)
    api(srv, "keys.revoke", {"id": gone["id"]}, key=ADMIN_KEY)
    ch = "chat:" + uniq()
    api(srv, "publish", {"channel": ch, "data": "before"}, key=ks["key"])
    tok = jwt_encode({"sub": "ina", "tenant": tid, "exp": int(time.time()) + 600}, secret)

    async def check(expect):
        res = await _connect_result(srv, tok)
        assert res[0] == "ok", res
        cl = res[1]
        assert cl.connect_result["tenant"] == tid
        assert [p["data"] for p in (await cl.history(ch))["pubs"]] == expect
        await cl.close()

    run(check(["before"]))
    srv.restart()
    listed = api(srv, "tenants.list", key=ADMIN_KEY)["tenants"]
    mine = [t for t in listed if t["id"] == tid]
    assert len(mine) == 1 and mine[0]["max_connections"] == 5
    api(srv, "publish", {"channel": ch, "data": "after"}, key=ks["key"])
    assert [p["data"] for p in api(srv, "history", {"channel": ch}, key=ks["key"])["pubs"]] == \
        ["before", "after"]
    st, err = api_error(srv, "info", {}, key=gone["key"])
    assert (st, err["code"]) == (401, 101)
    run(check(["before", "after"]))


def test_secret_rotation_through_the_api(server_factory):
    srv = server_factory(tweak=with_api, name="rotate")
    old, new = "globex-secret-0123456789", "globex-rotated-" + uniq()
    old_tok = make_token("gina", "globex", secret=old)
    new_tok = make_token("gina", "globex", secret=new)

    async def outcomes():
        out = []
        for tok in (old_tok, new_tok):
            res = await _connect_result(srv, tok)
            if res[0] == "ok":
                await res[1].close()
                out.append("ok")
            else:
                out.append(res[1:])
        return out

    assert run(outcomes()) == ["ok", (101, 4500)]
    api(srv, "tenants.update", {"id": "globex", "jwt_secrets": [new, old]}, key=ADMIN_KEY)
    assert run(outcomes()) == ["ok", "ok"]
    api(srv, "tenants.update", {"id": "globex", "jwt_secrets": [new]}, key=ADMIN_KEY)
    assert run(outcomes()) == [(101, 4500), "ok"]
    # channel tokens follow the same keys
    async def channel_tokens():
        cl = await connect(srv, "gina", "globex", token=new_tok)
        ch = "secret:" + uniq()
        for secret, expect in ((old, 103), (new, None)):
            ctok = jwt_encode({"sub": "gina", "tenant": "globex", "channel": ch,
                               "exp": int(time.time()) + 600}, secret)
            if expect:
                err = await cl.error("subscribe", {"channel": ch, "token": ctok})
                assert err["code"] == expect
            else:
                await cl.subscribe(ch, token=ctok)
        await cl.close()
    run(channel_tokens())
    # acme was not touched by globex's rotation
    async def acme_ok():
        cl = await connect(srv, "alice", "acme")
        await cl.close()
    run(acme_ok())


def test_secret_list_in_config_accepts_both(server_factory):
    a, b = "first-secret-0123456789", "second-secret-0123456789"

    def tweak(cfg):
        cfg["tenants"][0]["jwt_secret"] = [a, b]
    srv = server_factory(tweak=tweak, name="cfgrot")

    async def body():
        for s in (a, b):
            res = await _connect_result(srv, make_token("alice", "acme", secret=s))
            assert res[0] == "ok", res
            await res[1].close()
        res = await _connect_result(srv, make_token("alice", "acme", secret="third-" + a))
        assert res[1:] == (101, 4500)
    run(body())


def test_dev_tokens_issue(server_factory):
    def tweak(cfg):
        with_api(cfg)
        cfg["dev_tokens"] = True
    srv = server_factory(tweak=tweak, name="devtok")
    res = api(srv, "tokens.issue", {"user": "dora", "ttl": 120}, tenant="globex")
    assert abs(res["expires_at"] - (time.time() + 120)) < 60

    async def body():
        cl = await connect(srv, token=res["token"])
        assert cl.connect_result["user"] == "dora" and cl.connect_result["tenant"] == "globex"
        await cl.close()
    run(body())
    for bad in ({"ttl": 60}, {"user": "d", "ttl": 0}, {"user": "d", "ttl": "60"},
                {"user": "d", "ttl": 10 ** 9}):
        st, err = api_error(srv, "tokens.issue", bad)
        assert (st, err["code"]) == (400, 107), bad
    st, err = api_error(srv, "tokens.issue", {"user": "d", "ttl": 60}, key=scope_key("acme", "info"))
    assert (st, err["code"]) == (403, 103)


def test_configured_keys_keep_their_ids_across_restarts(server_factory):
    # Audit records and keys.list name a key by id: a configured key must be
    # the same key after a restart, not a new id for the same secret.
    srv = server_factory(with_api, name="keyids")
    before = sorted((k["tenant"], tuple(k["scopes"]), k["id"])
                    for k in api(srv, "keys.list", key=ADMIN_KEY)["keys"])
    assert before and len({k[2] for k in before}) == len(before)
    srv.stop()
    srv.start()
    after = sorted((k["tenant"], tuple(k["scopes"]), k["id"])
                   for k in api(srv, "keys.list", key=ADMIN_KEY)["keys"])
    assert after == before
