# Cluster mode: several nodes share one real redis-server (engine type
# redis). Publish on one node, subscribe on another, history from a third;
# recovery and idempotency across nodes; Redis killed, paused and flushed
# while pubs flow; a node killed while its clients subscribe. Every check is
# on what clients see: every acked pub, once, in order, or a documented
# close they resume from.
import asyncio
import os
import signal
import subprocess
import tempfile
import time

import pytest

from helpers_cluster import Redis, Sentinel, cluster_config, ready, start_nodes, wait_ready
from parley_client import (SLOW, Closed, RpcError, connect, free_port, default_config, offsets, parley_bin,
                           render_yaml, run, scaled, uniq)


@pytest.fixture(scope="module")
def redis():
    r = Redis().start()
    yield r
    r.cleanup()


@pytest.fixture
def nodes(server_factory, redis):
    return start_nodes(server_factory, redis)


def test_pubs_reach_subscribers_on_every_node_in_order(nodes):
    """Publishers on all three nodes into one channel: every subscriber, on
    any node, sees offsets 1..N once and in order, and the history read on
    a third node is the same sequence with the same ids."""
    a, b, c = nodes

    async def body():
        ch = f"chat:{uniq()}"
        subs = [await connect(n, f"s{i}") for i, n in enumerate(nodes)]
        for s in subs:
            await s.subscribe(ch)
        pubs = [await connect(n, f"p{i}") for i, n in enumerate(nodes)]
        n = scaled(200, 50)
        acks = await asyncio.gather(*(p.publish_many(ch, n, data=lambda i, k=k: {"k": k, "i": i})
                                      for k, p in enumerate(pubs)))
        by_offset = {x["offset"]: x["id"] for batch in acks for x in batch}
        assert sorted(by_offset) == list(range(1, 3 * n + 1))
        for s in subs:
            got = await s.pubs(ch, 3 * n)
            assert offsets(got) == list(range(1, 3 * n + 1))
            assert all(p["id"] == by_offset[p["offset"]] for p in got)
        reader = await connect(c, "reader")
        hist, _ = await reader.full_history(ch)
        assert [(p["offset"], p["id"]) for p in hist] == sorted(by_offset.items())
        for cl in subs + pubs + [reader]:
            await cl.close()

    run(body())


def test_resume_on_another_node_recovers_what_was_missed(nodes):
    a, b, c = nodes

    async def body():
        ch = f"chat:{uniq()}"
        pub = await connect(a, "alice")
        sub = await connect(b, "bob")
        r = await sub.subscribe(ch)
        first = await pub.publish_many(ch, 5, window=1)
        assert offsets(await sub.pubs(ch, 5)) == [1, 2, 3, 4, 5]
        await sub.close()
        missed = await pub.publish_many(ch, 7, data=lambda i: f"missed-{i}", window=1)
        sub = await connect(c, "bob")
        r = await sub.subscribe(ch, since={"offset": 5, "epoch": first[0]["epoch"]})
        assert r["recovered"] is True, r
        assert offsets(r["pubs"]) == list(range(6, 13))
        assert [p["id"] for p in r["pubs"]] == [m["id"] for m in missed]
        await pub.publish(ch, "live")
        (p,) = await sub.pubs(ch, 1)
        assert p["offset"] == 13 and p["data"] == "live"
        assert not [m for m in sub.mailbox if m.get("push") == "gap"]
        await sub.close()
        await pub.close()

    run(body())


def test_idempotency_key_is_shared_by_the_nodes(nodes):
    a, b, _ = nodes

    async def body():
        ch = f"chat:{uniq()}"
        ca, cb = await connect(a, "alice"), await connect(b, "alice")
        one = await ca.publish(ch, {"v": 1}, idempotency_key="order-7")
        two = await cb.publish(ch, {"v": 2}, idempotency_key="order-7")
        assert one["duplicate"] is False and two["duplicate"] is True
        assert (two["offset"], two["id"], two["epoch"]) == (one["offset"], one["id"], one["epoch"])
        hist = await cb.history(ch)
        assert [p["data"] for p in hist["pubs"]] == [{"v": 1}]
        await ca.close()
        await cb.close()

    run(body())


def test_read_cursors_are_shared_by_the_nodes(nodes):
    a, b, _ = nodes

    async def body():
        ch = f"chat:{uniq()}"
        ca, cb = await connect(a, "alice"), await connect(b, "bob")
        await ca.publish_many(ch, 4, window=1)
        rd = await ca.call("read", {"channel": ch, "offset": 3})
        assert rd["offset"] == 3
        back = await ca.call("read", {"channel": ch, "offset": 2})
        assert back["offset"] == 3  # a cursor never moves back
        await cb.subscribe(ch)
        cur = await cb.call("cursors", {"channel": ch})
        assert {"user": "alice", "offset": 3} in cur["cursors"], cur
        await ca.close()
        await cb.close()

    run(body())


def test_ephemeral_pubs_and_signals_cross_nodes(nodes):
    """An ephemeral pub, a typing signal and join/leave pushes made on one
    node reach subscribers on the others; the sender gets no typing echo."""
    a, b, c = nodes

    async def body():
        ch = f"room:{uniq()}"
        alice, bob, carol = (await connect(a, "alice"), await connect(b, "bob"),
                             await connect(c, "carol"))
        await bob.subscribe(ch)
        await carol.subscribe(ch)
        await alice.subscribe(ch)
        for cl in (bob, carol):
            j = await cl.push("join", ch)
            while j["info"]["user"] != "alice":
                j = await cl.push("join", ch)
        ack = await alice.publish(ch, "flash", **{"class": "ephemeral"})
        assert "offset" not in ack or not ack["offset"]
        for cl in (bob, carol):
            p = await cl.push("pub", ch)
            assert p["data"] == "flash" and p.get("class") == "ephemeral"
        assert await alice.call("typing", {"channel": ch}) == {}
        for cl in (bob, carol):
            t = await cl.push("typing", ch)
            assert t["user"] == "alice"
        await asyncio.sleep(0.3)
        assert not alice.drain(lambda m: m.get("push") == "typing")
        await alice.call("unsubscribe", {"channel": ch})
        for cl in (bob, carol):
            lv = await cl.push("leave", ch)
            assert lv["info"]["user"] == "alice"
        hist = await bob.history(ch)
        assert hist["pubs"] == []  # ephemeral: never stored
        for cl in (alice, bob, carol):
            await cl.close()

    run(body())


def test_guaranteed_class_is_refused_as_not_available(server_factory, redis):
    def tweak(c):
        c.update(cluster_config(redis, uniq("t")))
        c["namespaces"].append({"name": "inbox", "class": "guaranteed"})
    srv = server_factory(tweak, name="gd")
    wait_ready(srv)

    async def body():
        cl = await connect(srv, "alice")
        with pytest.raises(RpcError) as e:
            await cl.publish("inbox:#alice", {"x": 1})
        assert e.value.code == 108
        await cl.close()

    run(body())


def test_node_killed_clients_resume_on_another_without_gaps(nodes):
    """kill -9 the node a subscriber is on while pubs flow: it reconnects to
    another node with `since` and ends with every offset exactly once."""
    a, b, c = nodes

    async def body():
        ch = f"chat:{uniq()}"
        n = scaled(400, 100)
        pub = await connect(a, "alice")
        sub = await connect(b, "bob")
        await sub.subscribe(ch)
        seen = []

        async def publish_all():
            for i in range(0, n, 20):
                await pub.publish_many(ch, 20, window=20)
                await asyncio.sleep(0.01)

        task = asyncio.ensure_future(publish_all())
        while len(seen) < n // 4:
            seen += offsets(await sub.pubs(ch, 1))
        b.kill()
        seen += offsets(sub.drain_pubs(ch))
        await sub.close()
        sub = await connect(c, "bob")
        epoch = (await sub.history(ch, limit=1))["epoch"]
        r = await sub.subscribe(ch, since={"offset": seen[-1], "epoch": epoch})
        assert r["recovered"] is True, r
        seen += offsets(r["pubs"])
        await task
        while len(seen) < n:
            seen += offsets(await sub.pubs(ch, 1))
        assert seen == list(range(1, n + 1))
        await sub.close()
        await pub.close()

    run(body())


def _acked_history_check(acked, hist):
    """Every acked pub is in history once, at its offset; offsets 1..head."""
    got = {p["offset"]: p["id"] for p in hist}
    assert [p["offset"] for p in hist] == list(range(1, len(hist) + 1))
    for off, pid in acked.items():
        assert got.get(off) == pid, (off, pid, got.get(off))


class Publisher:
    """Publishes in a loop until stopped, recording acked offsets and ids
    and error codes; reconnects when the node tells it to resume (4004)."""

    def __init__(self, node, ch):
        self.node, self.ch = node, ch
        self.acked, self.errors, self.resumes = {}, [], 0
        self.stop = asyncio.Event()

    async def run(self):
        cl = await connect(self.node, "alice")
        i = 0
        while not self.stop.is_set():
            try:
                r = await cl.call("publish", {"channel": self.ch, "data": {"i": i}},
                                  timeout=15 * SLOW)
                self.acked[r["offset"]] = r["id"]
            except RpcError as e:
                self.errors.append(e.code)
                await asyncio.sleep(0.05)
            except Closed:
                assert cl.close_code == 4004, cl.close_code
                self.resumes += 1
                cl = await connect(self.node, "alice")
            i += 1
        await cl.close()


def test_redis_down_answers_113_and_everything_resumes(server_factory):
    """Redis killed (AOF always) while pubs flow: publishes answer 113, the
    nodes are not ready, subscribers stay connected; Redis restarted: ready
    again, and every acked pub is in history once at its offset and reached
    the subscriber on the other node."""
    r = Redis().start()
    try:
        a, b = start_nodes(server_factory, r, n=2)

        async def body():
            ch = f"crash:{uniq()}"  # unlimited retention: every acked pub stays
            sub = await connect(b, "bob")
            await sub.subscribe(ch)
            pub = Publisher(a, ch)
            task = asyncio.ensure_future(pub.run())
            await asyncio.sleep(0.5)
            r.kill()
            await asyncio.sleep(1.0)
            assert not ready(a) and not ready(b)
            assert 113 in pub.errors and set(pub.errors) == {113}, pub.errors
            r.start()
            for n in (a, b):
                wait_ready(n)
            await asyncio.sleep(0.5)
            pub.stop.set()
            await task
            assert not sub.closed.is_set() and pub.resumes == 0
            hist, _ = await sub.full_history(ch)
            _acked_history_check(pub.acked, hist)
            got = offsets(await sub.pubs(ch, len(hist)))
            assert got == list(range(1, len(hist) + 1))
            await sub.close()

        run(body())
        assert "redis_down" in a.log_text()
    finally:
        r.cleanup()


def test_redis_paused_3s_no_silent_hole_and_not_ready(server_factory):
    r = Redis().start()
    try:
        nodes = start_nodes(server_factory, r, n=3)

        async def body():
            ch = f"crash:{uniq()}"  # unlimited retention: every acked pub stays
            subs = [await connect(n, f"s{i}") for i, n in enumerate(nodes)]
            for s in subs:
                await s.subscribe(ch)
            pub = Publisher(nodes[0], ch)
            task = asyncio.ensure_future(pub.run())
            await asyncio.sleep(0.3)
            r.pause()
            red = False
            t0 = time.monotonic()
            while time.monotonic() - t0 < 4.5:
                red = red or not ready(nodes[1])
                await asyncio.sleep(0.1)
            r.resume()
            assert red, "/readyz stayed 200 while Redis was paused"
            for n in nodes:
                wait_ready(n)
            await asyncio.sleep(0.3)
            pub.stop.set()
            await task
            assert pub.resumes == 0
            hist, _ = await subs[0].full_history(ch)
            _acked_history_check(pub.acked, hist)
            for s in subs:
                got = offsets(await s.pubs(ch, len(hist)))
                assert got == list(range(1, len(hist) + 1))
            for cl in subs:
                await cl.close()

        run(body())
    finally:
        r.cleanup()


def test_node_behind_the_trimmed_stream_tells_its_clients_to_resume(server_factory, redis):
    """A node stopped while more than notify_maxlen pubs go by finds, when
    it runs again, that the entries it missed were trimmed: its clients are
    closed with 4004 (never a silent hole), and a resubscribe with `since`
    recovers every pub from the channel's stream."""
    a, b = start_nodes(server_factory, redis, n=2, notify_maxlen=1000)

    async def body():
        ch = f"crash:{uniq()}"
        pub, sub = await connect(a, "alice"), await connect(b, "bob")
        await sub.subscribe(ch)
        first = await pub.publish(ch, 0)
        assert offsets(await sub.pubs(ch, 1)) == [1]
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            await pub.publish_many(ch, 3000)
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        code, reason = await sub.wait_closed(timeout=10 * SLOW)
        assert (code, reason) == (4004, "resume required")
        got = offsets(sub.drain_pubs(ch))
        assert got == list(range(2, 2 + len(got)))  # what came before the close, in order
        sub = await connect(b, "bob")
        last = got[-1] if got else 1
        res = await sub.subscribe(ch, since={"offset": last, "epoch": first["epoch"]})
        assert res["recovered"] is True
        seen = offsets(res["pubs"])
        while (seen[-1] if seen else last) < 3001:
            seen += offsets(await sub.pubs(ch, 1))
        assert seen == list(range(last + 1, 3002))
        await pub.close()
        await sub.close()

    run(body())
    assert "trimmed before this node read them" in b.log_text()


def test_redis_lost_its_data_clients_are_told_to_resume(server_factory):
    """FLUSHALL (what a Redis without persistence does on restart): the
    nodes see the notification stream restart, close their clients with
    4004, and a resubscribe with the old epoch is not recovered."""
    r = Redis(appendfsync=None).start()
    try:
        a, b = start_nodes(server_factory, r, n=2)

        async def body():
            ch = f"chat:{uniq()}"
            pub, sub = await connect(a, "alice"), await connect(b, "bob")
            await sub.subscribe(ch)
            acks = await pub.publish_many(ch, 3, window=1)
            assert offsets(await sub.pubs(ch, 3)) == [1, 2, 3]
            assert r.command("FLUSHALL") == b"+OK\r\n"
            code, reason = await sub.wait_closed(timeout=10 * SLOW)
            assert code == 4004 and reason == "resume required", (code, reason)
            sub = await connect(b, "bob")
            res = await sub.subscribe(ch, since={"offset": 3, "epoch": acks[0]["epoch"]})
            assert res["recovered"] is False and res["epoch"] != acks[0]["epoch"]
            await sub.close()

        run(body())
        assert "redis_resync" in b.log_text()
    finally:
        r.cleanup()


def test_redis_back_without_its_last_writes_changes_the_epoch(server_factory):
    """Redis restarts from a snapshot older than the last acked pubs (what
    AOF everysec or RDB persistence can do): the nodes find the counter
    behind what they read, clients are told to resume (4004), and the
    channel continues under a new epoch, so no client takes the reused
    offsets for the pubs it saw."""
    r = Redis(appendfsync=None).start()
    try:
        a, b = start_nodes(server_factory, r, n=2)

        async def body():
            ch = f"chat:{uniq()}"
            pub, sub = await connect(a, "alice"), await connect(b, "bob")
            await sub.subscribe(ch)
            old = await pub.publish_many(ch, 5, window=1)
            assert r.command("SAVE") == b"+OK\r\n"
            lost = await pub.publish_many(ch, 5, window=1)
            assert offsets(await sub.pubs(ch, 10)) == list(range(1, 11))
            r.kill()
            r.start()
            code, _ = await sub.wait_closed(timeout=10 * SLOW)
            assert code == 4004
            for n in (a, b):
                wait_ready(n)
            code, _ = await pub.wait_closed(timeout=10 * SLOW)
            assert code == 4004
            pub, sub = await connect(a, "alice"), await connect(b, "bob")
            res = await sub.subscribe(ch, since={"offset": 10, "epoch": lost[-1]["epoch"]})
            assert res["recovered"] is False and res["epoch"] != old[0]["epoch"], res
            again = await pub.publish(ch, "after")
            assert again["epoch"] == res["epoch"] and again["offset"] == 6, again
            hist = await sub.history(ch)
            assert [p["id"] for p in hist["pubs"][:5]] == [o["id"] for o in old]
            await pub.close()
            await sub.close()

        run(body())
    finally:
        r.cleanup()


def test_sentinel_failover_keeps_every_acked_pub(server_factory):
    """One primary, one replica, three sentinels, min_replicas_acked 1: kill
    -9 the primary while pubs flow. Every acked pub survives at its offset
    with its id; publishes answer 113 during the failover and succeed after
    it (once the old primary is back as a replica); a subscriber ends with
    every acked pub in order, or was told to resume (4004)."""
    primary = Redis().start()
    replica = Redis(replicaof=primary).start()
    sentinels = [Sentinel(primary).start() for _ in range(3)]
    try:
        deadline = time.monotonic() + 15
        while b"state=online" not in primary.command("INFO", "replication"):
            assert time.monotonic() < deadline, "the replica never connected"
            time.sleep(0.1)
        addrs = [f"127.0.0.1:{s.port}" for s in sentinels]
        a, b = start_nodes(server_factory, primary, n=2,
                           sentinel={"addresses": addrs, "master": "m"}, min_replicas_acked=1)

        async def body():
            ch = f"crash:{uniq()}"  # unlimited retention
            sub = await connect(b, "bob")
            await sub.subscribe(ch)
            pub = Publisher(a, ch)
            task = asyncio.ensure_future(pub.run())
            await asyncio.sleep(1.0)
            before = len(pub.acked)
            assert before > 0
            primary.kill()
            t0 = time.monotonic()
            while sentinels[0].master_port() != replica.port:
                assert time.monotonic() - t0 < 20, "no failover within 20 s"
                await asyncio.sleep(0.2)
            # The old primary comes back as the new one's replica (as
            # Sentinel or an operator makes it), and acks resume.
            primary.replicaof = replica
            primary.start()
            while b"state=online" not in replica.command("INFO", "replication"):
                assert time.monotonic() - t0 < 40, "the old primary never became a replica"
                await asyncio.sleep(0.2)
            for n in (a, b):
                wait_ready(n, timeout=20)
            n_after = len(pub.acked)
            await asyncio.sleep(1.5)
            pub.stop.set()
            await task
            assert len(pub.acked) > n_after, "no publish succeeded after the failover"
            assert set(pub.errors) <= {113}, pub.errors
            reader = await connect(b, "reader")
            hist, _ = await reader.full_history(ch)
            got = {p["offset"]: p["id"] for p in hist}
            for off, pid in pub.acked.items():
                assert got.get(off) == pid, (off, pid, got.get(off))
            if sub.closed.is_set():
                assert sub.close_code == 4004, sub.close_code
            else:
                seen = sub.drain_pubs(ch)
                while len(seen) < len(hist):
                    seen.append(await sub.push("pub", ch))
                assert offsets(seen) == list(range(1, len(hist) + 1))
            for cl in (sub, reader):
                await cl.close()

        run(body(), timeout=90)
    finally:
        for r in [primary, replica] + sentinels:
            r.cleanup()


def _check(text, tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([parley_bin(), "check-config", str(p)], capture_output=True,
                              text=True, timeout=30, cwd=cwd)


@pytest.mark.parametrize("yaml,line,words", [
    ('engine: {type: redis, address: "nohost"}\n', 1, "is not HOST:PORT"),
    ('engine: {type: redis, address: "127.0.0.1:99999"}\n', 1, "is not HOST:PORT"),
    ('engine: {type: redis, prefix: "a b"}\n', 1, "is not a key prefix"),
    ('engine: {type: redis, prefix: ""}\n', 1, "is not a key prefix"),
    ('engine: {type: redis, shards: ["127.0.0.1:7000"]}\n', 1, "not supported yet"),
    ('engine: {type: redis, sentinel: {master: m}}\n', 1, "missing key 'addresses'"),
    ('engine: {type: redis, min_replicas_acked: 99}\n', 1, "min_replicas_acked"),
    ('engine: {type: redis, notify_maxlen: 10}\n', 1, "notify_maxlen"),
    ('engine: {type: mongo}\n', 1, "unknown engine type"),
    ('engine: {type: redis}\nwebhooks:\n  - {id: e, tenant: default, url: "http://x/"}\n', 3,
     "need engine type sqlite"),
])
def test_bad_engine_config_is_refused_with_its_line(tmp_path, yaml, line, words):
    res = _check(yaml, tmp_path)
    assert res.returncode != 0
    assert f":{line}:" in res.stderr and words in res.stderr, res.stderr


def test_engine_redis_config_is_accepted(tmp_path):
    res = _check('engine: {type: redis, address: "127.0.0.1:6379", password: "pw", db: 2, '
                 'prefix: "prod", notify_maxlen: 50000}\n', tmp_path)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("yaml,line,words", [
    ('engine: {type: sqlite, prefix: "p"}\n', 1, "engine.prefix: only with engine type redis"),
    ('engine: {type: redis, max_db_bytes: 5}\n', 1, "engine.max_db_bytes: only with engine type sqlite"),
    ('engine: {type: redis}\ntenants:\n  - {id: a, jwt_secret: "s", storage_bytes: 100}\n', 3,
     "tenants[0].storage_bytes: needs engine type sqlite"),
])
def test_keys_of_the_other_engine_are_refused(tmp_path, yaml, line, words):
    res = _check(yaml, tmp_path)
    assert res.returncode != 0
    assert f":{line}:" in res.stderr and words in res.stderr, res.stderr


def test_check_config_warns_of_a_redis_weaker_than_the_config(tmp_path, redis):
    """check-config looks at the Redis it can reach: a missing replica for
    min_replicas_acked, no AOF, or no Redis at all are warnings (the file
    is valid: nodes wait for Redis), each saying what it costs."""
    loose = Redis(appendfsync=None).start()
    try:
        cases = [
            (redis.port, "min_replicas_acked: 1", ["min_replicas_acked is 1", "0 replicas"]),
            (loose.port, "", ["has appendonly no"]),
            (free_port(), "", ["cannot reach Redis"]),
        ]
        for port, extra, words in cases:
            res = _check(f'engine: {{type: redis, address: "127.0.0.1:{port}"'
                         f'{", " + extra if extra else ""}}}\n', tmp_path)
            assert res.returncode == 0, res.stderr
            assert all(w in res.stderr for w in words), (words, res.stderr)
        res = _check(f'engine: {{type: redis, address: "127.0.0.1:{redis.port}"}}\n', tmp_path)
        assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
    finally:
        loose.cleanup()
