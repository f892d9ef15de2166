# Scenario family 51: slow-consumer policies per namespace. Many subscribers
# of a channel read everything while a few stop reading and pubs overflow
# their outbound queues (limits.outbound_queue_bytes). Per namespace:
# `disconnect` cuts the non-readers with 4001; `drop_oldest` keeps them
# connected and names what it dropped with gap pushes (pubs and gaps cover
# every offset exactly once); `latest` keeps them connected and their last
# pub is the newest published. The readers get every pub in order in all
# three cases, and the dropped-pubs counters move.
#
# A stalled loopback socket absorbs megabytes in kernel buffers before the
# server's queue grows at all; making every reader receive that much per
# channel would take minutes. So the stalled connections are first filled
# with ephemeral pubs of a channel only they subscribe to (shed under half
# the bound, never a reason to cut): the kernel buffers fill and half the
# queue holds filler, and the policy channels then overflow after a few
# dozen small pubs, the same for the stalled and cheap for the readers.
import json
import re
import selectors
import struct
import subprocess
import tempfile
import threading
import time

from parley_client import (SLOW, Closed, RawWS, connect, make_token, parley_bin, run, scaled,
                           uniq)

BOUND = 65536
READERS = scaled(990, 190)
STALLED = 10  # non-readers per policy
PUBS = 100
BLOB = "p" * 1000  # 100 pubs of 1 KB: past the room the filler leaves (under 48 KB)
FILL = "f" * 8000  # 640 ephemeral pubs: 5 MB, past what the kernel absorbs (tcp_wmem max 4 MB)
FILL_PUBS = 640
PUB_RE = re.compile(rb'\{"push":"(pub|gap)","channel":"([^"]*)","(?:offset|epoch)":"?(\w+)')


def _policies(cfg):
    cfg["limits"]["outbound_queue_bytes"] = BOUND
    for ns in cfg["namespaces"]:
        if ns["name"] == "chat":
            ns["slow_consumer"] = "disconnect"
    cfg["namespaces"] += [
        {"name": "dash", "slow_consumer": "drop_oldest"},
        {"name": "tick", "slow_consumer": "latest"},
        {"name": "fill", "class": "ephemeral", "history_size": 0, "presence": False},
    ]


def parse_frames(buf):
    """The JSON messages of the complete text frames in buf, and the rest."""
    msgs, pos = [], 0
    while len(buf) - pos >= 2:
        n, hl = buf[pos + 1] & 0x7F, 2
        if n == 126:
            if len(buf) - pos < 4:
                break
            n, hl = struct.unpack("!H", buf[pos + 2:pos + 4])[0], 4
        elif n == 127:
            if len(buf) - pos < 10:
                break
            n, hl = struct.unpack("!Q", buf[pos + 2:pos + 10])[0], 10
        if len(buf) - pos < hl + n:
            break
        if buf[pos] & 0x0F == 1:
            payload = bytes(buf[pos + hl:pos + hl + n]).decode()
            msgs.extend(json.loads(line) for line in payload.split("\n") if line.strip())
        pos += hl + n
    return msgs, buf[pos:]


class Readers:
    """Cheap readers: raw sockets drained by one selector thread that notes
    the channel and offset of each pub and drops the bytes (asyncio clients
    by the thousand, or keeping every byte, are slow on a small machine)."""

    def __init__(self, conns):
        self.conns = conns
        self.tails = [bytes(c.buf) for c in conns]
        self.got = [{} for _ in conns]  # channel -> offsets, in order received
        self.gaps = [0] * len(conns)
        self.stop = threading.Event()
        self.sel = selectors.DefaultSelector()
        for i, c in enumerate(conns):
            c.sock.setblocking(False)
            self.sel.register(c.sock, selectors.EVENT_READ, i)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _scan(self, i, data):
        data = self.tails[i] + data
        end = 0
        for m in PUB_RE.finditer(data):
            if m.group(1) == b"gap":
                self.gaps[i] += 1
            else:
                self.got[i].setdefault(m.group(2).decode(), []).append(int(m.group(3)))
            end = m.end()
        # a match may straddle two reads: keep the tail after the last one
        self.tails[i] = data[max(end, len(data) - 200):]

    def _loop(self):
        while not self.stop.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                try:
                    data = key.fileobj.recv(1 << 20)
                except (BlockingIOError, ConnectionError):
                    continue
                if data:
                    self._scan(key.data, data)

    def wait_for(self, ch, n, timeout):
        """Until every reader has pub n of ch."""
        deadline = time.monotonic() + timeout
        for got in self.got:
            while not got.get(ch) or got[ch][-1] < n:
                assert time.monotonic() < deadline, "readers fell behind"
                time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join()
        self.sel.close()


def _subscribed(srv, user, channels, rcvbuf=None):
    ws = RawWS(srv, rcvbuf=rcvbuf)
    assert "result" in ws.rpc("connect", {"token": make_token(user)})
    for ch in channels:
        assert "result" in ws.rpc("subscribe", {"channel": ch}), ch
    return ws


def _offsets_and_gaps(msgs, ch):
    pubs = [m["offset"] for m in msgs if m.get("push") == "pub" and m.get("channel") == ch]
    gaps = [(m["from"], m["to"]) for m in msgs if m.get("push") == "gap" and m["channel"] == ch]
    return pubs, gaps


def _covered_once(pubs, gaps, n):
    seen = list(pubs)
    for lo, hi in gaps:
        assert lo <= hi, (lo, hi)
        seen.extend(range(lo, hi + 1))
    assert sorted(seen) == list(range(1, n + 1)), (pubs, gaps)


def _read_stalled(ws, ch, n, timeout):
    """Reads a non-reader's backlog until offset n is named (a pub or a gap
    up to it); the connection must still be open."""
    ws.sock.settimeout(timeout)
    msgs = []
    while True:
        try:
            msgs.extend(ws.recv_messages())
        except Closed as e:
            raise AssertionError(f"{ch}: closed with {e}") from None
        pubs, gaps = _offsets_and_gaps(msgs, ch)
        if (pubs and pubs[-1] == n) or any(hi == n for _, hi in gaps):
            return msgs


def test_policies_with_many_subscribers_and_a_few_stalled(server_factory):
    srv = server_factory(_policies, name="policies")
    dash, tick, chat = "dash:" + uniq(), "tick:" + uniq(), "chat:" + uniq()
    started = time.monotonic()
    fill = "fill:" + uniq()
    stalled = {ch: [_subscribed(srv, f"st{i}", [fill, ch], rcvbuf=4096) for i in range(STALLED)]
               for ch in (dash, tick, chat)}
    readers = Readers([_subscribed(srv, f"r{i}", [dash, tick, chat]) for i in range(READERS)])
    setup = time.monotonic() - started

    async def publish():
        pub = await connect(srv, "alice")
        # one at a time: a write in progress counts as queued, so pubs sent
        # together would be shed before the kernel buffers are full
        for _ in range(FILL_PUBS):
            await pub.publish(fill, {"f": FILL})
        for ch in (dash, tick, chat):
            acks = await pub.publish_many(ch, PUBS, data=lambda i: {"i": i, "b": BLOB},
                                          window=8)
            assert [a["offset"] for a in acks] == list(range(1, PUBS + 1))
        await pub.close()

    run(publish(), timeout=120 * SLOW)
    readers.wait_for(chat, PUBS, timeout=60 * SLOW)
    readers.finish()
    for got, gaps in zip(readers.got, readers.gaps):
        assert gaps == 0
        for ch in (dash, tick, chat):
            assert got.get(ch) == list(range(1, PUBS + 1)), ch

    # disconnect: cut with 4001 (or already gone); the stream before it is clean
    for ws in stalled[chat]:
        code, msgs, how = ws.read_to_close(timeout=20 * SLOW)
        assert how in ("close", "eof", "reset"), how
        if how == "close":
            assert code == 4001, code
        pubs, gaps = _offsets_and_gaps(msgs, chat)
        assert pubs == sorted(set(pubs)) and not gaps and (not pubs or pubs[-1] < PUBS)
    # drop_oldest: still connected; pubs and gaps name every offset once,
    # each gap ahead of the newer pubs (offset order)
    for ws in stalled[dash]:
        msgs = _read_stalled(ws, dash, PUBS, timeout=20 * SLOW)
        pubs, gaps = _offsets_and_gaps(msgs, dash)
        assert gaps, "nothing was dropped: the scenario did not overflow the queue"
        _covered_once(pubs, gaps, PUBS)
        order = [m["offset"] if m["push"] == "pub" else m["from"] for m in msgs
                 if m.get("push") in ("pub", "gap") and m["channel"] == dash]
        assert order == sorted(order), order
        assert ws.rpc("presence", {"channel": dash}) is not None  # still answers
    # latest: still connected; the last pub read is the newest, gaps cover the rest
    for ws in stalled[tick]:
        msgs = _read_stalled(ws, tick, PUBS, timeout=20 * SLOW)
        pubs, gaps = _offsets_and_gaps(msgs, tick)
        assert gaps and pubs[-1] == PUBS, (pubs, gaps)
        _covered_once(pubs, gaps, PUBS)
    print(f"{READERS} readers + {3 * STALLED} stalled: setup {setup:.1f}s, "
          f"total {time.monotonic() - started:.1f}s")

    assert srv.metric("parley_slow_consumer_disconnects_total") >= STALLED
    assert srv.metric("parley_slow_consumer_dropped_total", {"policy": "drop_oldest"}) > 0
    assert srv.metric("parley_slow_consumer_dropped_total", {"policy": "latest"}) > 0
    for ws in stalled[dash] + stalled[tick] + stalled[chat]:
        ws.close()
    for c in readers.conns:
        c.close()


def test_bad_slow_consumer_value_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text('namespaces:\n  - {name: chat}\n  - name: dash\n    slow_consumer: drop_newest\n')
    with tempfile.TemporaryDirectory(prefix="parley-itest-cli-") as cwd:
        res = subprocess.run([parley_bin(), "check-config", str(path)], capture_output=True,
                             text=True, timeout=30 * SLOW, cwd=cwd)
    assert res.returncode != 0
    msg = res.stderr + res.stdout
    assert f"{path}:4:20:" in msg, msg
    assert "expected one of disconnect, drop_oldest, latest" in msg, msg
