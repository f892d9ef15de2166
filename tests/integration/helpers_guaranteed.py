# Shared helpers of the guaranteed-delivery tests (test_40..43): a config
# tweak with guaranteed namespaces and dlq/trace keys, a backend publish over
# the HTTP API, and receive helpers for pushes carrying attempt numbers.
import asyncio
import os
import subprocess
import time

from helpers_api import api, full_key, scope_key, with_api
from parley_client import SLOW, T, connect, parley_bin

# Redelivery schedule of `inbox` (ms): attempt n+1 follows attempt n after
# ACK_WAIT + uniform[0, min(RETRY_MAX, RETRY_MIN * 2^(n-1))].
ACK_WAIT, RETRY_MIN, RETRY_MAX, MAX_ATTEMPTS = 500, 100, 300, 3

INBOX = {"name": "inbox", "class": "guaranteed", "ack_wait": f"{ACK_WAIT}ms",
         "retry_min": f"{RETRY_MIN}ms", "retry_max": f"{RETRY_MAX}ms",
         "max_attempts": MAX_ATTEMPTS}
# Guaranteed but practically never redelivered during a test: isolates acks,
# multi-device and trace from the retry timer.
CALM = {"name": "calm", "class": "guaranteed", "ack_wait": "60s", "retry_min": "1s",
        "retry_max": "1s", "max_attempts": 5}
# Fails fast: two attempts 200 ms apart, then the dead-letter queue.
FAST = {"name": "fast", "class": "guaranteed", "ack_wait": "200ms", "retry_min": "50ms",
        "retry_max": "50ms", "max_attempts": 2}
# For crash tests: the first retry comes a full second after an attempt, so a
# kill right after attempt 1 surely finds the delivery in state sent.
SLOWNS = {"name": "slow", "class": "guaranteed", "ack_wait": "1s", "retry_min": "100ms",
          "retry_max": "100ms", "max_attempts": 3}
# A standard namespace beside them (acks there acknowledge nothing).
PLAIN = {"name": "plain"}

EXTRA_SCOPES = ["dlq", "trace"]


def guaranteed_cfg(cfg):
    """with_api (admin key, "*" and per-scope keys) plus the guaranteed
    namespaces and one dlq-only and one trace-only key per tenant."""
    with_api(cfg, extra_ns=[dict(INBOX), dict(CALM), dict(FAST), dict(SLOWNS), dict(PLAIN)])
    for t in cfg["tenants"]:
        t["api_keys"] += [{"key": scope_key(t["id"], s), "scopes": [s]} for s in EXTRA_SCOPES]
    return cfg


def publish(server, channel, data, correlation_id=None, tenant="acme"):
    """A backend publish (HTTP API); returns {"id","offset","epoch",...}."""
    body = {"channel": channel, "data": data}
    if correlation_id is not None:
        body["correlation_id"] = correlation_id
    return api(server, "publish", body, tenant=tenant)


async def apublish(server, channel, data, **kw):
    return await asyncio.to_thread(publish, server, channel, data, **kw)


async def acall(fn, *args, **kw):
    """Runs a blocking helper (HTTP API, subprocess) off the event loop so the
    clients keep reading meanwhile."""
    return await asyncio.to_thread(fn, *args, **kw)


def stamp(cl):
    """Makes cl record each message's arrival time (monotonic s) as "_t", so
    redelivery gaps are measured on arrival, not when the test looks."""
    inner = cl._dispatch

    def dispatch(msg):
        msg["_t"] = time.monotonic()
        inner(msg)
    cl._dispatch = dispatch
    return cl


async def gconnect(server, user, tenant="acme"):
    """A connected Client whose messages carry arrival times."""
    return stamp(await connect(server, user, tenant))


def quiet_period():
    """Longer than any gap between two attempts of `inbox` (plus slack): a
    redelivery that has not come by then is not coming."""
    return (ACK_WAIT + RETRY_MAX) / 1000 + 0.5 * SLOW


def is_pub(channel, offset=None):
    return lambda m: (m.get("push") == "pub" and m.get("channel") == channel and
                      (offset is None or m.get("offset") == offset))


async def next_pub(cl, channel, offset=None, timeout=T):
    """The next pub push of channel (with that offset, if given)."""
    return await cl.receive(is_pub(channel, offset), timeout,
                            what=f"pub {channel}@{offset}")


async def no_pub(cl, channel, quiet, offset=None):
    """Asserts that no pub of channel (offset) arrives within `quiet` seconds."""
    await asyncio.sleep(quiet)
    got = cl.drain(is_pub(channel, offset))
    assert not got, f"unexpected redelivery on {channel}: {got}"


async def subscribe(cl, channel, params=None):
    """Subscribes; returns the subscribe result (pending pubs follow it)."""
    p = {"channel": channel}
    if params:
        p.update(params)
    return await cl.call("subscribe", p)


async def ack(cl, channel, offset):
    """Acks; pubs of the channel that arrived before the reply (sent before
    the ack took effect) are dropped from the mailbox. Returns the result."""
    reply = await cl.rpc("ack", {"channel": channel, "offset": offset})
    assert "result" in reply, reply
    cl.drain(lambda m: is_pub(channel)(m) and m["_seq"] < reply["_seq"])
    return reply["result"]


def trace(server, pub_id, tenant="acme"):
    return api(server, "trace", {"id": pub_id}, tenant=tenant)


def delivery_of(server, pub_id, user, tenant="acme"):
    """The trace's delivery record of user (or None)."""
    for d in trace(server, pub_id, tenant)["deliveries"]:
        if d["user"] == user:
            return d
    return None


def wait_state(server, pub_id, user, state, timeout=T, tenant="acme"):
    """Polls trace until user's delivery reaches state; returns the record.
    State changes commit with the next group commit, so they trail the wire."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = delivery_of(server, pub_id, user, tenant)
        if last and last["state"] == state:
            return last
        time.sleep(0.05)
    raise AssertionError(f"delivery of {pub_id} to {user} never reached {state}: {last}")


def wait_sent(server, pub_id, user, attempt=1, timeout=T, tenant="acme"):
    """Waits until the server has recorded send number `attempt` of the pub to
    user. The record trails the wire (the delivery thread persists it after
    the write), so a test asserting exact transitions or attempt counts waits
    for it before acking."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = delivery_of(server, pub_id, user, tenant)
        if last and last["state"] == "sent" and last["attempts"] >= attempt:
            return last
        time.sleep(0.05)
    raise AssertionError(f"send {attempt} of {pub_id} to {user} never recorded: {last}")


def dlq_list(server, body=None, tenant="acme", key=None):
    return api(server, "dlq.list", body or {}, tenant=tenant,
               key=key if key is not None else full_key(tenant))


def wait_dlq(server, body, n, timeout=T, tenant="acme"):
    """Polls dlq.list(body) until it has n entries; returns them."""
    deadline = time.monotonic() + timeout
    entries = []
    while time.monotonic() < deadline:
        entries = dlq_list(server, body, tenant)["entries"]
        if len(entries) >= n:
            return entries
        time.sleep(0.05)
    raise AssertionError(f"dlq.list {body} has {len(entries)} entries, expected {n}: {entries}")


def audit_lines(server):
    path = os.path.join(server.data_dir, "audit.log")
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def audit_verify(server):
    res = subprocess.run([parley_bin(), "audit", "verify",
                          os.path.join(server.data_dir, "audit.log")],
                         capture_output=True, text=True, timeout=30 * SLOW)
    return res.returncode, res.stdout + res.stderr


def trace_cli(server, pub_id, key):
    res = subprocess.run([parley_bin(), "trace", pub_id, "--url",
                          f"http://127.0.0.1:{server.port}", "--key", key],
                         capture_output=True, text=True, timeout=30 * SLOW)
    return res.returncode, res.stdout, res.stderr
