# The publish path as a client sees it: a burst of publishes on one
# connection gets every answer once, in order, and the answers travel
# together; a pub is encoded only when someone reads it, and whoever reads
# it first (a live push on any worker, history, recovery, trace) sees the
# same message.
import json
import time

import pytest

from helpers_api import api, with_api
from parley_client import OP_TEXT, RawWS, connect, make_token, run, uniq, ws_frame


def _two_workers(cfg):
    with_api(cfg)
    cfg["workers"] = 2


@pytest.fixture(scope="module")
def psrv(module_factory):
    return module_factory(tweak=_two_workers, name="pubpath")


def _raw_connect(srv, user="alice"):
    ws = RawWS(srv)
    reply = ws.rpc("connect", {"token": make_token(user)})
    assert "result" in reply, reply
    return ws


def _publish_frames(ws, ch, n, first_id):
    """n publish commands, each its own WebSocket frame, in one write."""
    out = b"".join(ws_frame(OP_TEXT, json.dumps(
        {"id": first_id + i, "method": "publish", "params": {"channel": ch, "data": {"i": i}}}))
        for i in range(n))
    ws.send(out)


def test_reply_burst_in_order_and_together(psrv):
    ch = "chat:" + uniq()
    n = 200
    ws = _raw_connect(psrv)
    first = ws.next_id
    ws.next_id += n
    _publish_frames(ws, ch, n, first)
    replies, frames = [], 0
    while len(replies) < n:
        msgs = ws.recv_messages()
        got = [m for m in msgs if m.get("id", 0) >= first]
        frames += 1 if got else 0
        replies.extend(got)
    assert len(replies) == n
    assert [r["id"] for r in replies] == list(range(first, first + n))
    assert [r["result"]["offset"] for r in replies] == list(range(1, n + 1))
    assert len({r["result"]["id"] for r in replies}) == n
    # Answers that are ready together share frames (each frame's lines are
    # complete JSON objects, checked by recv_messages).
    assert frames < n // 4, frames
    ws.close()


def test_history_after_publish_in_one_write_sees_it(psrv):
    """Commands of one read reach storage together; a history sent after a
    publish, even in the same write, already holds it (read your writes)."""
    ch = "chat:" + uniq()
    ws = _raw_connect(psrv)
    first = ws.next_id
    n = 40
    ws.next_id += 2 * n
    cmds = []
    for i in range(n):
        cmds.append({"id": first + 2 * i, "method": "publish",
                     "params": {"channel": ch, "data": {"i": i}}})
        cmds.append({"id": first + 2 * i + 1, "method": "history",
                     "params": {"channel": ch, "limit": 1000}})
    ws.send(b"".join(ws_frame(OP_TEXT, json.dumps(c)) for c in cmds))
    replies = {}
    while len(replies) < 2 * n:
        for m in ws.recv_messages():
            if m.get("id", 0) >= first:
                assert m["id"] not in replies, m
                replies[m["id"]] = m
    for i in range(n):
        pub = replies[first + 2 * i]["result"]
        assert pub["offset"] == i + 1
        hist = replies[first + 2 * i + 1]["result"]
        data = [p["data"]["i"] for p in hist["pubs"]]
        # Every publish sent before the history is in it, in order; later
        # ones may be too (they can share the commit), but never a gap.
        assert data == list(range(len(data))) and len(data) >= i + 1, (i, data)
        assert hist["offset"] >= i + 1
    ws.close()


def test_replies_and_pushes_interleave_on_one_connection(psrv):
    """The publisher subscribes to its own channel: pushes and answers share
    the connection's queue; each arrives once and pushes stay in order."""
    ch = "chat:" + uniq()
    n = 300
    ws = _raw_connect(psrv)
    sub = ws.rpc("subscribe", {"channel": ch})
    assert "result" in sub, sub
    first = ws.next_id
    ws.next_id += n
    _publish_frames(ws, ch, n, first)
    replies, pushes = [], []
    while len(replies) < n or len(pushes) < n:
        for m in ws.recv_messages():
            if m.get("push") == "pub":
                pushes.append(m)
            elif m.get("id", 0) >= first:
                replies.append(m)
    assert [r["id"] for r in replies] == list(range(first, first + n))
    assert [p["offset"] for p in pushes] == list(range(1, n + 1))
    by_off = {r["result"]["offset"]: r["result"]["id"] for r in replies}
    assert all(p["id"] == by_off[p["offset"]] and p["data"] == {"i": p["offset"] - 1}
               for p in pushes)
    ws.close()


def test_unread_pub_reads_the_same_everywhere(psrv):
    """Pubs published with nobody listening are encoded when first read;
    history, recovery, trace and a live push of a later pub all show the
    same fields."""
    ch = "chat:" + uniq()
    extra = {"type": "note", "correlation_id": "corr-1", "headers": {"x-k": "v"}}

    async def body():
        pub = await connect(psrv, "alice")
        ids = [(await pub.publish(ch, {"n": i, "s": "é\"\\"}, **extra))["id"]
               for i in range(5)]
        hist = (await pub.history(ch, limit=10))["pubs"]
        # Subscribers on both workers (connections are spread over them).
        subs = [await connect(psrv, u) for u in ("bob", "carol", "dave", "erin")]
        recovered = []
        for s in subs:
            res = await s.subscribe(ch, since={"offset": 0, "epoch": hist[0]["epoch"]})
            recovered.append(res["pubs"])
        live_id = (await pub.publish(ch, {"n": 5}, **extra))["id"]
        live = [(await s.pubs(ch, 1))[0] for s in subs]
        for s in subs:
            await s.close()
        await pub.close()
        return ids, hist, recovered, live_id, live

    ids, hist, recovered, live_id, live = run(body())
    assert [p["id"] for p in hist] == ids
    for p in hist:
        assert p["data"]["s"] == "é\"\\"
        assert p["type"] == "note" and p["correlation_id"] == "corr-1"
        assert p["headers"] == {"x-k": "v"} and p["info"]["user"] == "alice"
    for r in recovered:
        assert r == hist
    assert all(m == live[0] for m in live)
    assert live[0]["id"] == live_id
    shape = {k for k in live[0] if k not in ("push", "_seq")}  # _seq: the test client's
    assert all(set(p) == shape for p in hist), (shape, [set(p) for p in hist])
    traced = api(psrv, "trace", {"id": ids[2]})
    assert traced["pub"] == hist[2]


