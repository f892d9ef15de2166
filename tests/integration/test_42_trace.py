# trace over the HTTP API and `parley trace`: the stored pub, its fan-out and
# every recipient's delivery with its state transitions (queued, sent,
# acknowledged, seen, failed); unknown ids, other tenants' pubs, bad bodies,
# missing and under-scoped keys.
import json
import re
import time

import pytest

from helpers_api import api_error, api_raw, full_key, scope_key
from helpers_guaranteed import (ack, acall, apublish, gconnect, guaranteed_cfg, next_pub,
                                publish, subscribe, trace, trace_cli, wait_dlq, wait_sent,
                                wait_state)
from parley_client import run, uniq


@pytest.fixture(scope="module")
def tsrv(module_factory):
    return module_factory(tweak=guaranteed_cfg, name="trace")


def states(d):
    return [t["state"] for t in d["transitions"]]


def test_trace_follows_a_pub_to_acknowledged_and_seen(tsrv):
    async def body():
        kim, lee = uniq("kim"), uniq("lee")
        ch = "calm:room-" + uniq()
        ck, cl1, cl2 = await gconnect(tsrv, kim), await gconnect(tsrv, lee), \
            await gconnect(tsrv, lee)
        for c in (ck, cl1, cl2):
            await subscribe(c, ch)
        t0 = int(time.time() * 1000)
        pub = await apublish(tsrv, ch, {"x": [1, 2, 3]}, correlation_id="trace-me")
        t1 = int(time.time() * 1000)
        for c in (ck, cl1, cl2):
            await next_pub(c, ch, pub["offset"])
        for user in (kim, lee):
            await acall(wait_sent, tsrv, pub["id"], user)
        tr = await acall(trace, tsrv, pub["id"])
        assert set(tr) >= {"pub", "stored", "accepted_at", "fanout", "deliveries"}, tr
        p = tr["pub"]
        assert (p["id"], p["channel"], p["offset"], p["epoch"]) == \
            (pub["id"], ch, pub["offset"], pub["epoch"])
        assert p["data"] == {"x": [1, 2, 3]} and p["correlation_id"] == "trace-me"
        assert p["class"] == "guaranteed"
        assert tr["stored"] is True
        assert t0 - 1000 <= tr["accepted_at"] <= t1 + 1000
        assert tr["fanout"] == 3, "queued live to three connections"
        assert [d["user"] for d in tr["deliveries"]] == sorted([kim, lee])
        for d in tr["deliveries"]:
            assert set(d) == {"user", "state", "attempts", "updated_at", "transitions"}, d
            assert d["state"] == "sent" and d["attempts"] == 1, d
            for t in d["transitions"]:
                assert set(t) == {"state", "attempt", "at", "error"}, t
            ats = [t["at"] for t in d["transitions"]]
            assert ats == sorted(ats) and ats[0] >= t0 - 1000, ats

        assert await ack(ck, ch, pub["offset"]) == {"acknowledged": 1}
        d = await acall(wait_state, tsrv, pub["id"], kim, "acknowledged")
        assert states(d) == ["queued", "sent", "acknowledged"], d
        assert d["updated_at"] == d["transitions"][-1]["at"]
        # the read cursor passing the offset makes the acknowledged delivery seen
        assert (await ck.call("read", {"channel": ch, "offset": pub["offset"]}))["offset"] == \
            pub["offset"]
        d = await acall(wait_state, tsrv, pub["id"], kim, "seen")
        assert states(d) == ["queued", "sent", "acknowledged", "seen"], d
        # lee's delivery is untouched by kim's ack and read
        other = [x for x in (await acall(trace, tsrv, pub["id"]))["deliveries"]
                 if x["user"] == lee][0]
        assert other["state"] == "sent", other
        for c in (ck, cl1, cl2):
            await c.close()
    run(body())


def test_trace_of_offline_and_failed_deliveries(tsrv):
    async def body():
        mo = uniq("mo")
        pub = await apublish(tsrv, f"inbox:#{mo}", {"n": 1})
        tr = await acall(trace, tsrv, pub["id"])
        assert tr["fanout"] == 0
        [d] = tr["deliveries"]
        assert (d["user"], d["state"], d["attempts"]) == (mo, "queued", 0), d
        assert states(d) == ["queued"]

        # a failed delivery: every attempt, then failed with the reason
        ned = uniq("ned")
        ch = f"fast:#{ned}"
        c = await gconnect(tsrv, ned)
        await subscribe(c, ch)
        p2 = await apublish(tsrv, ch, {"n": 2})
        await acall(wait_dlq, tsrv, {"user": ned}, 1)
        d = await acall(wait_state, tsrv, p2["id"], ned, "failed")
        assert [(t["state"], t["attempt"]) for t in d["transitions"]] == \
            [("queued", 0), ("sent", 1), ("sent", 2), ("failed", 2)], d
        assert isinstance(d["transitions"][-1]["error"], str) and d["transitions"][-1]["error"]
        assert all(t["error"] is None for t in d["transitions"][:-1])
        await c.close()
    run(body())


def test_trace_of_a_standard_pub_has_no_deliveries(tsrv):
    pub = publish(tsrv, "plain:" + uniq(), {"std": True})
    tr = trace(tsrv, pub["id"])
    assert tr["stored"] is True and tr["deliveries"] == [] and tr["pub"]["id"] == pub["id"]
    assert tr["pub"].get("class", "standard") == "standard"


def test_unknown_and_foreign_ids_are_404(tsrv):
    pub = publish(tsrv, "plain:" + uniq(), {"acme": True})
    for pid in ("01ZZZZZZZZZZZZZZZZZZZZZZZZ", "x", "' OR 1=1 --", pub["id"].lower() + "0"):
        status, err = api_error(tsrv, "trace", {"id": pid})
        assert status == 404 and err["code"] == 102, (pid, status, err)
    # globex cannot see acme's pub, acme's key cannot see globex's
    status, err = api_error(tsrv, "trace", {"id": pub["id"]}, tenant="globex")
    assert status == 404 and err["code"] == 102, (status, err)
    gpub = publish(tsrv, "plain:" + uniq(), {"globex": True}, tenant="globex")
    status, err = api_error(tsrv, "trace", {"id": gpub["id"]})
    assert status == 404 and err["code"] == 102, (status, err)
    assert trace(tsrv, gpub["id"], tenant="globex")["pub"]["id"] == gpub["id"]


@pytest.mark.parametrize("body", [
    {}, {"id": 5}, {"id": None}, {"id": ["x"]}, {"id": {"id": "x"}}, {"id": True},
    {"id": "x" * 5000}, {"pub_id": "x"},
], ids=lambda b: json.dumps(b)[:30])
def test_trace_bad_bodies(tsrv, body):
    status, err = api_error(tsrv, "trace", body)
    assert status == 400 and err["code"] == 107, (body, status, err)


def test_trace_empty_id(tsrv):
    """An empty id names no pub: refused as a bad request or not found."""
    status, err = api_error(tsrv, "trace", {"id": ""})
    assert (status, err["code"]) in ((400, 107), (404, 102)), (status, err)


@pytest.mark.parametrize("raw", [b"[]", b"nope", b'{"id":', b"{} {}"])
def test_trace_malformed_json(tsrv, raw):
    status, reply = api_raw(tsrv, "trace", raw, full_key("acme"))
    assert status == 400 and reply["error"]["code"] == 107, (raw, status, reply)


def test_trace_keys_and_scopes(tsrv):
    pub = publish(tsrv, "plain:" + uniq(), {"k": 1})
    for key in (None, "", "pk_nope", "Bearer"):
        status, reply = api_raw(tsrv, "trace", {"id": pub["id"]}, key)
        assert status == 401 and reply["error"]["code"] in (101, 109), (key, status, reply)
    for scope in ("publish", "dlq", "history", "info"):
        status, reply = api_raw(tsrv, "trace", {"id": pub["id"]}, scope_key("acme", scope))
        assert status == 403 and reply["error"]["code"] == 103, (scope, status, reply)
    status, reply = api_raw(tsrv, "trace", {"id": pub["id"]}, scope_key("acme", "trace"))
    assert status == 200 and reply["result"]["pub"]["id"] == pub["id"], reply


def test_trace_cli(tsrv):
    async def body():
        ola = uniq("ola")
        ch = f"calm:#{ola}"
        c = await gconnect(tsrv, ola)
        await subscribe(c, ch)
        pub = await apublish(tsrv, ch, {"cli": True})
        await next_pub(c, ch, pub["offset"])
        await acall(wait_sent, tsrv, pub["id"], ola)
        assert await ack(c, ch, pub["offset"]) == {"acknowledged": 1}
        await acall(wait_state, tsrv, pub["id"], ola, "acknowledged")
        await c.close()
        return pub, ch, ola
    pub, ch, ola = run(body())
    rc, out, err = trace_cli(tsrv, pub["id"], scope_key("acme", "trace"))
    assert rc == 0, (out, err)
    for text in (pub["id"], ch, ola, "queued", "sent", "acknowledged"):
        assert text in out, (text, out)
    rc, out, err = trace_cli(tsrv, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", scope_key("acme", "trace"))
    assert rc == 1 and "404" in (out + err), (rc, out, err)
    rc, out, err = trace_cli(tsrv, pub["id"], "pk_wrong_key")
    assert rc != 0 and "401" in (out + err), (rc, out, err)
    rc, out, err = trace_cli(tsrv, pub["id"], scope_key("acme", "dlq"))
    assert rc != 0 and "403" in (out + err), (rc, out, err)


def iso_ms(ms):
    """Unix ms as ISO 8601 UTC with milliseconds, the form `parley trace` prints."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def test_trace_cli_prints_iso_times_and_offsets(tsrv):
    async def body():
        uma = uniq("uma")
        ch = f"calm:#{uma}"
        c = await gconnect(tsrv, uma)
        await subscribe(c, ch)
        pub = await apublish(tsrv, ch, {"when": True})
        await next_pub(c, ch, pub["offset"])
        await acall(wait_sent, tsrv, pub["id"], uma)
        assert await ack(c, ch, pub["offset"]) == {"acknowledged": 1}
        await acall(wait_state, tsrv, pub["id"], uma, "acknowledged")
        await c.close()
        return pub
    pub = run(body())
    tr = trace(tsrv, pub["id"])
    accepted = tr["accepted_at"]
    rc, out, err = trace_cli(tsrv, pub["id"], scope_key("acme", "trace"))
    assert rc == 0, (out, err)
    assert f"  accepted {iso_ms(accepted)}, stored\n" in out, out
    iso = re.compile(r"^    (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) +\+(\d+) ms  (\w+) +attempt (\d+)",
                     re.M)
    printed = [(m[0], int(m[1]), m[2], int(m[3])) for m in iso.findall(out)]
    [d] = tr["deliveries"]
    want = [(iso_ms(t["at"]), t["at"] - accepted, t["state"], t["attempt"])
            for t in d["transitions"]]
    assert [w[2] for w in want] == ["queued", "sent", "acknowledged"], want
    assert printed == want, (printed, out)
    # no raw unix ms left in the readable form
    assert str(accepted) not in out, out
