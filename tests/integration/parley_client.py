# Test-side helpers for the Parley integration suite: a server process
# manager (config, start, SIGTERM/SIGKILL, restart on the same data dir),
# HS256 token minting, an asyncio WebSocket client with selective receive, a
# raw-socket WebSocket client for hostile frames, and a small SSE reader.
import asyncio
import base64
import codecs
import copy
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid

import websockets

SANITIZED = os.environ.get("PARLEY_SANITIZED") == "1"
SLOW = 3 if SANITIZED else 1  # timeout multiplier
T = 10 * SLOW  # default wait for one expected message

SECRETS = {"acme": "acme-secret-0123456789", "globex": "globex-secret-0123456789"}


def scaled(n, sanitized_n):
    """Loop count: full normally, reduced under the (slow) sanitized build."""
    return sanitized_n if SANITIZED else n


def uniq(prefix="c"):
    """A channel-safe unique name so tests sharing a server never collide."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- tokens


def _b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_encode(claims, secret, alg="HS256", header=None):
    head = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing = _b64url(json.dumps(head).encode()) + "." + _b64url(json.dumps(claims).encode())
    if alg == "none":
        return signing + "."
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + _b64url(sig)


def make_token(user="alice", tenant="acme", ttl=3600, secret=None, **extra):
    claims = {"sub": user, "tenant": tenant, "exp": int(time.time()) + ttl}
    claims.update(extra)
    return jwt_encode(claims, secret if secret is not None else SECRETS[tenant])


def channel_token(channel, user="alice", tenant="acme", ttl=3600, secret=None):
    return make_token(user, tenant, ttl, secret, channel=channel)


# ---------------------------------------------------------------- server


def default_config():
    """The suite's standard configuration; callers tweak it."""
    return {
        # No web app unless a test asks: the binary may have one beside it.
        "web_root": "",
        "ping_interval": "25s",
        "limits": {
            "max_message_bytes": 65536,
            "max_frame_bytes": 1048576,
            "max_channels_per_connection": 128,
            "outbound_queue_bytes": 1048576,
            "handshake_timeout": "10s",
        },
        "tenants": [
            {"id": "acme", "jwt_secret": SECRETS["acme"]},
            {"id": "globex", "jwt_secret": SECRETS["globex"]},
        ],
        "namespaces": [
            {"name": "", "history_size": 1000, "history_ttl": "24h"},
            {"name": "chat", "history_size": 1000},
            {"name": "small", "history_size": 10},
            {"name": "news", "client_publish": False},
            {"name": "secret", "private": True},
            {"name": "dm"},
            # large retention for the 1500-pub catch-up and the resubscribe race
            {"name": "bulk", "history_size": 5000},
            # unlimited retention for the cumulative crash test
            {"name": "crash", "history_size": 0, "history_ttl": "0s"},
        ],
    }


def redis_engine():
    """PARLEY_REDIS=HOST:PORT runs every server of the suite on the redis
    engine (cluster mode with one node), each with its own key prefix."""
    addr = os.environ.get("PARLEY_REDIS")
    if not addr:
        return None
    return {"type": "redis", "address": addr, "prefix": uniq("s")}


def render_yaml(cfg):
    """Block YAML at the top level, JSON flow style (valid YAML) below it."""
    lines = []
    for key, val in cfg.items():
        if isinstance(val, list):
            lines.append(f"{key}:")
            lines.extend(f"  - {json.dumps(item)}" for item in val)
        else:
            lines.append(f"{key}: {json.dumps(val)}")
    return "\n".join(lines) + "\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parley_bin():
    path = os.environ.get("PARLEY_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "build", "parley")
    return os.path.abspath(path)


class ServerError(AssertionError):
    pass


CLUSTER_NODES = int(os.environ.get("PARLEY_CLUSTER", "1"))


class ParleyServer:
    """One server process on 127.0.0.1 with its own data dir; restartable.
    With PARLEY_REDIS and PARLEY_CLUSTER=N it is N nodes sharing one key
    prefix: clients open WebSockets on the nodes in turn and API requests
    go to the nodes in turn, so a test publishes on one node, subscribes on
    another and reads history from a third; /metrics, /healthz, raw sockets
    and the log are the first node's."""

    def __init__(self, config=None, name="srv", peer=False):
        self.cfg = config if config is not None else default_config()
        self.dir = tempfile.mkdtemp(prefix=f"parley-itest-{name}-")
        self.data_dir = os.path.join(self.dir, "data")
        os.makedirs(self.data_dir)
        self.port = free_port()
        self.cfg["listen"] = f"127.0.0.1:{self.port}"
        self.cfg["data_dir"] = self.data_dir
        if redis_engine() and "engine" not in self.cfg:
            self.cfg["engine"] = redis_engine()
        self.cfg_path = os.path.join(self.dir, "parley.yaml")
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.starts = 0
        self.exit_codes = []
        self.turn = 0
        self.peers = []
        if not peer and CLUSTER_NODES > 1 and self.cfg.get("engine", {}).get("type") == "redis":
            self.peers = [ParleyServer(copy.deepcopy(self.cfg), f"{name}-node{i}", peer=True)
                          for i in range(1, CLUSTER_NODES)]

    # -- process control

    def write_config(self):
        ordered = {"listen": self.cfg["listen"], "data_dir": self.cfg["data_dir"]}
        ordered.update({k: v for k, v in self.cfg.items() if k not in ordered})
        with open(self.cfg_path, "w") as f:
            f.write(render_yaml(ordered))

    def start(self, timeout=20 * SLOW):
        assert self.proc is None, "server already running"
        self.write_config()
        log = open(self.log_path, "ab")
        log.write(f"==== start #{self.starts + 1} ====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [parley_bin(), "serve", "--config", self.cfg_path],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise ServerError(f"server exited with {rc} during start\n{self.log_tail()}")
            try:
                status, _, _ = self.http("GET", "/healthz", timeout=1)
                if status == 200:
                    for peer in self.peers:
                        peer.start(timeout)
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise ServerError(f"/healthz never answered 200\n{self.log_tail()}")

    def stop(self, timeout=10 * SLOW):
        """SIGTERM; asserts a clean exit 0 (and a clean sanitizer log)."""
        for peer in self.peers:
            peer.stop(timeout)
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ServerError(f"server did not exit within {timeout}s of SIGTERM\n"
                              f"{self.log_tail()}")
        self.exit_codes.append(rc)
        if rc != 0:
            raise ServerError(f"server exited with {rc} after SIGTERM\n{self.log_tail()}")
        self.check_sanitizer_log()

    def kill(self):
        """SIGKILL (the crash test); no assertion on the exit."""
        for peer in self.peers:
            peer.kill()
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_sanitizer_log(self):
        if not SANITIZED:
            return
        text = self.log_text()
        for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                    "WARNING: ThreadSanitizer"):
            if bad in text:
                raise ServerError(f"sanitizer report in server log ({bad})\n{self.log_tail(200)}")

    def cleanup(self):
        for peer in self.peers:
            peer.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _next_port(self):
        """The nodes in turn (the first node alone without peers)."""
        ports = [self.port] + [p.port for p in self.peers]
        self.turn += 1
        return ports[self.turn % len(ports)]

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=80):
        lines = self.log_text().splitlines()
        return f"--- server log {self.log_path} (last {n} lines) ---\n" + "\n".join(lines[-n:])

    # -- HTTP

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self._next_port()}/ws"

    def http(self, method, path, headers=None, body=None, timeout=5 * SLOW):
        port = self._next_port() if path.startswith("/api/") else self.port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def metrics(self):
        status, _, body = self.http("GET", "/metrics")
        assert status == 200, status
        return body.decode()

    def metric(self, name, labels=None):
        """Sum of every sample of `name` whose labels include `labels`."""
        total, found = 0.0, False
        for line in self.metrics().splitlines():
            if not line or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            base, _, lab = series.partition("{")
            if base != name:
                continue
            if labels and not all(f'{k}="{v}"' in lab for k, v in labels.items()):
                continue
            total += float(value)
            found = True
        return total if found else None


# ---------------------------------------------------------------- asyncio client


class RpcError(Exception):
    def __init__(self, reply):
        self.reply = reply
        err = reply.get("error", {})
        self.code = err.get("code")
        super().__init__(f"error {self.code}: {err.get('message')} (reply {reply})")


class Closed(AssertionError):
    pass


class Client:
    """A protocol client: replies are matched to commands by id; everything
    else (pushes, id-less errors) lands in a mailbox read by selective
    receive. Every message carries `_seq`, its arrival order."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1
        self.pending = {}  # id -> future, until the reply arrives
        self.futures = {}  # id -> future, until reply() collects it
        self.mailbox = []
        self.frames = 0
        self.seq = 0
        self.close_code = None
        self.close_reason = None
        self.closed = asyncio.Event()
        self._new = asyncio.Event()
        self.connect_result = None
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self):
        try:
            async for frame in self.ws:
                self.frames += 1
                if isinstance(frame, bytes):
                    frame = frame.decode("utf-8", "replace")
                for line in frame.split("\n"):
                    if line.strip():
                        self._dispatch(json.loads(line))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self.closed.set()
            self._new.set()
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(Closed(f"connection closed ({self.close_code}) "
                                             "before the reply"))
            self.pending.clear()

    def _dispatch(self, msg):
        self.seq += 1
        msg["_seq"] = self.seq
        mid = msg.get("id")
        if "push" not in msg and isinstance(mid, int) and mid in self.pending:
            fut = self.pending.pop(mid)
            if not fut.done():
                fut.set_result(msg)
            return
        if msg.get("push") == "ping":
            asyncio.get_running_loop().create_task(self._pong())
        self.mailbox.append(msg)
        self._new.set()

    async def _pong(self):
        try:
            await self.ws.send(json.dumps({"method": "pong"}))
        except websockets.ConnectionClosed:
            pass

    # -- commands

    def command(self, method, params=None, cid=None):
        """A command object with a fresh id (and a future for its reply)."""
        if cid is None:
            cid = self.next_id
            self.next_id += 1
        self.expect_reply(cid)
        cmd = {"id": cid, "method": method}
        if params is not None:
            cmd["params"] = params
        return cmd

    def expect_reply(self, cid):
        """Registers id `cid` so its reply is routed to reply(cid)."""
        fut = asyncio.get_running_loop().create_future()
        self.pending[cid] = self.futures[cid] = fut
        return fut

    async def reply(self, cid, timeout=T):
        fut = self.futures.pop(cid, None)
        assert fut is not None, f"no pending command {cid}"
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no reply to command {cid} within {timeout}s") from None

    async def rpc(self, method, params=None, timeout=T):
        """Sends one command; returns the whole reply object."""
        cmd = self.command(method, params)
        fut = self.futures.pop(cmd["id"])
        await self.send_json(cmd)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no reply to {method} {params!r} within {timeout}s") from None

    async def call(self, method, params=None, timeout=T):
        """Sends one command; returns its result or raises RpcError."""
        reply = await self.rpc(method, params, timeout)
        if "error" in reply:
            raise RpcError(reply)
        assert "result" in reply, reply
        return reply["result"]

    async def error(self, method, params=None, timeout=T):
        """Sends a command that must fail; returns the error object."""
        reply = await self.rpc(method, params, timeout)
        assert "error" in reply, f"{method} {params!r} should have failed, got {reply}"
        assert reply["id"] is not None
        return reply["error"]

    async def batch(self, cmds, timeout=T):
        """Sends several commands in ONE frame; returns replies by id."""
        built = [self.command(m, p) for m, p in cmds]
        await self.send_raw("\n".join(json.dumps(c) for c in built))
        return {c["id"]: await self.reply(c["id"], timeout) for c in built}

    async def send_json(self, obj):
        await self.send_raw(json.dumps(obj))

    async def send_raw(self, data):
        try:
            await self.ws.send(data)
        except websockets.ConnectionClosed as e:
            raise Closed(f"connection closed ({e.rcvd.code if e.rcvd else None}) "
                         "before the command was sent") from None

    # -- convenience wrappers

    async def subscribe(self, channel, **params):
        return await self.call("subscribe", dict(channel=channel, **params))

    async def publish(self, channel, data, **params):
        return await self.call("publish", dict(channel=channel, data=data, **params))

    async def history(self, channel, **params):
        return await self.call("history", dict(channel=channel, **params))

    async def publish_many(self, channel, n, data=lambda i: {"n": i}, window=64, **params):
        """n publishes with up to `window` in flight; results in send order."""
        results = [None] * n
        sem = asyncio.Semaphore(window)

        async def one(i):
            async with sem:
                results[i] = await self.publish(channel, data(i), **params)

        await asyncio.gather(*(one(i) for i in range(n)))
        return results

    async def full_history(self, channel, timeout=T):
        """Every retained pub of a channel, oldest first, paging with since."""
        head = await self.history(channel, limit=1)
        out, after = [], 0
        while True:
            page = await self.history(channel, since={"offset": after, "epoch": head["epoch"]},
                                      limit=1000)
            if not page["pubs"]:
                return out, page
            out.extend(page["pubs"])
            after = page["pubs"][-1]["offset"]

    # -- mailbox

    async def receive(self, pred=lambda m: True, timeout=T, what="message"):
        """Removes and returns the first mailbox message matching pred."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for i, msg in enumerate(self.mailbox):
                if pred(msg):
                    return self.mailbox.pop(i)
            if self.closed.is_set():
                raise Closed(f"connection closed ({self.close_code} {self.close_reason!r}) "
                             f"while waiting for {what}; mailbox: {self.mailbox[-5:]}")
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout}s; mailbox tail: "
                                     f"{self.mailbox[-5:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def push(self, kind, channel=None, timeout=T):
        return await self.receive(
            lambda m: m.get("push") == kind and (channel is None or m.get("channel") == channel),
            timeout, what=f"push {kind} {channel or ''}")

    async def pubs(self, channel, n, timeout=T):
        """The next n pub pushes of a channel, in arrival order."""
        out = []
        for _ in range(n):
            out.append(await self.push("pub", channel, timeout))
        return out

    def drain(self, pred=lambda m: True):
        """Removes and returns every matching message already received."""
        hit = [m for m in self.mailbox if pred(m)]
        self.mailbox = [m for m in self.mailbox if not pred(m)]
        return hit

    def drain_pubs(self, channel):
        return self.drain(lambda m: m.get("push") == "pub" and m.get("channel") == channel)

    async def wait_closed(self, timeout=T):
        """Waits for the server to close; returns (code, reason)."""
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"server did not close the connection within {timeout}s; "
                                 f"mailbox: {self.mailbox[-5:]}") from None
        return self.close_code, self.close_reason

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 5 * SLOW)
        except (asyncio.TimeoutError, websockets.WebSocketException, OSError):
            pass
        self.reader.cancel()
        try:
            await self.reader
        except BaseException:
            pass


async def open_ws(server, subprotocols=("parley.v1",)):
    return await websockets.connect(
        server.ws_url, subprotocols=list(subprotocols) if subprotocols else None,
        max_size=None, ping_interval=None, close_timeout=2, open_timeout=10 * SLOW,
        max_queue=None)


async def connect(server, user="alice", tenant="acme", token=None, params=None):
    """Opens a WebSocket and runs `connect`; returns a ready Client."""
    cl = Client(await open_ws(server))
    p = {"token": token if token is not None else make_token(user, tenant)}
    if params:
        p.update(params)
    cl.connect_result = await cl.call("connect", p)
    return cl


async def raw_client(server):
    """A Client with the socket open but no `connect` sent yet."""
    return Client(await open_ws(server))


async def expect_disconnect(cl, code, timeout=T):
    """The documented close: push disconnect with `code`, then close frame `code`."""
    got, reason = await cl.wait_closed(timeout)
    pushes = [m for m in cl.mailbox if m.get("push") == "disconnect"]
    assert got == code, f"close code {got} ({reason!r}), expected {code}; pushes {cl.mailbox}"
    assert pushes, f"no push disconnect before close {code}; mailbox {cl.mailbox}"
    assert pushes[-1]["code"] == code, pushes
    return pushes[-1]


def run(coro, timeout=None):
    """Runs a test coroutine on a fresh event loop with an overall timeout."""
    async def guarded():
        return await asyncio.wait_for(coro, timeout or 120 * SLOW)
    return asyncio.run(guarded())


def offsets(pubs):
    return [p["offset"] for p in pubs]


class LoopThread:
    """An event loop on a background thread, for clients that must stay
    connected across several synchronous tests."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60 * SLOW):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ---------------------------------------------------------------- raw WebSocket


OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_frame(opcode, payload, fin=True, mask=True, length=None, rsv=0):
    """Encodes one client frame; `length` overrides the declared length."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class RawWS:
    """A hand-driven WebSocket over a plain socket, for frames a library
    refuses to send and for clients that stop reading."""

    def __init__(self, server, rcvbuf=None, handshake=True, timeout=T):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", server.port))
        self.buf = b""
        self.next_id = 1
        self.status = None
        if handshake:
            self.handshake()

    def handshake(self, path="/ws"):
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: parley.v1\r\n"
                           "\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed("EOF during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])
        assert self.status == 101, head
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert accept in head, head

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload, **kw):
        self.sock.sendall(ws_frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def command(self, method, params=None):
        cid = self.next_id
        self.next_id += 1
        cmd = {"id": cid, "method": method}
        if params is not None:
            cmd["params"] = params
        self.send_json(cmd)
        return cid

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("EOF")
            self.buf += chunk

    def recv_frame(self):
        """(opcode, payload) of the next frame; EOFError at end of stream."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        assert not b1 & 0x80, "server frames must not be masked"
        self._need(pos + n)
        payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
        return b0 & 0x0F, payload

    def recv_messages(self):
        """The JSON messages of the next text frame ([] for control frames)."""
        op, payload = self.recv_frame()
        if op == OP_CLOSE:
            raise Closed(close_code(payload))
        if op != OP_TEXT:
            return []
        return [json.loads(line) for line in payload.decode().split("\n") if line.strip()]

    def recv_until(self, pred):
        while True:
            for msg in self.recv_messages():
                if pred(msg):
                    return msg

    def rpc(self, method, params=None):
        cid = self.command(method, params)
        return self.recv_until(lambda m: m.get("id") == cid and "push" not in m)

    def read_to_close(self, timeout=T):
        """Reads until the close frame or EOF/reset. Returns (close code or
        None, every JSON message seen before it, how it ended)."""
        self.sock.settimeout(timeout)
        msgs = []
        try:
            while True:
                op, payload = self.recv_frame()
                if op == OP_CLOSE:
                    return close_code(payload), msgs, "close"
                if op == OP_TEXT:
                    msgs.extend(json.loads(line) for line in payload.decode().split("\n")
                                if line.strip())
        except EOFError:
            return None, msgs, "eof"
        except ConnectionResetError:
            return None, msgs, "reset"
        except socket.timeout:
            return None, msgs, "timeout"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


# ---------------------------------------------------------------- SSE


class SSEStream:
    """GET /sse on a raw socket; yields parsed events (chunked or not)."""

    def __init__(self, server, query, headers=None, timeout=T):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET /sse?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Accept: text/event-stream\r\n{extra}\r\n".encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.raw += chunk
        head, _, self.raw = self.raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.text = ""  # decoded body not yet parsed into events
        self.comments = []
        self.eof = False
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self._absorb()  # body bytes that came with the head

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            raise EOFError("SSE stream ended")
        self.raw += chunk
        self._absorb()

    def _absorb(self):
        """Moves received body bytes into self.text, de-chunking if needed."""
        if not self.chunked:
            self.text += self.utf8.decode(self.raw)
            self.raw = b""
            return
        while True:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if len(self.raw) < line_end + 2 + size + 2:
                return
            self.text += self.utf8.decode(self.raw[line_end + 2:line_end + 2 + size])
            self.raw = self.raw[line_end + 2 + size + 2:]
            if size == 0:
                self.eof = True
                return

    def body(self):
        """The rest of a non-stream (error) response."""
        try:
            while not self.eof:
                if self.headers.get("content-length") and \
                        len(self.text.encode()) >= int(self.headers["content-length"]):
                    break
                self._more()
        except (EOFError, OSError):
            pass
        return self.text

    def event(self):
        """The next event as {"event", "id", "data"}; comments are recorded."""
        while True:
            sep = self.text.find("\n\n")
            if sep >= 0:
                block, self.text = self.text[:sep], self.text[sep + 2:]
                ev = {"event": "message", "id": None, "data": None}
                datas = []
                for line in block.split("\n"):
                    if line.startswith(":"):
                        self.comments.append(line)
                        continue
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "data":
                        datas.append(v)
                    elif k in ("event", "id"):
                        ev[k] = v
                if datas:
                    ev["data"] = json.loads("\n".join(datas))
                    return ev
                continue
            self._more()

    def events(self, n):
        return [self.event() for _ in range(n)]

    def close(self):
        self.sock.close()
