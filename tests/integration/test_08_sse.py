# Scenario family 8: Server-Sent Events. GET /sse streams pubs of one or
# more channels; each event id is a cursor of the whole stream ("v1:" and
# EPOCH.OFFSET per channel in query order), so Last-Event-ID resumes every
# channel (with a gap event for one that cannot be recovered); the older
# "C@OFFSET" id still resumes its channel, a malformed one starts live. Bad
# token (401), unknown namespace (404) and missing channel (400) are refused.
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


def _cursor(event_id):
    """The [(epoch, offset) or None] of a stream cursor, in query order."""
    assert event_id.startswith("v1:"), event_id
    out = []
    for entry in event_id[3:].split(","):
        if not entry:
            out.append(None)
            continue
        epoch, _, off = entry.partition(".")
        out.append((epoch, int(off)))
    return out


def _pos(e):
    """(channel, offset) of a pub event."""
    return (e["data"]["channel"], e["data"]["offset"])


def _check_cursors(evs, chans, start):
    """Each pub event's id holds every channel's offset as written so far
    (start: the offsets before the first event) and the pub's own epoch."""
    at = dict(start)
    for e in evs:
        if e["event"] != "message":
            continue
        ch, off = _pos(e)
        at[ch] = off
        cur = _cursor(e["id"])
        assert len(cur) == len(chans), e["id"]
        assert [c[1] if c else None for c in cur] == [at[c] for c in chans], (e["id"], at)
        assert cur[chans.index(ch)][0] == e["data"]["epoch"]


def test_sse_live_delivery(server):
    ch = "chat:" + uniq()
    sse = SSEStream(server, _query(make_token("bob"), ch))
    try:
        assert sse.status == 200
        assert sse.headers.get("content-type", "").startswith("text/event-stream")
        acks = _publish(server, ch, ["a", {"b": 2}, [3]])
        evs = sse.events(3)
        assert [_cursor(e["id"]) for e in evs] == [[(acks[0]["epoch"], i)] for i in (1, 2, 3)]
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
        assert sorted(_pos(e) for e in evs) == [(c1, 1), (c1, 2), (c2, 1)]
        _check_cursors(evs, [c1, c2], {c1: 0, c2: 0})
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
        assert [_pos(e) for e in evs] == [(ch, 3), (ch, 4), (ch, 5)]
        _publish(server, ch, ["m6"])
        (ev,) = sse.events(1)
        assert _pos(ev) == (ch, 6) and ev["data"]["data"] == "m6"
        assert _cursor(ev["id"]) == [(ev["data"]["epoch"], 6)]
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
        assert [_pos(e) for e in pubs] == [(ch, i) for i in range(16, 26)]
        assert gaps[0] is evs[0], "the gap comes before the channel's pubs"
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


def _by_channel(evs):
    """{channel: [offsets of its pub events in arrival order]}."""
    out = {}
    for e in evs:
        if e["event"] == "message":
            out.setdefault(e["data"]["channel"], []).append(e["data"]["offset"])
    return out


def test_sse_cursor_resumes_every_channel(server):
    chans = ["chat:" + uniq() for _ in range(3)]
    q = _query(make_token("bob"), *chans)
    sse = SSEStream(server, q)
    try:
        assert sse.status == 200
        for ch in chans:
            _publish(server, ch, ["x1", "x2"])
        evs = sse.events(6)
        _check_cursors(evs, chans, dict.fromkeys(chans, 0))
        last = evs[-1]["id"]
        assert [c[1] for c in _cursor(last)] == [2, 2, 2]
    finally:
        sse.close()
    for ch in chans:
        _publish(server, ch, ["y3", "y4", "y5"])
    sse = SSEStream(server, q, headers={"Last-Event-ID": last})
    try:
        assert sse.status == 200
        evs = sse.events(9)
        assert all(e["event"] == "message" for e in evs), evs
        assert _by_channel(evs) == {ch: [3, 4, 5] for ch in chans}
        assert all(e["data"]["data"].startswith("y") for e in evs)
        _check_cursors(evs, chans, dict.fromkeys(chans, 2))
        for ch in chans:
            _publish(server, ch, ["live"])
        live = sse.events(3)
        assert _by_channel(live) == {ch: [6] for ch in chans}
        _check_cursors(live, chans, dict.fromkeys(chans, 5))
    finally:
        sse.close()


def test_sse_cursor_other_epoch_gaps_that_channel_only(server):
    chans = ["chat:" + uniq() for _ in range(3)]
    q = _query(make_token("bob"), *chans)
    sse = SSEStream(server, q)
    try:
        assert sse.status == 200
        for ch in chans:
            _publish(server, ch, ["x1", "x2"])
        evs = sse.events(6)
        cur = _cursor(evs[-1]["id"])
    finally:
        sse.close()
    real = cur[1][0]
    other = "zzzzzzzz" if real != "zzzzzzzz" else "yyyyyyyy"
    last = "v1:" + ",".join(f"{other if i == 1 else e}.{o}" for i, (e, o) in enumerate(cur))
    for ch in chans:
        _publish(server, ch, ["y3"])
    sse = SSEStream(server, q, headers={"Last-Event-ID": last})
    try:
        assert sse.status == 200
        evs = sse.events(6)  # a3, c3; b: the gap, then its retained pubs 1..3
        gaps = [e for e in evs if e["event"] == "gap"]
        assert [g["data"]["channel"] for g in gaps] == [chans[1]], evs
        g = gaps[0]["data"]
        assert (g["from"], g["to"], g["epoch"]) == (1, 2, real)
        assert _by_channel(evs) == {chans[0]: [3], chans[1]: [1, 2, 3], chans[2]: [3]}
        b_first = next(i for i, e in enumerate(evs) if e["event"] == "message"
                       and e["data"]["channel"] == chans[1])
        assert evs.index(gaps[0]) < b_first
        for ch in chans:
            _publish(server, ch, ["live"])
        live = sse.events(3)
        assert _by_channel(live) == {ch: [4] for ch in chans}
        # Channel b's position now carries its real epoch.
        assert _cursor(live[-1]["id"]) == [(cur[0][0], 4), (real, 4), (cur[2][0], 4)]
    finally:
        sse.close()


def test_sse_legacy_id_resumes_its_channel(server):
    c1, c2 = "chat:" + uniq(), "chat:" + uniq()
    _publish(server, c1, ["a1", "a2", "a3"])
    _publish(server, c2, ["b1", "b2", "b3"])
    sse = SSEStream(server, _query(make_token("bob"), c1, c2),
                    headers={"Last-Event-ID": f"{c2}@1"})
    try:
        assert sse.status == 200
        evs = sse.events(2)
        assert [_pos(e) for e in evs] == [(c2, 2), (c2, 3)]
        _publish(server, c1, ["a4"])
        (ev,) = sse.events(1)
        assert _pos(ev) == (c1, 4)  # c1 started live, after its head
        assert [p[1] for p in _cursor(ev["id"])] == [4, 3]
    finally:
        sse.close()


def test_sse_malformed_last_event_id_starts_live(server):
    c1, c2 = "chat:" + uniq(), "chat:" + uniq()
    acks = _publish(server, c1, ["a1", "a2"])
    _publish(server, c2, ["b1", "b2"])
    ep = acks[0]["epoch"]
    bad = [
        "garbage",
        "x" * 10240,
        "v1:" + "A" * 10000,
        "v1:",
        "v1:ZZZZZZZZ.1,zzzzzzzz.1",
        f"v1:{ep}.1,{ep}",
        f"v1:{ep}.99999999999999999999999,",
        f"v1:{ep}.-1,{ep}.1",
        "v1:" + ",".join([f"{ep}.1"] * 17),
        "v1:" + "," * 40,
        f"{c1}@x",
        f"nope:x@1",
        "@@@",
    ]
    for n, value in enumerate(bad):
        sse = SSEStream(server, _query(make_token("bob"), c1, c2),
                        headers={"Last-Event-ID": value})
        try:
            assert sse.status == 200, value[:40]
            _publish(server, c1, [f"live{n}"])
            (ev,) = sse.events(1)
            assert _pos(ev) == (c1, 3 + n), value[:40]
        finally:
            sse.close()


def test_sse_cursor_entry_count_differs(server):
    """Entries map to the query's channels by position: a missing one starts
    that channel live, an extra one is ignored."""
    c1, c2 = "chat:" + uniq(), "chat:" + uniq()
    acks = _publish(server, c1, ["a1", "a2"])
    e2 = _publish(server, c2, ["b1", "b2"])[0]["epoch"]
    e1 = acks[0]["epoch"]
    q = _query(make_token("bob"), c1, c2)
    sse = SSEStream(server, q, headers={"Last-Event-ID": f"v1:{e1}.1"})
    try:
        (ev,) = sse.events(1)
        assert _pos(ev) == (c1, 2)
        _publish(server, c2, ["b3"])
        (ev,) = sse.events(1)
        assert _pos(ev) == (c2, 3)
    finally:
        sse.close()
    sse = SSEStream(server, q, headers={"Last-Event-ID": f"v1:{e1}.1,{e2}.2,{e1}.0"})
    try:
        evs = sse.events(2)
        assert _by_channel(evs) == {c1: [2], c2: [3]}
    finally:
        sse.close()
