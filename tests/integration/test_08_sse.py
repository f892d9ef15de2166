# Scenario family 8: Server-Sent Events. GET /sse streams pubs of one or
# more channels as "id: C@OFFSET" events, resumes after Last-Event-ID
# (with a gap event when retention lost pubs), and refuses a bad token (401),
# an unknown namespace (404) and a missing channel (400).
import json
import urllib.parse

from parley_client import SSEStream, connect, make_token, run, uniq


def _query(token, *channels):
    return urllib.parse.urlencode([("token", token)] + [("channel", c) for c in channels])


def _publish(server, ch, values):
    async def body():
        cl = await connect(server, "alice")
        acks = [await cl.publish(ch, v) for v in values]
        await cl.close()
        return acks
    return run(body())


def test_sse_live_delivery(server):
    ch = "chat:" + uniq()
    sse = SSEStream(server, _query(make_token("bob"), ch))
    try:
        assert sse.status == 200
        assert sse.headers.get("content-type", "").startswith("text/event-stream")
        acks = _publish(server, ch, ["a", {"b": 2}, [3]])
        evs = sse.events(3)
        assert [e["id"] for e in evs] == [f"{ch}@1", f"{ch}@2", f"{ch}@3"]
        assert [e["data"]["data"] for e in evs] == ["a", {"b": 2}, [3]]
        for e, a in zip(evs, acks):
            assert e["event"] == "message"
            assert e["data"]["channel"] == ch
            assert e["data"]["id"] == a["id"]
            assert e["data"]["offset"] == a["offset"]
            assert e["data"]["epoch"] == a["epoch"]
            assert e["data"]["info"]["user"] == "alice"
    finally:
        sse.close()


def test_sse_two_channels(server):
    c1, c2 = "chat:" + uniq(), uniq("plain")
    sse = SSEStream(server, _query(make_token("bob"), c1, c2))
    try:
        assert sse.status == 200
        _publish(server, c1, ["one"])
        _publish(server, c2, ["two"])
        _publish(server, c1, ["three"])
        evs = sse.events(3)
        assert sorted(e["id"] for e in evs) == sorted([f"{c1}@1", f"{c2}@1", f"{c1}@2"])
        assert [e["data"]["data"] for e in evs if e["data"]["channel"] == c1] == ["one", "three"]
    finally:
        sse.close()


def test_sse_last_event_id_resume(server):
    ch = "chat:" + uniq()
    _publish(server, ch, [f"m{i}" for i in range(1, 6)])
    sse = SSEStream(server, _query(make_token("bob"), ch), headers={"Last-Event-ID": f"{ch}@2"})
    try:
        assert sse.status == 200
        evs = sse.events(3)
        assert [e["id"] for e in evs] == [f"{ch}@3", f"{ch}@4", f"{ch}@5"]
        _publish(server, ch, ["m6"])
        (ev,) = sse.events(1)
        assert ev["id"] == f"{ch}@6" and ev["data"]["data"] == "m6"
    finally:
        sse.close()


def test_sse_resume_past_retention_sends_gap(server):
    ch = "small:" + uniq()
    _publish(server, ch, list(range(1, 26)))
    sse = SSEStream(server, _query(make_token("bob"), ch), headers={"Last-Event-ID": f"{ch}@2"})
    try:
        assert sse.status == 200
        evs = sse.events(11)
        gaps = [e for e in evs if e["event"] == "gap"]
        pubs = [e for e in evs if e["event"] == "message"]
        assert len(gaps) == 1, evs
        assert gaps[0]["data"]["channel"] == ch
        assert (gaps[0]["data"]["from"], gaps[0]["data"]["to"]) == (3, 15)
        assert [e["id"] for e in pubs] == [f"{ch}@{i}" for i in range(16, 26)]
    finally:
        sse.close()


def test_sse_errors(server):
    cases = [
        (_query("garbage", "chat:x"), 401),
        (_query(make_token(ttl=-60), "chat:x"), 401),
        (_query(make_token(secret="wrong-secret-xxxxxxxx"), "chat:x"), 401),
        (_query(make_token(), "nope:x"), 404),
        (_query(make_token()), 400),
        ("channel=chat%3Ax", 401),
    ]
    for query, status in cases:
        sse = SSEStream(server, query)
        try:
            assert sse.status == status, (query, sse.status)
            body = sse.body()
            err = json.loads(body)
            assert "error" in err and isinstance(err["error"].get("code"), int), body
        finally:
            sse.close()


def test_sse_news_channel_is_readable(server):
    """Subscribe-only namespaces are fine for SSE readers."""
    ch = "news:" + uniq()
    sse = SSEStream(server, _query(make_token("bob"), ch))
    try:
        assert sse.status == 200
    finally:
        sse.close()


def test_sse_and_ws_see_same_order(server):
    ch = "chat:" + uniq()
    sse = SSEStream(server, _query(make_token("bob"), ch))
    try:
        async def body():
            ws = await connect(server, "carol")
            await ws.subscribe(ch)
            pub = await connect(server, "alice")
            await pub.publish_many(ch, 50, window=10)
            got = [p["id"] for p in await ws.pubs(ch, 50)]
            await ws.close()
            await pub.close()
            return got
        ws_ids = run(body())
        sse_ids = [e["data"]["id"] for e in sse.events(50)]
        assert sse_ids == ws_ids
    finally:
        sse.close()
