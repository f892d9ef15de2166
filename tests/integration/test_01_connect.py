# Scenario family 1: connecting and authenticating. A valid token yields the
# documented connect result; every kind of bad token, an expired token and
# a command before connect get their error code and close code.
import time

from parley_client import (SECRETS, connect, expect_disconnect, jwt_encode, make_token,
                           raw_client, run)


def test_connect_result_fields(server):
    async def body():
        exp = int(time.time()) + 3600
        tok = make_token("alice", "acme", exp=exp)
        cl = await raw_client(server)
        assert cl.ws.subprotocol == "parley.v1"
        res = await cl.call("connect", {"token": tok})
        assert isinstance(res["client"], str) and res["client"]
        assert res["user"] == "alice"
        assert res["tenant"] == "acme"
        assert res["expires_at"] == exp
        assert res["ping"] == 25
        assert res["subs"] == {}
        assert res["limits"] == {"typing_interval": 2000, "max_frame_bytes": 1048576,
                                 "max_message_bytes": 65536, "max_channels_per_connection": 128}
        await cl.close()
    run(body())


def test_connect_result_carries_the_configured_limits(server_factory):
    def tweak(cfg):
        cfg["limits"].update({"typing_interval": "300ms", "max_frame_bytes": 8192,
                              "max_message_bytes": 4096, "max_channels_per_connection": 7})
    srv = server_factory(tweak=tweak, name="limits")

    async def body():
        cl = await raw_client(srv)
        res = await cl.call("connect", {"token": make_token("alice", "acme")})
        assert res["limits"] == {"typing_interval": 300, "max_frame_bytes": 8192,
                                 "max_message_bytes": 4096, "max_channels_per_connection": 7}
        await cl.close()
    run(body())


def test_client_ids_are_distinct_and_tenants_resolved(server):
    async def body():
        a = await connect(server, "alice", "acme")
        b = await connect(server, "bob", "globex")
        assert a.connect_result["client"] != b.connect_result["client"]
        assert b.connect_result["tenant"] == "globex"
        assert b.connect_result["user"] == "bob"
        await a.close()
        await b.close()
    run(body())


def _bad_tokens():
    now = int(time.time())
    good = {"sub": "alice", "tenant": "acme", "exp": now + 3600}
    return {
        "missing": None,
        "empty": "",
        "garbage": "not-a-jwt",
        "two_parts": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0",
        "bad_signature": make_token()[:-4] + "AAAA",
        "alg_none": jwt_encode(good, "", alg="none", header={"alg": "none", "typ": "JWT"}),
        "other_tenant_secret": jwt_encode(good, SECRETS["globex"]),
        "unknown_tenant": jwt_encode(dict(good, tenant="initech"), SECRETS["acme"]),
        "no_sub": jwt_encode({"tenant": "acme", "exp": now + 3600}, SECRETS["acme"]),
        "no_tenant": jwt_encode({"sub": "alice", "exp": now + 3600}, SECRETS["acme"]),
        "sub_not_string": jwt_encode(dict(good, sub=42), SECRETS["acme"]),
        "token_not_string": 12345,
        "rs256_header_hs_sig": jwt_encode(good, SECRETS["acme"],
                                          header={"alg": "RS256", "typ": "JWT"}),
    }


def test_invalid_tokens_get_101_and_close_4500(server):
    async def body():
        for name, tok in _bad_tokens().items():
            cl = await raw_client(server)
            params = {} if tok is None else {"token": tok}
            err = await cl.error("connect", params)
            assert err["code"] == 101, (name, err)
            assert err["temporary"] is False, (name, err)
            await expect_disconnect(cl, 4500)
            await cl.close()
    run(body())


def test_expired_token_gets_109_and_close_4504(server):
    async def body():
        cl = await raw_client(server)
        err = await cl.error("connect", {"token": make_token(ttl=-60)})
        assert err["code"] == 109, err
        push = await expect_disconnect(cl, 4504)
        assert push["reconnect"] is False
        await cl.close()
    run(body())


def test_command_before_connect_gets_101_and_close_4501(server):
    async def body():
        for method, params in [("subscribe", {"channel": "chat:x"}),
                               ("publish", {"channel": "chat:x", "data": 1}),
                               ("history", {"channel": "chat:x"})]:
            cl = await raw_client(server)
            err = await cl.error(method, params)
            assert err["code"] == 101, (method, err)
            await expect_disconnect(cl, 4501)
            await cl.close()
    run(body())


def test_no_subprotocol_offered_is_accepted(server):
    async def body():
        from parley_client import Client, open_ws
        cl = Client(await open_ws(server, subprotocols=None))
        assert cl.ws.subprotocol is None
        res = await cl.call("connect", {"token": make_token()})
        assert res["user"] == "alice"
        await cl.close()
    run(body())


def test_refresh_extends_expiry(server):
    async def body():
        cl = await connect(server, token=make_token(ttl=60))
        exp = int(time.time()) + 7200
        res = await cl.call("refresh", {"token": make_token(exp=exp)})
        assert res["expires_at"] == exp
        # the connection still works after the refresh
        ch = "chat:refresh"
        sub = await cl.subscribe(ch)
        assert sub["recovered"] is False
        await cl.close()
    run(body())


def test_refresh_with_bad_token_is_refused(server):
    async def body():
        cl = await connect(server)
        reply = await cl.rpc("refresh", {"token": "garbage"})
        assert "error" in reply and reply["error"]["code"] in (101, 109), reply
        await cl.close()
    run(body())


def test_globex_token_cannot_read_acme_claims(server):
    """A token signed with acme's secret but claiming globex is refused."""
    async def body():
        tok = jwt_encode({"sub": "mallory", "tenant": "globex",
                          "exp": int(time.time()) + 60}, SECRETS["acme"])
        cl = await raw_client(server)
        err = await cl.error("connect", {"token": tok})
        assert err["code"] == 101
        await expect_disconnect(cl, 4500)
        await cl.close()
    run(body())


def test_refused_tokens_say_why_and_are_logged(server):
    # The client learns the category (never its token echoed); the operator
    # gets one JSON log line per refusal with the reason, the tenant named,
    # the peer address and the connection id.
    import json as _json
    cases = [
        ("not-a-token", "token malformed", None),
        (make_token(secret="not-the-secret"), "bad signature", "acme"),
        (make_token(tenant="nope", secret="x"), "unknown tenant", "nope"),
        (jwt_encode({"tenant": "acme", "exp": int(time.time()) + 60}, SECRETS["acme"]),
         "missing sub", "acme"),
        (jwt_encode({"sub": "a", "tenant": "acme"}, "", alg="none"), "algorithm not allowed",
         "acme"),
    ]

    async def body():
        for tok, why, _ in cases:
            cl = await raw_client(server)
            err = await cl.error("connect", {"token": tok})
            assert err["code"] == 101 and err["message"] == f"unauthorized: {why}", (why, err)
            assert tok not in err["message"]
    run(body())
    lines = [_json.loads(l) for l in open(server.log_path) if l.startswith("{")]
    logged = [l for l in lines if l.get("event") == "auth_failed"]
    for tok, _, tenant in cases:
        assert not any(tok in _json.dumps(l) for l in logged), "a token was logged"
    for l in logged[-len(cases):]:
        assert l["remote"] == "127.0.0.1" and isinstance(l["conn"], int) and l["reason"], l
    assert {l["tenant"] for l in logged[-len(cases):]} >= {"acme", "nope"}


def test_permission_refusals_name_the_rule(server):
    async def body():
        cl = await connect(server, "alice")
        err = await cl.error("subscribe", {"channel": "dm:#bob,carol"})
        assert err["code"] == 103 and "user list" in err["message"], err
        err = await cl.error("publish", {"channel": "nope:x", "data": 1})
        assert err["code"] == 102 and "no namespace 'nope' is configured" in err["message"], err
        await cl.close()
    run(body())
