# Scenario family 4: recovery by offset. Resubscribing with `since` yields
# exactly the missed pubs then live ones; a changed epoch, a future offset or
# pubs trimmed by retention give recovered=false plus a gap push; a long
# absence streams the rest after `more`; and THE RESUBSCRIBE RACE: a
# subscriber that unsubscribes/resubscribes 50 times while a publisher runs
# flat out sees every offset exactly once, in order.
import asyncio
import random

from parley_client import SLOW, connect, offsets, run, scaled, uniq


async def _setup(server, ns="chat", n=5):
    pub = await connect(server, "alice")
    ch = f"{ns}:{uniq()}"
    acks = await pub.publish_many(ch, n, window=1) if n else []
    epoch = acks[0]["epoch"] if acks else (await pub.history(ch))["epoch"]
    return pub, ch, epoch, acks


def test_recover_from_position_then_live(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, n=5)
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch)
        assert r["offset"] == 5 and r["recovered"] is False and r["pubs"] == []
        await pub.publish_many(ch, 3, window=1)
        assert offsets(await sub.pubs(ch, 3)) == [6, 7, 8]
        await sub.close()
        # offline: 7 more
        acks = await pub.publish_many(ch, 7, data=lambda i: f"missed-{i}", window=1)
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch, since={"offset": 8, "epoch": epoch})
        assert r["recovered"] is True, r
        assert r["epoch"] == epoch and r["offset"] == 15
        assert offsets(r["pubs"]) == list(range(9, 16))
        assert [p["id"] for p in r["pubs"]] == [a["id"] for a in acks]
        assert [p["data"] for p in r["pubs"]] == [f"missed-{i}" for i in range(7)]
        assert r.get("more", False) is False
        await pub.publish(ch, "live")
        (p,) = await sub.pubs(ch, 1)
        assert p["offset"] == 16 and p["data"] == "live"
        assert [m for m in sub.mailbox if m.get("push") == "gap"] == []
        await sub.close()
        await pub.close()
    run(body())


def test_recover_at_head_is_recovered_and_empty(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, n=4)
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch, since={"offset": 4, "epoch": epoch})
        assert r["recovered"] is True and r["pubs"] == [] and r["offset"] == 4
        await pub.publish(ch, "next")
        assert offsets(await sub.pubs(ch, 1)) == [5]
        await sub.close()
        await pub.close()
    run(body())


def test_recover_with_limit_smaller_than_missed(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, n=30)
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch, since={"offset": 10, "epoch": epoch}, limit=5)
        assert r["recovered"] is True and r["more"] is True
        assert offsets(r["pubs"]) == [11, 12, 13, 14, 15]
        assert offsets(await sub.pubs(ch, 15)) == list(range(16, 31))
        await pub.publish(ch, "live")
        assert offsets(await sub.pubs(ch, 1)) == [31]
        await sub.close()
        await pub.close()
    run(body())


def test_epoch_changed_is_not_recovered(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, n=5)
        sub = await connect(server, "bob")
        other = "".join("b" if c == "a" else "a" for c in epoch)  # same length, differs
        r = await sub.subscribe(ch, since={"offset": 3, "epoch": other})
        assert r["recovered"] is False, r
        assert r["epoch"] == epoch and r["offset"] == 5
        assert offsets(r["pubs"]) == [1, 2, 3, 4, 5]  # newest retained
        gap = await sub.push("gap", ch)
        assert gap["epoch"] == epoch
        assert isinstance(gap["from"], int) and isinstance(gap["to"], int)
        assert gap["from"] <= gap["to"]
        await pub.publish(ch, "live")
        assert offsets(await sub.pubs(ch, 1)) == [6]
        await sub.close()
        await pub.close()
    run(body())


def test_any_foreign_epoch_string_is_a_mismatch_not_a_bad_request(server):
    # A client may hold an epoch from a wiped data dir or another install,
    # spelled any way: it is another epoch (recovered false, the newest pubs,
    # a gap 1..since), never error 107. "*" is no wildcard for clients.
    async def body():
        pub, ch, epoch, _ = await _setup(server, n=5)
        sub = await connect(server, "bob")
        for i, foreign in enumerate(["not-the-epoch", "*", "", "é" * 3, "x" * 300]):
            channel = ch if i == 0 else f"{ch}-{i}"
            if i:
                await pub.publish_many(channel, 5, window=5)
            r = await sub.subscribe(channel, since={"offset": 3, "epoch": foreign})
            assert "error" not in r, (foreign, r)
            assert r["recovered"] is False, (foreign, r)
            assert offsets(r["pubs"]) == [1, 2, 3, 4, 5], foreign
            gap = await sub.push("gap", channel)
            assert (gap["from"], gap["to"]) == (1, 3), (foreign, gap)
        await pub.publish(ch, "live")
        assert offsets(await sub.pubs(ch, 1)) == [6]
        await sub.close()
        await pub.close()
    run(body())


def test_since_beyond_head_is_not_recovered(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, n=5)
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch, since={"offset": 50, "epoch": epoch})
        assert r["recovered"] is False, r
        assert r["offset"] == 5
        assert offsets(r["pubs"]) == [1, 2, 3, 4, 5]
        gap = await sub.push("gap", ch)
        assert gap["epoch"] == epoch
        await pub.publish(ch, "live")
        assert offsets(await sub.pubs(ch, 1)) == [6]
        await sub.close()
        await pub.close()
    run(body())


def test_recovery_past_retention_gives_gap(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, ns="small", n=25)
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch, since={"offset": 2, "epoch": epoch})
        assert r["recovered"] is False, r
        assert r["offset"] == 25
        assert offsets(r["pubs"]) == list(range(16, 26))
        gap = await sub.push("gap", ch)
        assert (gap["from"], gap["to"]) == (3, 15), gap
        assert gap["epoch"] == epoch
        await pub.publish(ch, "live")
        assert offsets(await sub.pubs(ch, 1)) == [26]
        await sub.close()
        await pub.close()
    run(body())


def test_recovery_just_inside_retention(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, ns="small", n=25)
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch, since={"offset": 15, "epoch": epoch})
        assert r["recovered"] is True, r
        assert offsets(r["pubs"]) == list(range(16, 26))
        await sub.close()
        await pub.close()
    run(body())


def test_catch_up_streams_after_more(server):
    """1500 missed, limit 100: 100 in the result, 1400 streamed in order, then
    live pubs (published while the stream is running) continue the sequence."""
    async def body():
        n = scaled(1500, 600)
        pub, ch, epoch, _ = await _setup(server, ns="bulk", n=0)
        acks = await pub.publish_many(ch, n, data=lambda i: {"i": i}, window=100)
        assert sorted(offsets(acks)) == list(range(1, n + 1))
        epoch = acks[0]["epoch"]
        ids = {a["offset"]: a["id"] for a in acks}
        sub = await connect(server, "bob")
        r = await sub.subscribe(ch, since={"offset": 0, "epoch": epoch}, limit=100)
        assert r["recovered"] is True, r
        assert r["more"] is True
        assert offsets(r["pubs"]) == list(range(1, 101))
        seen = list(r["pubs"])
        live_acks = []
        while len(seen) < n + 5:
            (p,) = await sub.pubs(ch, 1)
            seen.append(p)
            if len(seen) == 300:  # live publishing races the catch-up stream
                for k in range(5):
                    live_acks.append(await pub.publish(ch, {"live": k}))
        assert offsets(seen) == list(range(1, n + 6))
        assert all(ids[p["offset"]] == p["id"] for p in seen[:n])
        assert [p["data"] for p in seen[n:]] == [{"live": k} for k in range(5)]
        assert offsets(live_acks) == list(range(n + 1, n + 6))
        assert [m for m in sub.mailbox if m.get("push") == "gap"] == []
        await asyncio.sleep(0.3)
        assert sub.drain_pubs(ch) == []
        await sub.close()
        await pub.close()
    run(body(), timeout=180 * SLOW)


def test_connect_with_subs_recovers(server):
    async def body():
        pub, ch, epoch, _ = await _setup(server, n=5)
        sub = await connect(server, "bob", params={
            "subs": {ch: {"offset": 2, "epoch": epoch}, "nope:x": {"offset": 0, "epoch": "e"}}})
        subs = sub.connect_result["subs"]
        assert subs[ch]["recovered"] is True
        assert offsets(subs[ch]["pubs"]) == [3, 4, 5]
        assert subs["nope:x"]["error"]["code"] == 102
        await pub.publish(ch, "live")
        assert offsets(await sub.pubs(ch, 1)) == [6]
        await sub.close()
        await pub.close()
    run(body())


class Publisher:
    """Publishes to a channel as fast as acks come back until stopped."""

    def __init__(self, client, ch):
        self.client, self.ch = client, ch
        self.acks = []
        self.stop = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        i = 0
        while not self.stop.is_set():
            burst = await asyncio.gather(*(self.client.publish(self.ch, {"i": i + k})
                                           for k in range(4)))
            self.acks.extend(burst)
            i += 4
            await asyncio.sleep(0.001)

    async def finish(self):
        self.stop.set()
        await self.task
        return max(a["offset"] for a in self.acks)


def _contiguous_report(seq, start):
    """'' when seq == start+1, start+2, ...; otherwise where it breaks."""
    for i, off in enumerate(seq):
        if off != start + 1 + i:
            return (f"at position {i}: expected {start + 1 + i}, got {off}; "
                    f"context {seq[max(0, i - 5):i + 5]}")
    return ""


def test_resubscribe_race(server):
    async def body():
        iterations = scaled(50, 20)
        ch = "bulk:" + uniq("race")
        pubc = await connect(server, "alice")
        subc = await connect(server, "bob")
        first = await subc.subscribe(ch)
        epoch, start = first["epoch"], first["offset"]
        publisher = Publisher(pubc, ch)
        # (arrival seq, offset, id) of everything the subscriber was handed
        seen = []
        recovered_total = 0

        def absorb_pushes():
            for p in subc.drain_pubs(ch):
                assert p["epoch"] == epoch
                seen.append((p["_seq"], 0, p["offset"], p["id"]))

        def last_offset():
            return max(seen)[2] if seen else start

        for _ in range(iterations):
            p = await subc.push("pub", ch)  # at least one live pub per round
            subc.mailbox.insert(0, p)
            await asyncio.sleep(random.uniform(0, 0.01))
            absorb_pushes()
            reply = await subc.rpc("unsubscribe", {"channel": ch})
            assert reply.get("result") == {}, reply
            absorb_pushes()
            await asyncio.sleep(random.uniform(0, 0.02))  # missed while away
            absorb_pushes()
            since = last_offset()
            reply = await subc.rpc("subscribe", {"channel": ch,
                                                 "since": {"offset": since, "epoch": epoch}})
            assert "result" in reply, reply
            r = reply["result"]
            assert r["recovered"] is True, (since, r)
            assert r["epoch"] == epoch
            recovered_total += len(r["pubs"])
            for k, rp in enumerate(r["pubs"]):
                seen.append((reply["_seq"], k + 1, rp["offset"], rp["id"]))
            absorb_pushes()

        head = await publisher.finish()
        while last_offset() < head:
            # wait for the next pub, put it back, and let absorb stamp it in order
            subc.mailbox.insert(0, await subc.push("pub", ch))
            absorb_pushes()
        absorb_pushes()
        seen.sort()
        seq = [s[2] for s in seen]
        problem = _contiguous_report(seq, start)
        assert not problem, f"subscriber stream broken {problem}"
        assert seq[-1] == head
        ids = {a["offset"]: a["id"] for a in publisher.acks}
        assert all(ids[off] == pid for _, _, off, pid in seen if off in ids)
        assert recovered_total > 0, "no iteration actually recovered anything"
        await subc.close()
        await pubc.close()
    run(body(), timeout=200 * SLOW)


def test_reconnect_race_with_connect_subs(server):
    """The same promise across reconnects: close, reconnect with subs."""
    async def body():
        rounds = scaled(15, 6)
        ch = "bulk:" + uniq("rc")
        pubc = await connect(server, "alice")
        subc = await connect(server, "bob")
        first = await subc.subscribe(ch)
        epoch, last = first["epoch"], first["offset"]
        publisher = Publisher(pubc, ch)
        seq = []
        for _ in range(rounds):
            for p in await subc.pubs(ch, 3):
                seq.append(p["offset"])
            seq += [p["offset"] for p in subc.drain_pubs(ch)]
            last = seq[-1]
            await subc.close()
            await asyncio.sleep(random.uniform(0, 0.02))
            subc = await connect(server, "bob",
                                 params={"subs": {ch: {"offset": last, "epoch": epoch}}})
            r = subc.connect_result["subs"][ch]
            assert r["recovered"] is True, r
            seq += offsets(r["pubs"])
        head = await publisher.finish()
        while seq[-1] < head:
            seq.append((await subc.push("pub", ch))["offset"])
        problem = _contiguous_report(seq, first["offset"])
        assert not problem, problem
        await subc.close()
        await pubc.close()
    run(body(), timeout=200 * SLOW)
