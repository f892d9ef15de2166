# The webhooks.* and routes.* API against the real server and a real
# receiver on loopback: endpoints and routes created, changed and deleted at
# run time (and kept across restarts, positions included), secrets generated,
# masked and rotated (both signatures verified by the receiver's own code),
# the configuration file's endpoints and routes read-only, bad input refused
# with the documented code and a message naming the member, tenants kept
# apart, the attempt log paged, replay, the audit log, and scopes.
import base64
import json
import os
import socket
import threading
import time

import pytest

from helpers_api import ADMIN_KEY, api, api_error, api_raw, full_key, scope_key, wait_until, with_api
from helpers_webhooks import SECRET, Receivers, hooks_config, publish, verify, wait_requests
from parley_client import SLOW, uniq

SECRET_B = "whsec_" + base64.b64encode(b"another-32-byte-secret-for-tests").decode()
FAST = ["0s", "200ms", "200ms"]
QUIET = 0.8 * SLOW  # how long "nothing more arrives" is watched


@pytest.fixture(scope="module")
def recv():
    made = Receivers()
    yield made
    made.close()


@pytest.fixture(scope="module")
def srv(module_factory, recv):
    """One server for most tests: the configured endpoint `ops` and route
    `alerts` (acme), namespace `ev` for the routes the tests create, each
    test on its own channels."""
    cfg_r = recv()
    live = {"name": "live", "class": "ephemeral"}
    s = module_factory(hooks_config(cfg_r.url, schedule=FAST, ns_extra=[{"name": "ev"}, live]),
                       name="hooksapi")
    return s


def mk_hook(srv, url, tenant="acme", **spec):
    wid = spec.pop("id", None) or uniq("w")
    body = {"id": wid, "url": url, "retry_schedule": FAST, **spec}
    return api(srv, "webhooks.create", body, tenant=tenant)


def mk_route(srv, wid, prefix, tenant="acme", **spec):
    rid = spec.pop("id", None) or uniq("r")
    body = {"id": rid, "match": {"channel": f"ev:{prefix}"}, "action": {"webhook": wid},
            **spec}
    api(srv, "routes.create", body, tenant=tenant)
    return rid


def listed_hook(srv, wid, tenant="acme"):
    found = [w for w in api(srv, "webhooks.list", {}, tenant=tenant)["webhooks"]
             if w["id"] == wid]
    return found[0] if found else None


def listed_route(srv, rid, tenant="acme"):
    found = [r for r in api(srv, "routes.list", {}, tenant=tenant)["routes"] if r["id"] == rid]
    return found[0] if found else None


def quiet(r, n):
    """Nothing beyond n requests arrives for a while."""
    time.sleep(QUIET)
    assert len(r.requests) == n, [json.loads(q["body"])["data"] for q in r.requests]


def data_of(r):
    return [json.loads(q["body"])["data"] for q in r.requests]


def sigs(q):
    return q["headers"]["webhook-signature"].split()


def wait_delivered(srv, wid, n):
    wait_until(lambda: api(srv, "webhooks.health", {"id": wid})["deliveries"]["delivered"] == n,
               10 * SLOW, f"{n} delivered to {wid}")


# ---------------------------------------------------------------- create, list

def test_create_list_route_and_deliver(srv, recv):
    r = recv()
    given = mk_hook(srv, r.url, secret=SECRET_B)
    assert given["secret"] == [{"secret": SECRET_B, "expires": None}]
    made = mk_hook(srv, r.url)
    assert len(made["secret"]) == 1
    secret = made["secret"][0]["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    assert made["url"] == r.url and made["retry_schedule"] == FAST and made["enabled"] is True

    listing = api(srv, "webhooks.list", {})
    text = json.dumps(listing)
    assert secret not in text and SECRET_B not in text and SECRET not in text, \
        "webhooks.list must never show a whole secret"
    for w, whole in ((given, SECRET_B), (made, secret)):
        shown = listed_hook(srv, w["id"])
        assert shown["source"] == "api" and shown["url"] == r.url
        hint = shown["secret"][0]["secret"]
        assert hint.startswith("whsec_") and hint.endswith(whole[-4:]) and hint != whole, hint
        assert shown["health"]["state"] == "healthy"
    assert listed_hook(srv, "ops")["source"] == "config"

    rid = mk_route(srv, made["id"], "cl")
    route = listed_route(srv, rid)
    assert route["source"] == "api" and route["enabled"] is True
    assert route["action"] == {"webhook": made["id"]}
    assert route["match"] == {"channel": "ev:cl"}
    res = publish(srv, "ev:cl", {"n": 1})
    publish(srv, "ev:other", {"n": 2})  # another channel: not matched
    q = wait_requests(r, 1)[0]
    quiet(r, 1)
    assert verify(secret, q["headers"], q["body"]), q["headers"]
    assert not verify(SECRET_B, q["headers"], q["body"])
    assert q["headers"]["webhook-id"] == f"{res['id']}.{made['id']}"
    assert json.loads(q["body"])["data"] == {"n": 1}
    wait_until(lambda: listed_route(srv, rid)["matched"] == 1, 5 * SLOW, "matched counted")


def test_create_existing_id_is_409(srv, recv):
    r = recv()
    w = mk_hook(srv, r.url)
    st, err = api_error(srv, "webhooks.create", {"id": w["id"], "url": "http://127.0.0.1:1/x"})
    assert (st, err["code"]) == (409, 117) and w["id"] in err["message"], err
    assert listed_hook(srv, w["id"])["url"] == r.url  # the first one is kept
    st, err = api_error(srv, "webhooks.create", {"id": "ops", "url": r.url})
    assert (st, err["code"]) == (409, 117), err
    rid = mk_route(srv, w["id"], "dup")
    st, err = api_error(srv, "routes.create", {"id": rid, "action": {"webhook": w["id"]}})
    assert (st, err["code"]) == (409, 117) and rid in err["message"], err
    st, err = api_error(srv, "routes.create", {"id": "alerts", "action": {"webhook": w["id"]}})
    assert (st, err["code"]) == (409, 117), err


# ---------------------------------------------------------------- restart

def test_api_endpoints_and_routes_survive_restart(server_factory, recv):
    cfg_r, r = recv(), recv()
    srv = server_factory(hooks_config(cfg_r.url, schedule=FAST, ns_extra=[{"name": "ev"}]))
    w = mk_hook(srv, r.url)
    secret = w["secret"][0]["secret"]
    rid = mk_route(srv, w["id"], "rs")
    before = [publish(srv, "ev:rs", {"n": i})["id"] for i in range(3)]
    wait_requests(r, 3)
    wait_delivered(srv, w["id"], 3)
    srv.restart()
    shown = listed_hook(srv, w["id"])
    assert shown and shown["source"] == "api" and shown["url"] == r.url
    assert shown["retry_schedule"] == FAST
    route = listed_route(srv, rid)
    assert route and route["source"] == "api" and route["action"] == {"webhook": w["id"]}
    # Positions survive: what was routed and delivered before a restart is
    # not routed again after it.
    more = [publish(srv, "ev:rs", {"n": i})["id"] for i in range(3, 5)]
    wait_requests(r, 5)
    wait_delivered(srv, w["id"], 5)
    srv.restart()
    after = [publish(srv, "ev:rs", {"n": i})["id"] for i in range(5, 7)]
    wait_requests(r, 7)
    wait_delivered(srv, w["id"], 7)
    quiet(r, 7)
    ids = [json.loads(q["body"])["id"] for q in r.requests]
    assert sorted(ids) == sorted(before + more + after), "each pub delivered exactly once"
    assert all(verify(secret, q["headers"], q["body"]) for q in r.requests)
    # Pubs published just before a restart: each delivered after it at the
    # latest. An attempt in flight when the server stops is cancelled and
    # sent again, so a receiver may see it twice, with the same webhook-id.
    late = [publish(srv, "ev:rs", {"n": i})["id"] for i in range(7, 9)]
    srv.restart()
    wait_delivered(srv, w["id"], 9)
    quiet(r, len(r.requests))
    seen = {}
    for q in r.requests[7:]:
        seen.setdefault(q["headers"]["webhook-id"], set()).add(q["body"])
    assert sorted(seen) == sorted(f"{i}.{w['id']}" for i in late), seen
    assert all(len(bodies) == 1 for bodies in seen.values())
    assert not cfg_r.requests  # the configured route matches alerts:** only


# ---------------------------------------------------------------- update

def test_update_url_schedule_and_invalid_changes(srv, recv):
    ra, rb = recv(), recv()
    w = mk_hook(srv, ra.url)
    wid = w["id"]
    mk_route(srv, wid, "up")
    publish(srv, "ev:up", {"n": 1})
    wait_requests(ra, 1)
    upd = api(srv, "webhooks.update", {"id": wid, "url": rb.url})
    assert upd["url"] == rb.url and upd["source"] == "api"
    assert upd["secret"][0]["secret"] != w["secret"][0]["secret"]  # masked again
    publish(srv, "ev:up", {"n": 2})
    q = wait_requests(rb, 1)[0]
    assert json.loads(q["body"])["data"] == {"n": 2}
    assert verify(w["secret"][0]["secret"], q["headers"], q["body"])  # the secret is kept
    assert len(ra.requests) == 1

    api(srv, "webhooks.update", {"id": wid, "retry_schedule": ["0s", "100ms", "100ms", "100ms"],
                                 "max_attempts": 2})
    shown = listed_hook(srv, wid)
    assert shown["retry_schedule"] == ["0s", "100ms", "100ms", "100ms"]
    assert shown["max_attempts"] == 2 and shown["url"] == rb.url
    rb.script = [{"status": 500}]
    res = publish(srv, "ev:up", {"n": 3})
    did = f"{res['id']}.{wid}"
    wait_until(lambda: api(srv, "webhooks.health", {"id": wid})["deliveries"]["dead"] == 1,
               10 * SLOW, "dead after 2 attempts")
    assert [a["status"] for a in api(srv, "webhooks.attempts", {"delivery": did})["attempts"]] \
        == [500, 500]
    assert len(rb.requests) == 3

    bad = [({"url": "ftp://x/y"}, "url"), ({"max_attempts": 99}, "max_attempts"),
           ({"max_attempts": 5}, "max_attempts"), ({"retry_schedule": []}, "retry_schedule"),
           ({"bogus": 1}, "bogus"), ({"enabled": "yes"}, "enabled"),
           ({"secret": "nope"}, "secret"), ({"timeout": "1ms"}, "timeout")]
    for change, member in bad:
        st, err = api_error(srv, "webhooks.update", {"id": wid, **change})
        assert (st, err["code"]) == (400, 107) and member in err["message"], (change, err)
    kept = listed_hook(srv, wid)
    assert kept == {**shown, "health": kept["health"]}, "a refused update changes nothing"
    st, err = api_error(srv, "webhooks.update", {"id": "nosuch" + uniq(), "enabled": True})
    assert (st, err["code"]) == (404, 116), err
    st, err = api_error(srv, "webhooks.update", {"enabled": True})
    assert (st, err["code"]) == (400, 107) and "id" in err["message"], err


# ---------------------------------------------------------------- rotation

def test_rotate_secret_signs_with_both_then_drops_the_old(srv, recv):
    r = recv()
    w = mk_hook(srv, r.url, secret=SECRET_B)
    wid = w["id"]
    mk_route(srv, wid, "rot")
    t0 = time.time() * 1000
    rot = api(srv, "webhooks.rotate_secret", {"id": wid})
    new = rot["secret"]
    assert new.startswith("whsec_") and new != SECRET_B
    day = 24 * 3600 * 1000
    assert abs(rot["previous_expire_at"] - (t0 + day)) < 60_000, rot
    shown = listed_hook(srv, wid)["secret"]
    assert [s["expires"] for s in shown] == [None, rot["previous_expire_at"]]
    assert new not in json.dumps(listed_hook(srv, wid))
    publish(srv, "ev:rot", {"n": 1})
    q = wait_requests(r, 1)[0]
    assert len(sigs(q)) == 2 and all(s.startswith("v1,") for s in sigs(q)), sigs(q)
    assert verify(new, q["headers"], q["body"]) and verify(SECRET_B, q["headers"], q["body"])

    # A given secret, the previous ones kept one second only.
    rot2 = api(srv, "webhooks.rotate_secret", {"id": wid, "secret": SECRET,
                                               "expire_previous_in": "1s"})
    assert rot2["secret"] == SECRET
    assert abs(rot2["previous_expire_at"] - (time.time() * 1000 + 1000)) < 5000 * SLOW
    publish(srv, "ev:rot", {"n": 2})
    q = wait_requests(r, 2)[1]
    if time.time() * 1000 < rot2["previous_expire_at"] - 100:  # not yet expired: 3 sign
        assert len(sigs(q)) == 3 and verify(new, q["headers"], q["body"])
    time.sleep(max(0, rot2["previous_expire_at"] / 1000 - time.time()) + 0.3)
    publish(srv, "ev:rot", {"n": 3})
    q = wait_requests(r, 3)[2]
    assert len(sigs(q)) == 1, sigs(q)
    assert verify(SECRET, q["headers"], q["body"])
    assert not verify(new, q["headers"], q["body"])
    assert not verify(SECRET_B, q["headers"], q["body"])
    assert all(json.loads(x["body"])["data"]["n"] == i + 1 for i, x in enumerate(r.requests))

    for body in ({"id": wid, "expire_previous_in": "soon"}, {"id": wid, "secret": 5},
                 {"id": wid, "secret": "whsec_!!!"}, {"id": wid, "secret": "nope"}):
        st, err = api_error(srv, "webhooks.rotate_secret", body)
        assert (st, err["code"]) == (400, 107) and "secret" in err["message"], (body, err)
    assert listed_hook(srv, wid)["secret"][0]["secret"].endswith(SECRET[-4:])
    st, err = api_error(srv, "webhooks.rotate_secret", {"id": "nosuch"})
    assert (st, err["code"]) == (404, 116), err


# ---------------------------------------------------------------- delete

def test_delete_refused_while_a_route_names_it(srv, recv):
    r = recv()
    wid = mk_hook(srv, r.url)["id"]
    rid = mk_route(srv, wid, "del")
    st, err = api_error(srv, "webhooks.delete", {"id": wid})
    assert (st, err["code"]) == (409, 117) and rid in err["message"], err
    assert listed_hook(srv, wid)
    assert api(srv, "routes.delete", {"id": rid}) == {"deleted": True}
    assert listed_route(srv, rid) is None
    publish(srv, "ev:del", {"n": 1})
    quiet(r, 0)  # the route is gone: nothing is sent
    assert api(srv, "webhooks.delete", {"id": wid}) == {"deleted": True}
    assert listed_hook(srv, wid) is None
    st, err = api_error(srv, "webhooks.health", {"id": wid})
    assert (st, err["code"]) == (404, 116) and wid in err["message"], err
    st, err = api_error(srv, "webhooks.delete", {"id": wid})
    assert (st, err["code"]) == (404, 116), err
    st, err = api_error(srv, "routes.delete", {"id": rid})
    assert (st, err["code"]) == (404, 116), err
    # The id is free again.
    assert mk_hook(srv, r.url, id=wid)["id"] == wid
    assert listed_hook(srv, wid)["source"] == "api"


def test_configured_endpoint_and_route_are_read_only(srv, recv):
    r = recv()
    for method, body in (("webhooks.update", {"id": "ops", "url": r.url}),
                         ("webhooks.update", {"id": "ops", "enabled": False}),
                         ("webhooks.delete", {"id": "ops"}),
                         ("webhooks.rotate_secret", {"id": "ops"}),
                         ("routes.update", {"id": "alerts", "enabled": False}),
                         ("routes.delete", {"id": "alerts"})):
        st, err = api_error(srv, method, body)
        assert (st, err["code"]) == (409, 117), (method, err)
        assert "configuration file" in err["message"], (method, err)
    ops = api(srv, "webhooks.update", {"id": "ops", "enabled": True})
    assert ops["source"] == "config" and ops["url"] != r.url and ops["enabled"] is True
    assert listed_hook(srv, "ops")["secret"][0]["secret"].endswith(SECRET[-4:])
    alerts = listed_route(srv, "alerts")
    assert alerts["source"] == "config" and alerts["enabled"] is True
    # A route of the API may still send to a configured endpoint.
    rid = mk_route(srv, "ops", "cfgops")
    assert listed_route(srv, rid)["action"] == {"webhook": "ops"}
    api(srv, "routes.delete", {"id": rid})


# ---------------------------------------------------------------- routes

def test_route_update_disable_enable_delete(srv, recv):
    r = recv()
    wid = mk_hook(srv, r.url)["id"]
    rid = mk_route(srv, wid, "ru-a")
    publish(srv, "ev:ru-a", {"n": 1})
    wait_requests(r, 1)
    res = api(srv, "routes.update", {"id": rid, "match": {"channel": "ev:ru-b"}})
    assert res == listed_route(srv, rid)  # the route as routes.list shows it
    assert res["match"] == {"channel": "ev:ru-b"} and res["enabled"] is True
    publish(srv, "ev:ru-a", {"n": 2})
    publish(srv, "ev:ru-b", {"n": 3})
    wait_requests(r, 2)
    quiet(r, 2)
    assert data_of(r) == [{"n": 1}, {"n": 3}]

    assert api(srv, "routes.update", {"id": rid, "enabled": False})["enabled"] is False
    route = listed_route(srv, rid)
    assert route["enabled"] is False and route["match"] == {"channel": "ev:ru-b"}
    publish(srv, "ev:ru-b", {"n": 4})
    quiet(r, 2)
    api(srv, "routes.update", {"id": rid, "enabled": True})
    publish(srv, "ev:ru-b", {"n": 5})
    wait_requests(r, 3)
    quiet(r, 3)
    # What was published while it was disabled stays unmatched.
    assert data_of(r) == [{"n": 1}, {"n": 3}, {"n": 5}]

    # A where clause, and the action moved to another endpoint.
    r2 = recv()
    w2 = mk_hook(srv, r2.url)["id"]
    api(srv, "routes.update", {"id": rid, "match": {"channel": "ev:ru-b",
                                                   "where": {"data.sev": {"$in": ["high"]}}},
                               "action": {"webhook": w2}})
    publish(srv, "ev:ru-b", {"n": 6, "sev": "low"})
    publish(srv, "ev:ru-b", {"n": 7, "sev": "high"})
    wait_requests(r2, 1)
    quiet(r2, 1)
    assert data_of(r2) == [{"n": 7, "sev": "high"}] and len(r.requests) == 3

    bad = [({"match": {"chanel": "x"}}, "match.chanel"), ({"enabled": 1}, "enabled"),
           ({"action": {"webhook": "nosuch"}}, "nosuch")]
    for change, frag in bad:
        st, err = api_error(srv, "routes.update", {"id": rid, **change})
        assert (st, err["code"]) == (400, 107) and frag in err["message"], (change, err)
    assert listed_route(srv, rid)["action"] == {"webhook": w2}
    st, err = api_error(srv, "routes.update", {"id": "nosuch", "enabled": True})
    assert (st, err["code"]) == (404, 116), err

    api(srv, "routes.delete", {"id": rid})
    publish(srv, "ev:ru-b", {"n": 8, "sev": "high"})
    quiet(r2, 1)


def test_route_publish_action(srv):
    src, dst = "ev:pa" + uniq(), "ev:copy" + uniq()
    rid = uniq("r")
    api(srv, "routes.create", {"id": rid, "match": {"channel": src}, "action": {"publish": dst}})
    assert listed_route(srv, rid)["action"] == {"publish": dst}
    publish(srv, src, {"n": 1})
    pubs = wait_until(lambda: api(srv, "history", {"channel": dst})["pubs"], 10 * SLOW,
                      "the copy")
    assert pubs[0]["data"] == {"n": 1} and pubs[0]["headers"]["parley-route"] == rid
    api(srv, "routes.delete", {"id": rid})


# ---------------------------------------------------------------- bad input

BAD_HOOKS = [
    ({"bogus": 1}, "bogus"),
    ({"id": "bad id"}, "id"),
    ({"id": "a/b"}, "id"),
    ({"id": "x" * 65}, "id"),
    ({"id": ""}, "id"),
    ({"id": 5}, "id"),
    ({"url": "ftp://127.0.0.1/x"}, "url"),
    ({"url": "http://user:pass@127.0.0.1/x"}, "url"),
    ({"url": "http://127.0.0.1/a b"}, "url"),
    ({"url": "http://127.0.0.1/" + "a" * 3000}, "url"),
    ({"url": "http:///x"}, "url"),
    ({"url": None}, "url"),
    ({"secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "secret"),
    ({"secret": "whsec_not base64!!"}, "secret"),
    ({"secret": "whpk_" + base64.b64encode(b"k" * 32).decode()}, "secret"),
    ({"secret": []}, "secret"),
    ({"secret": [SECRET] * 9}, "secret"),
    ({"secret": [{"secret": SECRET, "expires": "tomorrow"}]}, "secret"),
    ({"retry_schedule": "0s"}, "retry_schedule"),
    ({"retry_schedule": ["0s", "soon"]}, "retry_schedule[1]"),
    ({"retry_schedule": ["-1s"]}, "retry_schedule"),
    ({"retry_schedule": ["1s"] * 65}, "retry_schedule"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": 65}, "max_attempts"),
    ({"max_attempts": 4}, "max_attempts"),  # the schedule (FAST) has 3
    ({"max_attempts": "2"}, "max_attempts"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"max_in_flight": 1025}, "max_in_flight"),
    ({"rate": -1}, "rate"),
    ({"rate": 1.5}, "rate"),
    ({"timeout": "1ms"}, "timeout"),
    ({"timeout": "10m"}, "timeout"),
    ({"timeout": 5}, "timeout"),
    ({"connect_timeout": "20s", "timeout": "10s"}, "connect_timeout"),
    ({"ordering": "bogus"}, "ordering"),
    ({"ordering": "data."}, "ordering"),
    ({"enabled": "true"}, "enabled"),
]


@pytest.mark.parametrize("change,member", BAD_HOOKS,
                         ids=[f"{i}-{m}" for i, (_, m) in enumerate(BAD_HOOKS)])
def test_bad_webhook_spec(srv, change, member):
    wid = uniq("bad")
    body = {"id": wid, "url": "http://127.0.0.1:9/hook", "retry_schedule": FAST, **change}
    st, err = api_error(srv, "webhooks.create", body)
    assert (st, err["code"]) == (400, 107), (change, err)
    assert member in err["message"], (change, err)
    assert err["temporary"] is False
    assert listed_hook(srv, wid) is None
    assert srv.http("GET", "/healthz")[0] == 200


def test_params_not_an_object_and_duplicate_keys(srv):
    for method in ("webhooks.create", "routes.create", "webhooks.update"):
        st, err = api_error(srv, method, [1, 2])
        assert (st, err["code"]) == (400, 107), (method, err)
    raw = '{"id": "dupk", "url": "http://127.0.0.1:9/a", "url": "http://127.0.0.1:9/b"}'
    st, reply = api_raw(srv, "webhooks.create", raw, key="pk_acme_all")
    assert st == 400 and reply["error"]["code"] == 107, reply
    assert "duplicate" in reply["error"]["message"], reply
    assert listed_hook(srv, "dupk") is None
    raw = '{"id": "dupr", "action": {"webhook": "ops"}, "match": {"channel": "a", "channel": "b"}}'
    st, reply = api_raw(srv, "routes.create", raw, key="pk_acme_all")
    assert st == 400 and reply["error"]["code"] == 107, reply
    assert listed_route(srv, "dupr") is None
    st, reply = api_raw(srv, "webhooks.create", "{not json", key="pk_acme_all")
    assert st == 400, reply


BAD_ROUTES = [
    ({"match": {"where": {"data.sev": {"$inn": [1]}}}}, "match.where.data.sev.$inn"),
    ({"match": {"channel": "ev:**:x"}}, "match.channel"),
    ({"match": {"channel": ["ev:*", "ev:b*"]}}, "match.channel[1]"),
    ({"match": {"chanel": "ev:x"}}, "match.chanel"),
    ({"match": "ev:*"}, "match"),
    ({"action": {"webhook": "nosuch"}}, "nosuch"),
    ({"action": {"webhook": "ops", "publish": "ev:x"}}, "action"),
    ({"action": {}}, "action"),
    ({"action": "ops"}, "action"),
    ({"action": {"webhook": "bad id"}}, "action.webhook"),
    ({"action": {"publish": "ev:bad channel"}}, "action.publish"),
    ({"action": {"publish": "nons:x"}}, "namespace"),
    ({"enabled": "no"}, "enabled"),
    ({"extra": 1}, "extra"),
    ({"id": "x" * 65}, "id"),
    ({"id": "a b"}, "id"),
]


@pytest.mark.parametrize("change,frag", BAD_ROUTES,
                         ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_ROUTES)])
def test_bad_route_spec(srv, change, frag):
    rid = uniq("bad")
    body = {"id": rid, "match": {"channel": "ev:x"}, "action": {"webhook": "ops"}, **change}
    st, err = api_error(srv, "routes.create", body)
    assert (st, err["code"]) == (400, 107), (change, err)
    assert frag in err["message"], (change, err)
    assert listed_route(srv, rid) is None
    assert srv.http("GET", "/healthz")[0] == 200


def test_hostile_ids(srv, recv):
    hostile = ["x" * 10000, "a\x00b", "a\x01b", "a\nb", "\u00e9t\u00e9", "\U0001F600",
               "../../etc", "a'b\"c", "%00", "a\\b"]
    for hid in hostile:
        st, err = api_error(srv, "webhooks.create", {"id": hid, "url": "http://127.0.0.1:9/x"})
        # NUL in a string: the params as a whole are unreadable (JSON text
        # the server refuses), said so.
        what = "not readable" if "\x00" in hid else "id"
        assert (st, err["code"]) == (400, 107) and what in err["message"], (hid[:20], err)
        st, err = api_error(srv, "routes.create", {"id": hid, "action": {"webhook": "ops"}})
        assert (st, err["code"]) == (400, 107), (hid[:20], err)
        for method in ("webhooks.health", "webhooks.update", "webhooks.delete",
                       "webhooks.rotate_secret", "routes.update", "routes.delete"):
            st, err = api_error(srv, method, {"id": hid, "enabled": True})
            want = (400, 107) if "\x00" in hid else (404, 116)
            assert (st, err["code"]) == want, (method, hid[:20], err)
            assert len(err["message"]) < 300, err
        st, err = api_error(srv, "webhooks.attempts", {"delivery": hid})
        assert (st, err["code"]) == want and len(err["message"]) < 300, err
        st, err = api_error(srv, "webhooks.replay", {"delivery": hid})
        assert (st, err["code"]) == want, err
    # Wrong types where ids belong.
    for method in ("webhooks.health", "webhooks.delete", "routes.delete"):
        for v in (5, None, ["ops"], {"id": "ops"}):
            st, err = api_error(srv, method, {"id": v})
            assert (st, err["code"]) == (400, 107) and "id" in err["message"], (method, v, err)
    names = [w["id"] for w in api(srv, "webhooks.list", {})["webhooks"]]
    assert not set(names) & set(hostile)
    assert srv.http("GET", "/healthz")[0] == 200


# ---------------------------------------------------------------- tenants

def test_other_tenant_cannot_see_or_touch(srv, recv):
    r = recv()
    wid = mk_hook(srv, r.url)["id"]
    rid = mk_route(srv, wid, "ten")
    g = dict(tenant="globex")
    assert listed_hook(srv, wid, **g) is None and listed_route(srv, rid, **g) is None
    assert listed_hook(srv, "ops", **g) is None
    for method, body in (("webhooks.health", {"id": wid}),
                         ("webhooks.update", {"id": wid, "url": "http://127.0.0.1:1/x"}),
                         ("webhooks.rotate_secret", {"id": wid}),
                         ("webhooks.delete", {"id": wid}),
                         ("webhooks.recover", {"endpoint": wid, "since": 0}),
                         ("routes.update", {"id": rid, "enabled": False}),
                         ("routes.delete", {"id": rid})):
        st, err = api_error(srv, method, body, **g)
        assert (st, err["code"]) == (404, 116), (method, err)
    st, err = api_error(srv, "routes.create", {"id": uniq("r"), "action": {"webhook": wid}}, **g)
    assert (st, err["code"]) == (400, 107) and "no webhook" in err["message"], err
    # globex may use the same ids for its own.
    gr = recv()
    mk_hook(srv, gr.url, id=wid, **g)
    assert listed_hook(srv, wid, **g)["url"] == gr.url
    mk_route(srv, wid, "ten", id=rid, **g)
    # acme's are untouched; a pub of acme reaches acme's endpoint only.
    assert listed_hook(srv, wid)["url"] == r.url
    assert listed_route(srv, rid)["enabled"] is True
    publish(srv, "ev:ten", {"n": 1})
    wait_requests(r, 1)
    quiet(gr, 0)
    assert json.loads(r.requests[0]["body"])["tenant"] == "acme"


# ---------------------------------------------------------------- attempts, replay

def test_attempts_paging(srv, recv):
    r = recv({"status": 500}, {"status": 502, "body": "bad gw"}, {"status": 200})
    wid = mk_hook(srv, r.url, retry_schedule=["0s", "100ms", "100ms"])["id"]
    mk_route(srv, wid, "att")
    res = publish(srv, "ev:att", {"n": 1})
    did = f"{res['id']}.{wid}"
    wait_requests(r, 3)
    wait_delivered(srv, wid, 1)
    full = api(srv, "webhooks.attempts", {"delivery": did})
    assert [a["attempt"] for a in full["attempts"]] == [1, 2, 3] and full["more"] is False
    assert [a["status"] for a in full["attempts"]] == [500, 502, 200]
    assert full["attempts"][1]["body"] == "bad gw"
    p1 = api(srv, "webhooks.attempts", {"delivery": did, "limit": 2})
    assert [a["attempt"] for a in p1["attempts"]] == [1, 2] and p1["more"] is True
    p2 = api(srv, "webhooks.attempts", {"delivery": did, "limit": 2, "after": 2})
    assert [a["attempt"] for a in p2["attempts"]] == [3] and p2["more"] is False
    p3 = api(srv, "webhooks.attempts", {"delivery": did, "after": 3})
    assert p3 == {"attempts": [], "more": False}
    one = api(srv, "webhooks.attempts", {"delivery": did, "limit": 1, "after": 1})
    assert [a["attempt"] for a in one["attempts"]] == [2] and one["more"] is True
    assert api(srv, "webhooks.attempts", {"delivery": did, "limit": 100})["more"] is False
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "2"}, {"after": -1}, {"after": 1.5}):
        st, err = api_error(srv, "webhooks.attempts", {"delivery": did, **bad})
        assert (st, err["code"]) == (400, 107), (bad, err)
        assert ("limit" if "limit" in bad else "after") in err["message"], err
    st, err = api_error(srv, "webhooks.attempts", {})
    assert (st, err["code"]) == (400, 107) and "delivery" in err["message"], err
    st, err = api_error(srv, "webhooks.attempts", {"delivery": did}, tenant="globex")
    assert (st, err["code"]) == (404, 116), err


def test_replay_delivered_is_409_dead_is_sent_again(srv, recv):
    r = recv({"status": 200})
    wid = mk_hook(srv, r.url, retry_schedule=["0s"])["id"]
    mk_route(srv, wid, "rep")
    ok = publish(srv, "ev:rep", {"n": 1})
    wait_requests(r, 1)
    wait_delivered(srv, wid, 1)
    st, err = api_error(srv, "webhooks.replay", {"delivery": f"{ok['id']}.{wid}"})
    assert (st, err["code"]) == (409, 117), err
    r.script = [{"status": 200}, {"status": 500}, {"status": 200}]
    dead = publish(srv, "ev:rep", {"n": 2})
    did = f"{dead['id']}.{wid}"
    wait_requests(r, 2)
    wait_until(lambda: api(srv, "webhooks.health", {"id": wid})["deliveries"]["dead"] == 1,
               10 * SLOW, "dead")
    st, err = api_error(srv, "webhooks.replay", {"delivery": did}, tenant="globex")
    assert (st, err["code"]) == (404, 116), err
    assert api(srv, "webhooks.replay", {"delivery": did}) == {"queued": True}
    reqs = wait_requests(r, 3)
    assert reqs[2]["headers"]["webhook-id"] == did == reqs[1]["headers"]["webhook-id"]
    assert reqs[2]["body"] == reqs[1]["body"]
    wait_delivered(srv, wid, 2)
    assert [a["status"] for a in api(srv, "webhooks.attempts", {"delivery": did})["attempts"]] \
        == [500, 200]
    st, err = api_error(srv, "webhooks.replay", {"delivery": did})
    assert (st, err["code"]) == (409, 117), err
    st, err = api_error(srv, "webhooks.replay", {})
    assert (st, err["code"]) == (400, 107) and "delivery" in err["message"], err
    quiet(r, 3)


def test_recover_bad_input(srv):
    for body, member in (({"since": 0}, "endpoint"), ({"endpoint": "ops"}, "since"),
                         ({"endpoint": "ops", "since": "yesterday"}, "since"),
                         ({"endpoint": "ops", "since": 0, "dry_run": "yes"}, "dry_run")):
        st, err = api_error(srv, "webhooks.recover", body)
        assert (st, err["code"]) == (400, 107) and member in err["message"], (body, err)
    st, err = api_error(srv, "webhooks.recover", {"endpoint": "nosuch", "since": 0})
    assert (st, err["code"]) == (404, 116), err
    dry = api(srv, "webhooks.recover", {"endpoint": "ops", "since": 0, "dry_run": True})
    assert dry["dry_run"] is True and dry["queued"] == 0


# ---------------------------------------------------------------- audit

def test_mutating_calls_are_audited_read_only_are_not(srv, recv):
    path = os.path.join(srv.data_dir, "audit.log")

    def records():
        # The server's own records (an endpoint of another test disabled
        # meanwhile) are not this test's calls.
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [rec for rec in (json.loads(line) for line in f.read().splitlines())
                    if rec["actor"] != "server"]
    r = recv()
    wid, rid = uniq("aud"), uniq("aud")
    calls = [
        ("webhooks.create", {"id": wid, "url": r.url, "retry_schedule": ["0s"]}, wid),
        ("webhooks.update", {"id": wid, "max_attempts": 1}, wid),
        ("webhooks.rotate_secret", {"id": wid}, wid),
        ("routes.create", {"id": rid, "match": {"channel": "ev:aud"},
                           "action": {"webhook": wid}}, rid),
        ("routes.update", {"id": rid, "enabled": False}, rid),
        ("webhooks.recover", {"endpoint": wid, "since": 0, "dry_run": True}, wid),
        ("routes.delete", {"id": rid}, rid),
        ("webhooks.delete", {"id": wid}, wid),
    ]
    before = len(records())
    for method, body, _ in calls:
        api(srv, method, body)
    # A refused change is audited too: the record is written before the call.
    api_error(srv, "webhooks.replay", {"delivery": "nosuch.x"})
    calls.append(("webhooks.replay", None, "nosuch.x"))
    recs = records()[before:]
    assert [(x["action"], x["target"], x["tenant"]) for x in recs] == \
        [(m, t, "acme") for m, _, t in calls], recs
    before = len(records())
    api(srv, "webhooks.list", {})
    api(srv, "routes.list", {})
    api(srv, "webhooks.health", {"id": "ops"})
    api_error(srv, "webhooks.attempts", {"delivery": "nosuch.x"})
    assert len(records()) == before, records()[before:]


# ---------------------------------------------------------------- scopes

def test_scopes_webhooks_and_routes(srv):
    hooks_key, routes_key = scope_key("acme", "webhooks"), scope_key("acme", "routes")
    pub_key = scope_key("acme", "publish")
    assert "webhooks" in api(srv, "webhooks.list", {}, key=hooks_key)
    assert "routes" in api(srv, "routes.list", {}, key=routes_key)
    wmethods = ["webhooks.list", "webhooks.create", "webhooks.update", "webhooks.delete",
                "webhooks.health", "webhooks.attempts", "webhooks.replay", "webhooks.recover",
                "webhooks.rotate_secret"]
    rmethods = ["routes.list", "routes.create", "routes.update", "routes.delete"]
    for key, allowed in ((hooks_key, wmethods), (routes_key, rmethods), (pub_key, [])):
        for m in wmethods + rmethods:
            st, reply = api_raw(srv, m, {"id": "nosuch"}, key=key)
            if m in allowed:
                assert st != 403, (key, m, reply)
            else:
                assert st == 403 and reply["error"]["code"] == 103, (key, m, st, reply)
    # The routes key creates a route to an endpoint the webhooks key made.
    wid = uniq("sc")
    api(srv, "webhooks.create", {"id": wid, "url": "http://127.0.0.1:9/x"}, key=hooks_key)
    rid = uniq("sc")
    api(srv, "routes.create", {"id": rid, "match": {"channel": "ev:sc"},
                               "action": {"webhook": wid}}, key=routes_key)
    api(srv, "routes.delete", {"id": rid}, key=routes_key)
    api(srv, "webhooks.delete", {"id": wid}, key=hooks_key)


def test_route_sees_pubs_published_right_after_create(srv):
    """A pub committed after routes.create answered is evaluated by the new
    route, even while other pubs are committed all the time."""
    stop = threading.Event()

    def noise():
        while not stop.is_set():
            publish(srv, "ev:noise", {"n": 0})
    t = threading.Thread(target=noise, daemon=True)
    t.start()
    try:
        rids = []
        for i in range(20):
            rid, ch = uniq("race"), "ev:race" + uniq()
            api(srv, "routes.create", {"id": rid, "match": {"channel": ch},
                                       "action": {"publish": "ev:sink" + uniq()}})
            publish(srv, ch, {"n": i})
            rids.append(rid)
    finally:
        stop.set()
        t.join()
    wait_until(lambda: all(listed_route(srv, rid)["matched"] == 1 for rid in rids), 10 * SLOW,
               f"every new route matched its pub "
               f"{[listed_route(srv, rid)['matched'] for rid in rids]}")
    for rid in rids:
        api(srv, "routes.delete", {"id": rid})


def test_publish_action_to_an_ephemeral_channel_is_refused(srv):
    status, err = api_error(srv, "routes.create", {"id": uniq("eph"), "match": {},
                                                   "action": {"publish": "live:x"}})
    assert status == 400 and err["code"] == 107 and "ephemeral" in err["message"], err


def test_admin_key_names_the_tenant(srv, recv):
    r = recv()
    wid = uniq("adm")
    made = api(srv, "webhooks.create", {"tenant": "acme", "id": wid, "url": r.url},
               key=ADMIN_KEY)
    assert made["id"] == wid and made["source"] == "api"
    assert made["secret"][0]["secret"].startswith("whsec_")  # whole, once
    listed = api(srv, "webhooks.list", {}, tenant="acme")["webhooks"]
    assert any(w["id"] == wid for w in listed)
    rid = uniq("adm")
    route = api(srv, "routes.create", {"tenant": "acme", "id": rid, "match": {"channel": "ev:adm"},
                                       "action": {"webhook": wid}}, key=ADMIN_KEY)
    assert route["id"] == rid and route["action"] == {"webhook": wid} and route["enabled"]
    api(srv, "routes.delete", {"tenant": "acme", "id": rid}, key=ADMIN_KEY)
    api(srv, "webhooks.delete", {"tenant": "acme", "id": wid}, key=ADMIN_KEY)


def test_the_first_route_sees_a_pub_pipelined_right_after_create(server_factory):
    """With no route, commits write no log; the first route turns it on and
    starts after the newest entry committed, so a publish sent on the same
    connection right behind routes.create (answered first) is evaluated.
    Deleting the route turns the log off again: each round is a first route."""
    def cfg(c):
        with_api(c, extra_ns=[{"name": "ev"}])
    s = server_factory(cfg, name="firstroute")
    key = full_key("acme")
    rids = []
    for i in range(30):
        rid, ch, sink = uniq("first"), "ev:first" + uniq(), "ev:sink" + uniq()
        bodies = [("routes.create", {"id": rid, "match": {"channel": ch}, "action": {"publish": sink}}),
                  ("publish", {"channel": ch, "data": {"n": i}})]
        with socket.create_connection(("127.0.0.1", s.port), timeout=10 * SLOW) as sock:
            raw = b"".join(
                f"POST /api/v1/{m} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Length: {len(json.dumps(b))}\r\n\r\n{json.dumps(b)}".encode() for m, b in bodies)
            sock.sendall(raw)
            got = b""
            while got.count(b"HTTP/1.1 200") < 2:
                chunk = sock.recv(65536)
                assert chunk, got
                got += chunk
        wait_until(lambda: listed_route(s, rid)["matched"] == 1, 10 * SLOW,
                   f"round {i}: the first route evaluated the pub published right after it")
        api(s, "routes.delete", {"id": rid})
        rids.append(rid)


def test_retention_waits_for_the_router_and_then_trims(server_factory):
    """Retention keeps the pubs the routing log still names (a router that
    lags never misses one; the engine's unit tests hold the lag itself); once
    the routes have passed them, the log is trimmed behind them and the
    channel is back to its history_size at its next publish."""
    def cfg(c):
        with_api(c, extra_ns=[{"name": "src", "history_size": 3}, {"name": "dst"}])
    s = server_factory(cfg, name="retention")
    rid, src, dst = uniq("ret"), "src:" + uniq(), "dst:" + uniq()
    api(s, "routes.create", {"id": rid, "match": {"channel": src}, "action": {"publish": dst}})

    def copies():
        return [p["data"]["n"] for p in api(s, "history", {"channel": dst, "limit": 100})["pubs"]]
    for i in range(12):
        publish(s, src, {"n": i})
    wait_until(lambda: len(copies()) == 12, 10 * SLOW, "12 copies")
    assert sorted(copies()) == list(range(12))
    for n in (12, 13):  # the router passes them and trims the log behind it
        publish(s, src, {"n": n})
        wait_until(lambda: len(copies()) == n + 1, 10 * SLOW, f"copy {n}")
    publish(s, src, {"n": 14})
    assert [p["data"]["n"] for p in api(s, "history", {"channel": src, "limit": 100})["pubs"]] == \
        [12, 13, 14]
