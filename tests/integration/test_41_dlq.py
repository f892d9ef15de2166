# The dead-letter queue over the HTTP API: entries after max_attempts, their
# fields, filters and paging, tenant isolation, replay (delivery starts again
# at attempt 1) and purge by id, filter or all, each audited in a log that
# `parley audit verify` accepts; bad bodies, unknown and under-scoped keys.
import asyncio
import json
import time

import pytest

from helpers_api import api_error, api_raw, full_key, scope_key
from helpers_guaranteed import (acall, ack, apublish, audit_lines, audit_verify, delivery_of,
                                dlq_list, gconnect, guaranteed_cfg, next_pub, no_pub, subscribe,
                                wait_dlq, wait_state)
from parley_client import SLOW, run, uniq

FAST_ATTEMPTS = 2  # helpers_guaranteed.FAST


@pytest.fixture(scope="module")
def dsrv(module_factory):
    return module_factory(tweak=guaranteed_cfg, name="dlq")


async def dead_letters(srv, user, n, data=lambda i: {"n": i}):
    """user subscribes to fast:#user, n pubs go unacknowledged until they are
    dead-lettered; returns (client, pubs, entries). The client stays open."""
    ch = f"fast:#{user}"
    cl = await gconnect(srv, user)
    await subscribe(cl, ch)
    pubs = [await apublish(srv, ch, data(i), correlation_id=f"cid-{user}-{i}") for i in range(n)]
    for p in pubs:
        for attempt in range(1, FAST_ATTEMPTS + 1):
            got = await next_pub(cl, ch, p["offset"], timeout=5 * SLOW)
            assert got["attempt"] == attempt, got
    entries = await acall(wait_dlq, srv, {"user": user}, n)
    return cl, pubs, entries


def test_entry_fields_replay_and_purge(dsrv):
    async def body():
        user = uniq("dl")
        ch = f"fast:#{user}"
        t0 = int(time.time() * 1000)
        cl, [pub], [e] = await dead_letters(dsrv, user, 1)
        t1 = int(time.time() * 1000)
        assert set(e) == {"id", "pub_id", "channel", "kind", "user", "reason", "attempts",
                          "last_error", "correlation_id", "failed_at"}, e
        assert e["kind"] == "delivery"
        assert isinstance(e["id"], int) and e["id"] > 0
        assert (e["pub_id"], e["channel"], e["user"]) == (pub["id"], ch, user)
        assert e["reason"] == "max_attempts" and e["attempts"] == FAST_ATTEMPTS
        assert isinstance(e["last_error"], str) and e["last_error"]
        assert e["correlation_id"] == f"cid-{user}-0"
        assert t0 - 1000 <= e["failed_at"] <= t1 + 1000, (t0, e["failed_at"], t1)
        await acall(wait_state, dsrv, pub["id"], user, "failed")
        await no_pub(cl, ch, 0.4 * SLOW)  # no further attempts once failed

        audit_before = len(audit_lines(dsrv))
        res = await acall(api_raw, dsrv, "dlq.replay", {"id": e["id"]}, full_key("acme"))
        assert res == (200, {"result": {"count": 1}}), res
        got = await next_pub(cl, ch, pub["offset"], timeout=5 * SLOW)
        assert got["attempt"] == 1 and got["id"] == pub["id"], got
        # acknowledged after the replay: it stays out of the queue for good
        assert await ack(cl, ch, pub["offset"]) == {"acknowledged": 1}
        assert (await acall(dlq_list, dsrv, {"user": user}))["entries"] == []
        d = await acall(wait_state, dsrv, pub["id"], user, "acknowledged")
        assert ("failed", FAST_ATTEMPTS) in [(t["state"], t["attempt"]) for t in d["transitions"]]
        await no_pub(cl, ch, 0.6 * SLOW)
        assert (await acall(dlq_list, dsrv, {"user": user}))["entries"] == []

        # a second dead letter, purged by id: gone, and never delivered again
        pub2 = await apublish(dsrv, ch, {"n": 2})
        for attempt in range(1, FAST_ATTEMPTS + 1):
            assert (await next_pub(cl, ch, pub2["offset"], timeout=5 * SLOW))["attempt"] == attempt
        [e2] = await acall(wait_dlq, dsrv, {"user": user}, 1)
        assert e2["pub_id"] == pub2["id"]
        res = await acall(api_raw, dsrv, "dlq.purge", {"id": e2["id"]}, full_key("acme"))
        assert res == (200, {"result": {"count": 1}}), res
        assert (await acall(dlq_list, dsrv, {"user": user}))["entries"] == []
        await no_pub(cl, ch, 0.4 * SLOW)
        res = await acall(api_raw, dsrv, "dlq.purge", {"id": e2["id"]}, full_key("acme"))
        assert res == (200, {"result": {"count": 0}}), "a purged entry is gone"
        res = await acall(api_raw, dsrv, "dlq.replay", {"id": e2["id"]}, full_key("acme"))
        assert res == (200, {"result": {"count": 0}}), "a purged entry cannot be replayed"
        await cl.close()

        # both actions are in the audit log, whose chain verifies
        recs = [json.loads(line) for line in audit_lines(dsrv)[audit_before:]]
        actions = [r["action"] for r in recs]
        assert actions.count("dlq.replay") >= 1 and actions.count("dlq.purge") >= 1, recs
        for r in recs:
            if r["action"].startswith("dlq."):
                assert r["tenant"] == "acme", r
        rc, out = await acall(audit_verify, dsrv)
        assert rc == 0, out
    run(body())


def test_replay_to_an_offline_recipient_waits_for_them(dsrv):
    """Replay puts the delivery back to queued (attempt 1 next); a recipient
    that is not connected gets it when it subscribes, like any queued pub. The
    replay must not burn its attempts against no connection and fail again."""
    async def body():
        user = uniq("off")
        ch = f"fast:#{user}"
        cl, [pub], [e] = await dead_letters(dsrv, user, 1)
        await cl.close()
        assert (await acall(api_raw, dsrv, "dlq.replay", {"id": e["id"]},
                            full_key("acme")))[1] == {"result": {"count": 1}}
        await asyncio.sleep(1.0 * SLOW)  # far beyond FAST's whole schedule
        d = await acall(delivery_of, dsrv, pub["id"], user)
        again = (await acall(dlq_list, dsrv, {"user": user}))["entries"]
        assert d["state"] == "queued" and again == [], \
            f"replayed to nobody and dead-lettered again: {d} {again}"
        cl = await gconnect(dsrv, user)
        await subscribe(cl, ch)
        got = await next_pub(cl, ch, pub["offset"], timeout=5 * SLOW)
        assert got["attempt"] == 1, got
        await cl.close()
    run(body())


def test_entry_ids_are_never_reused(dsrv):
    """An id names one failure for good: after purging the newest entry, the
    next failure gets a new id, so a stale replay/purge by id cannot hit an
    unrelated delivery."""
    async def body():
        user = uniq("rid")
        cl, _, [a] = await dead_letters(dsrv, user, 1)
        res = await acall(api_raw, dsrv, "dlq.purge", {"id": a["id"]}, full_key("acme"))
        assert res[1] == {"result": {"count": 1}}, res
        ch = f"fast:#{user}"
        pub = await apublish(dsrv, ch, {"second": True})
        for attempt in range(1, FAST_ATTEMPTS + 1):
            assert (await next_pub(cl, ch, pub["offset"], timeout=5 * SLOW))["attempt"] == attempt
        [b] = await acall(wait_dlq, dsrv, {"user": user}, 1)
        assert b["pub_id"] == pub["id"]
        assert b["id"] != a["id"], f"dead-letter id {a['id']} reused for another failure"
        # a stale request by the purged id must not touch the new entry
        res = await acall(api_raw, dsrv, "dlq.replay", {"id": a["id"]}, full_key("acme"))
        assert res[1] == {"result": {"count": 0}}, res
        await cl.close()
    run(body())


def test_filters_paging_and_bulk_actions(dsrv):
    async def body():
        u1, u2 = uniq("fa"), uniq("fb")
        c1, p1, e1 = await dead_letters(dsrv, u1, 3)
        c2, p2, e2 = await dead_letters(dsrv, u2, 2)
        ids1, ids2 = [e["id"] for e in e1], [e["id"] for e in e2]
        assert ids1 == sorted(ids1) and len(set(ids1 + ids2)) == 5
        assert {e["pub_id"] for e in e1} == {p["id"] for p in p1}

        async def ids(body):
            return [e["id"] for e in (await acall(dlq_list, dsrv, body))["entries"]]

        assert await ids({"channel": f"fast:#{u2}"}) == ids2
        assert await ids({"user": u1, "reason": "max_attempts"}) == ids1
        assert await ids({"user": u1, "reason": "expired"}) == []
        assert await ids({"user": u1, "channel": f"fast:#{u2}"}) == []
        assert await ids({"user": "x' OR '1'='1"}) == []
        assert await ids({"channel": "fast:#%", "user": "%"}) == []
        now = int(time.time() * 1000)
        assert await ids({"user": u1, "since": now + 3_600_000}) == []
        assert await ids({"user": u1, "until": 1}) == []
        assert await ids({"user": u1, "since": now - 3_600_000, "until": now + 3_600_000}) == ids1
        assert await ids({"user": u1, "id": ids1[1]}) == [ids1[1]]

        # paging by two: every entry exactly once, the last cursor is 0
        seen, cursor, pages = [], 0, 0
        while True:
            body = {"user": u1, "limit": 2}
            if cursor:
                body["cursor"] = cursor
            page = await acall(dlq_list, dsrv, body)
            seen += [e["id"] for e in page["entries"]]
            cursor = page["cursor"]
            pages += 1
            assert isinstance(cursor, int) and pages <= 3
            if not cursor:
                break
        assert seen == ids1

        # tenant isolation: globex neither sees nor touches acme's entries
        assert (await acall(dlq_list, dsrv, {}, "globex"))["entries"] == []
        assert (await acall(dlq_list, dsrv, {"user": u1}, "globex"))["entries"] == []
        for method in ("dlq.purge", "dlq.replay"):
            res = await acall(api_raw, dsrv, method, {"id": ids1[0]}, full_key("globex"))
            assert res == (200, {"result": {"count": 0}}), res
            res = await acall(api_raw, dsrv, method, {"all": True}, full_key("globex"))
            assert res == (200, {"result": {"count": 0}}), res
        assert await ids({"user": u1}) == ids1

        # replay by filter: u2's two pubs come again, from attempt 1
        res = await acall(api_raw, dsrv, "dlq.replay", {"user": u2}, full_key("acme"))
        assert res == (200, {"result": {"count": 2}}), res
        ch2 = f"fast:#{u2}"
        for p in p2:
            assert (await next_pub(c2, ch2, p["offset"], timeout=5 * SLOW))["attempt"] == 1
        assert await ack(c2, ch2, p2[-1]["offset"]) == {"acknowledged": 2}
        assert await ids({"user": u1}) == ids1, "a filtered replay touches nothing else"

        # purge by channel filter, then purge everything of the tenant
        res = await acall(api_raw, dsrv, "dlq.purge",
                          {"channel": f"fast:#{u1}", "id": ids1[0]}, full_key("acme"))
        assert res == (200, {"result": {"count": 1}}), res
        assert await ids({"user": u1}) == ids1[1:]
        res = await acall(api_raw, dsrv, "dlq.purge", {"all": True}, full_key("acme"))
        assert res[0] == 200 and res[1]["result"]["count"] >= 2, res
        assert await ids({}) == []
        await no_pub(c1, f"fast:#{u1}", 0.3 * SLOW)
        for c in (c1, c2):
            await c.close()
        rc, out = await acall(audit_verify, dsrv)
        assert rc == 0, out
    run(body())


@pytest.mark.parametrize("method", ["dlq.replay", "dlq.purge"])
def test_replay_and_purge_need_a_target(dsrv, method):
    before = len(audit_lines(dsrv))
    for body in ({}, {"all": False}, {"id": 0}, {"limit": 5}, {"cursor": 3}):
        status, err = api_error(dsrv, method, body)
        assert status == 400 and err["code"] == 107, (body, status, err)
    assert len(audit_lines(dsrv)) == before, "refused requests are not audited"


@pytest.mark.parametrize("method", ["dlq.list", "dlq.replay", "dlq.purge"])
@pytest.mark.parametrize("body", [
    {"id": "1"}, {"id": -1}, {"id": 1.5}, {"id": [1]}, {"all": "yes"}, {"all": 1},
    {"channel": 5}, {"user": ["u"]}, {"reason": {}}, {"since": "yesterday"},
    {"until": -5}, {"cursor": "abc"}, {"limit": "10"}, {"user": "u" * 300},
], ids=lambda b: json.dumps(b)[:40])
def test_wrong_types_are_rejected(dsrv, method, body):
    status, err = api_error(dsrv, method, body)
    assert status == 400 and err["code"] == 107, (body, status, err)


@pytest.mark.parametrize("limit", [0, 1001, 10 ** 6])
def test_list_limit_out_of_range(dsrv, limit):
    status, err = api_error(dsrv, "dlq.list", {"limit": limit})
    assert 400 <= status < 500 and err["code"] in (106, 107), (status, err)


@pytest.mark.parametrize("raw", [b"[]", b"not json", b'{"id":1', b'"x"', b"{} {}"])
def test_malformed_bodies(dsrv, raw):
    for method in ("dlq.list", "dlq.purge"):
        status, reply = api_raw(dsrv, method, raw, full_key("acme"))
        assert status == 400 and reply["error"]["code"] == 107, (method, raw, status, reply)


@pytest.mark.parametrize("method", ["dlq.list", "dlq.replay", "dlq.purge"])
def test_keys_and_scopes(dsrv, method):
    body = {"id": 999999999}
    for key in (None, "", "pk_nope", full_key("acme") + "x"):
        status, reply = api_raw(dsrv, method, body, key)
        assert status == 401 and reply["error"]["code"] in (101, 109), (key, status, reply)
    for scope in ("publish", "trace", "history", "info"):
        status, reply = api_raw(dsrv, method, body, scope_key("acme", scope))
        assert status == 403 and reply["error"]["code"] == 103, (scope, status, reply)
    status, reply = api_raw(dsrv, method, body, scope_key("acme", "dlq"))
    assert status == 200, reply
    want = {"entries": [], "cursor": 0} if method == "dlq.list" else {"count": 0}
    assert reply["result"] == want, reply


def test_unscoped_attempts_are_not_audited(dsrv):
    before = len(audit_lines(dsrv))
    for key in (None, scope_key("acme", "publish")):
        status, _ = api_raw(dsrv, "dlq.purge", {"all": True}, key)
        assert status in (401, 403)
    assert len(audit_lines(dsrv)) == before
