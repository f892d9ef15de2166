# Inbound webhooks: POST /hooks/in/<source> against a real server. Requests
# are signed here with Python's own hmac, hashlib and base64, independently
# of the server's code: valid ones become pubs (seen by a subscriber and in
# history), every rejection gets its documented status and publishes
# nothing, replays are refused across a restart, and tenants stay apart.
import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from helpers_api import api, with_api
from parley_client import connect, run

SW_KEY1 = base64.b64encode(b"first-standard-webhooks-key-0001").decode()
SW_KEY2 = base64.b64encode(b"second-standard-webhooks-key-002").decode()
GH_SECRET = "gh-secret-1"
ST_SECRET = "whsec_stripe_test_secret"
MAX_BODY = 16384

SOURCES = [
    {"id": "sw", "tenant": "acme", "scheme": "standard-webhooks",
     "secret": ["whsec_" + SW_KEY1, "whsec_" + SW_KEY2], "channel": "chat:sw",
     "type": "sw.event"},
    {"id": "gh", "tenant": "acme", "scheme": "hmac-sha256", "secret": [GH_SECRET, "gh-old"],
     "header": "X-Hub-Signature-256", "id_header": "X-GitHub-Delivery", "channel": "chat:gh",
     "type": "github.{header:X-GitHub-Event}"},
    {"id": "stripe", "tenant": "acme", "scheme": "stripe", "secret": ST_SECRET,
     "channel": "chat:stripe", "type": "stripe"},
    {"id": "other", "tenant": "globex", "scheme": "standard-webhooks",
     "secret": "whsec_" + SW_KEY1, "channel": "chat:sw"},
]


def _tweak(cfg):
    with_api(cfg)
    cfg["limits"]["max_body_bytes"] = MAX_BODY
    cfg["inbound"] = SOURCES


@pytest.fixture(scope="module")
def isrv(module_factory):
    return module_factory(tweak=_tweak, name="inbound")


def sw_headers(body, key=SW_KEY1, msg_id=None, ts=None):
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(base64.b64decode(key), f"{msg_id}.{ts}.".encode() + body,
                   hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
            "Content-Type": "application/json"}


def gh_headers(body, secret=GH_SECRET, event="push", delivery=None):
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": "sha256=" + mac, "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4())}


def stripe_headers(body, ts=None, secret=ST_SECRET):
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={ts},v1={mac}"}


def post(srv, source, body, headers, method="POST"):
    status, hdrs, raw = srv.http(method, f"/hooks/in/{source}", headers=headers, body=body)
    return status, hdrs, json.loads(raw) if raw else None


def history(srv, ch, tenant="acme"):
    return api(srv, "history", {"channel": ch}, tenant=tenant)["pubs"]


def expect_error(srv, source, body, headers, status, text):
    n = len(history(srv, next(s["channel"] for s in SOURCES if s["id"] == source)))
    got, _, reply = post(srv, source, body, headers)
    assert got == status, (got, reply)
    assert text in reply["error"]["message"], reply
    assert len(history(srv, next(s["channel"] for s in SOURCES if s["id"] == source))) == n
    return reply["error"]


def test_standard_webhooks_becomes_a_pub(isrv):
    async def body():
        sub = await connect(isrv, "bob")
        await sub.subscribe("chat:sw")
        raw = json.dumps({"type": "user.created", "n": 1}).encode()
        h = sw_headers(raw)
        status, _, reply = await asyncio.to_thread(post, isrv, "sw", raw, h)
        assert status == 200, reply
        res = reply["result"]
        assert res["channel"] == "chat:sw" and res["offset"] >= 1 and res["epoch"] and res["id"]
        (p,) = await sub.pubs("chat:sw", 1)
        assert p["data"] == {"type": "user.created", "n": 1}
        assert p["type"] == "sw.event" and p["offset"] == res["offset"]
        assert p["headers"] == {"source": "sw", "delivery_id": h["webhook-id"]}
        await sub.close()
    run(body())


def test_rotation_both_secrets(isrv):
    for key in (SW_KEY1, SW_KEY2):
        raw = b'{"k": 1}'
        status, _, reply = post(isrv, "sw", raw, sw_headers(raw, key=key))
        assert status == 200, reply


def test_github_hmac(isrv):
    raw = json.dumps({"ref": "refs/heads/main"}).encode()
    status, _, reply = post(isrv, "gh", raw, gh_headers(raw))
    assert status == 200, reply
    last = history(isrv, "chat:gh")[-1]
    assert last["type"] == "github.push" and last["data"] == {"ref": "refs/heads/main"}
    # The old secret still verifies (rotation).
    status, _, reply = post(isrv, "gh", raw, gh_headers(raw, secret="gh-old", event="ping"))
    assert status == 200 and history(isrv, "chat:gh")[-1]["type"] == "github.ping"


def test_stripe(isrv):
    evt = "evt_" + uuid.uuid4().hex
    raw = json.dumps({"id": evt, "type": "charge.succeeded"}).encode()
    status, _, reply = post(isrv, "stripe", raw, stripe_headers(raw))
    assert status == 200, reply
    last = history(isrv, "chat:stripe")[-1]
    assert last["data"]["id"] == evt and last["headers"]["delivery_id"] == evt
    # The same event again (a new signature, a new timestamp): a replay.
    err = expect_error(isrv, "stripe", raw, stripe_headers(raw, ts=int(time.time()) - 1), 409,
                       "replayed delivery id")
    assert err["code"] == 115 and err["temporary"] is False


def test_bad_signatures(isrv):
    raw = b'{"x": 1}'
    h = sw_headers(raw)
    h["webhook-signature"] = sw_headers(b'{"x": 2}', msg_id=h["webhook-id"],
                                        ts=h["webhook-timestamp"])["webhook-signature"]
    err = expect_error(isrv, "sw", raw, h, 401, "signature does not match")
    assert err["code"] == 101
    h = sw_headers(raw)
    del h["webhook-signature"]
    expect_error(isrv, "sw", raw, h, 401, "missing header webhook-signature")
    h = sw_headers(raw)
    h["webhook-signature"] = "v1"
    expect_error(isrv, "sw", raw, h, 401, "malformed signature header")
    expect_error(isrv, "gh", raw, {"X-GitHub-Event": "push"}, 401,
                 "missing header X-Hub-Signature-256")
    expect_error(isrv, "gh", raw, gh_headers(raw, secret="wrong"), 401, "signature does not match")
    expect_error(isrv, "stripe", raw, stripe_headers(raw, secret="whsec_other"), 401,
                 "signature does not match")


def test_timestamps(isrv):
    raw = b'{"t": 1}'
    now = int(time.time())
    expect_error(isrv, "sw", raw, sw_headers(raw, ts=now - 3600), 400, "stale timestamp")
    expect_error(isrv, "sw", raw, sw_headers(raw, ts=now + 3600), 400, "timestamp in the future")
    expect_error(isrv, "sw", raw, sw_headers(raw, ts="12ab"), 400, "malformed timestamp")
    expect_error(isrv, "stripe", raw, stripe_headers(raw, ts=now - 3600), 400, "stale timestamp")


def test_replayed_id(isrv):
    raw = b'{"r": 1}'
    h = sw_headers(raw)
    status, _, _ = post(isrv, "sw", raw, h)
    assert status == 200
    expect_error(isrv, "sw", raw, h, 409, "replayed delivery id")


def test_replay_refused_after_restart(server_factory):
    srv = server_factory(tweak=_tweak, name="inbound-restart")
    raw = b'{"restart": true}'
    h = sw_headers(raw)
    assert post(srv, "sw", raw, h)[0] == 200
    delivery = str(uuid.uuid4())
    assert post(srv, "gh", raw, gh_headers(raw, delivery=delivery))[0] == 200
    srv.restart()
    status, _, reply = post(srv, "sw", raw, sw_headers(raw, msg_id=h["webhook-id"]))
    assert status == 409 and reply["error"]["code"] == 115, reply
    status, _, reply = post(srv, "gh", raw, gh_headers(raw, delivery=delivery))
    assert status == 409, reply
    assert len(history(srv, "chat:sw")) == 1


def test_oversized_body(isrv):
    raw = b'{"pad": "' + b"x" * (MAX_BODY + 10) + b'"}'
    status, hdrs, reply = post(isrv, "sw", raw, sw_headers(raw))
    assert status == 413 and reply["error"]["code"] == 106, reply


def test_non_json_body_is_a_string(isrv):
    raw = b"payload=1&x=\"quoted\"\n"
    status, _, reply = post(isrv, "sw", raw, sw_headers(raw))
    assert status == 200, reply
    assert history(isrv, "chat:sw")[-1]["data"] == raw.decode()


def test_unknown_source_and_methods(isrv):
    status, _, reply = post(isrv, "nope", b"{}", {})
    assert status == 404 and reply["error"]["code"] == 102
    assert "no such inbound source" in reply["error"]["message"]
    status, hdrs, reply = post(isrv, "sw", None, {}, method="GET")
    assert status == 405 and hdrs.get("Allow") == "POST", (status, hdrs)
    assert "Access-Control-Allow-Origin" not in hdrs


def test_tenant_isolation(isrv):
    before_acme = len(history(isrv, "chat:sw"))
    raw = b'{"tenant": "globex"}'
    status, _, reply = post(isrv, "other", raw, sw_headers(raw))
    assert status == 200, reply
    assert history(isrv, "chat:sw", tenant="globex")[-1]["data"] == {"tenant": "globex"}
    assert len(history(isrv, "chat:sw")) == before_acme
    # The same delivery id in two sources: each its own.
    h = sw_headers(raw)
    assert post(isrv, "other", raw, h)[0] == 200
    assert post(isrv, "sw", raw, h)[0] == 200


def test_metrics_move(isrv):
    def m(result, source="sw"):
        return isrv.metric("parley_inbound_requests_total",
                           {"source": source, "result": result}) or 0
    acc, bad, unk = m("accepted"), m("bad_signature"), isrv.metric(
        "parley_inbound_unknown_source_total")
    raw = b"{}"
    assert post(isrv, "sw", raw, sw_headers(raw))[0] == 200
    h = sw_headers(raw)
    h["webhook-signature"] = sw_headers(raw, key=base64.b64encode(b"z" * 32).decode(),
                                        msg_id=h["webhook-id"],
                                        ts=h["webhook-timestamp"])["webhook-signature"]
    assert post(isrv, "sw", raw, h)[0] == 401
    assert post(isrv, "zzz", raw, {})[0] == 404
    assert m("accepted") == acc + 1 and m("bad_signature") == bad + 1
    assert isrv.metric("parley_inbound_unknown_source_total") == unk + 1
    assert "inbound_rejected" in isrv.log_text()
    assert GH_SECRET not in isrv.log_text() and SW_KEY1 not in isrv.log_text()
