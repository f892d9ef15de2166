# The `parley` command line as a person or a script uses it: help and
# version, the HTTP API client commands (publish, history, presence, dlq),
# usage and connection errors, and subscribe/tail over WebSocket, including
# a server restart in the middle of a subscribe (no pub lost, none twice).
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time

from helpers_api import full_key, with_api
from parley_client import SLOW, connect, free_port, make_token, parley_bin, run, uniq

COMMANDS = ["serve", "token", "publish", "history", "presence", "dlq", "subscribe", "tail",
            "trace", "check-config", "audit", "verify", "webhook", "bench", "version", "help"]


def cli(*args, stdin=None, env=None, timeout=20 * SLOW):
    full_env = dict(os.environ)
    full_env.pop("PARLEY_API_KEY", None)
    full_env.pop("PARLEY_URL", None)
    full_env.update(env or {})
    res = subprocess.run([parley_bin(), *args], input=stdin, capture_output=True, text=True,
                         timeout=timeout, env=full_env)
    return res.returncode, res.stdout, res.stderr


def url(srv):
    return f"http://127.0.0.1:{srv.port}"


def api_cli(srv, *args, **kw):
    return cli(*args, "--url", url(srv), "--key", full_key("acme"), **kw)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


class Sub:
    """`parley subscribe` (or tail) as a subprocess; its stdout and stderr
    lines are read by threads into queues."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([parley_bin(), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out, self.err, self.err_text = queue.Queue(), queue.Queue(), []
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))

    def line(self, timeout=5 * SLOW):
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout}s; stderr: {self.err_text}")

    def pubs(self, n):
        return [json.loads(self.line()) for _ in range(n)]

    def wait_err(self, pattern, timeout=10 * SLOW):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.err.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.err_text.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"stderr never matched {pattern!r}: {self.err_text}")

    def no_more_output(self, wait=0.3):
        try:
            extra = self.out.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected output line {extra!r}")

    def end(self, sig=signal.SIGINT):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(10 * SLOW)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------ help, version


def test_help_lists_every_command_and_option():
    rc, out, _ = cli("--help")
    assert rc == 0
    for name in COMMANDS:
        assert re.search(rf"^  {re.escape(name)} ", out, re.M), (name, out)
    assert cli("help")[1] == out
    for name in COMMANDS:
        rc, text, err = cli("help", name)
        assert rc == 0 and text.startswith(f"usage: parley {name}"), (name, text, err)
        assert cli(name, "--help")[:2] == (0, text), name
    token = cli("help", "token")[1]
    for opt in ("--user", "--tenant", "--ttl", "--channel", "--secret", "--config", "--data"):
        assert opt in token, opt
    publish = cli("publish", "--help")[1]
    for opt in ("--class", "--idempotency-key", "--type", "--url", "--key", "--json",
                "PARLEY_API_KEY", "PARLEY_URL"):
        assert opt in publish, opt
    assert "patterns" in cli("help", "tail")[1]


def test_version_names_commit_and_libraries():
    rc, out, _ = cli("version")
    assert rc == 0
    assert re.search(r"^parley commit ([0-9a-f]{7,}|unknown)$", out, re.M), out
    assert re.search(r"^sqlite 3\.\d+\.\d+", out, re.M), out
    assert re.search(r"^libuv 1\.\d+\.\d+", out, re.M), out
    assert cli("--version")[1] == out


def test_unknown_command_and_usage_errors():
    rc, out, err = cli("frobnicate")
    assert rc == 2 and "unknown command frobnicate" in err and "subscribe" in err
    rc, _, err = cli("help", "frobnicate")
    assert rc == 2 and "unknown command" in err
    dead = "http://127.0.0.1:9"  # usage is checked before anything is sent
    for args in (["publish"], ["publish", "c:x", "1", "2"], ["history"],
                 ["history", "c:x", "--bogus"], ["history", "c:x", "--limit", "zero"],
                 ["presence"], ["dlq"], ["dlq", "replay"], ["dlq", "list", "--all"],
                 ["subscribe", "--token", "t"], ["subscribe", "c:x"],
                 ["subscribe", "c:x", "--token", "t", "--since", "5"],
                 ["subscribe", "c:x", "c:y", "--token", "t", "--since", "5@abc"],
                 ["tail", "c:x", "--token", "t", "--since", "1@abc"]):
        rc, out, err = cli(*args, "--url", dead, "--key", "k")
        assert rc == 2 and err.startswith("parley: "), (args, rc, out, err)


# --------------------------------------------------------- HTTP API commands


def test_publish_history_json(server_factory):
    srv = server_factory(with_api, name="cli")
    ch = f"chat:{uniq('pub')}"
    rc, out, err = api_cli(srv, "publish", ch, '{"text":"hi"}')
    assert rc == 0, err
    assert re.fullmatch(r"[0-9A-Z]{26} offset 1 epoch \w+\n", out), out
    ch2 = f"chat:{uniq('stdin')}"
    rc, out, err = api_cli(srv, "publish", ch2, "-", "--json", stdin='{"n":1}\nbare\n\n[3]\n')
    assert rc == 0, err
    results = json_lines(out)
    assert [r["offset"] for r in results] == [1, 2, 3]
    assert len({r["epoch"] for r in results}) == 1
    rc, out, err = api_cli(srv, "history", ch2, "--json")
    assert rc == 0, err
    pubs = json_lines(out)
    assert [(p["offset"], p["data"]) for p in pubs] == [(1, {"n": 1}), (2, "bare"), (3, [3])]
    assert [p["id"] for p in pubs] == [r["id"] for r in results]
    rc, out, _ = api_cli(srv, "history", ch2, "--reverse", "--limit", "2")
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{ch2} 3@") and lines[0].endswith(" [3]")
    rc, out, _ = api_cli(srv, "history", ch2, "--since", "1", "--json")
    assert [p["offset"] for p in json_lines(out)] == [2, 3]
    # the key from the environment, an idempotent repeat
    env = {"PARLEY_API_KEY": full_key("acme"), "PARLEY_URL": url(srv)}
    first = cli("publish", ch, "2", "--idempotency-key", "k1", "--json", env=env)
    again = cli("publish", ch, "2", "--idempotency-key", "k1", "--json", env=env)
    assert first[0] == again[0] == 0
    assert json.loads(again[1])["duplicate"] is True
    assert json.loads(again[1])["offset"] == json.loads(first[1])["offset"] == 2


def test_bad_json_on_stdin_publishes_nothing_after_it(server_factory):
    srv = server_factory(with_api, name="cli")
    ch = f"chat:{uniq('bad')}"
    rc, out, err = api_cli(srv, "publish", ch, "-", stdin='1\n{"broken":\n3\n')
    assert rc == 2 and "stdin line 2" in err and "not valid JSON" in err, (out, err)
    assert len(out.splitlines()) == 1
    rc, out, _ = api_cli(srv, "history", ch, "--json")
    assert [p["data"] for p in json_lines(out)] == [1]


def test_server_errors_and_unreachable(server_factory):
    srv = server_factory(with_api, name="cli")
    rc, _, err = api_cli(srv, "publish", "nope:x", "1")
    assert rc == 1 and err.startswith("parley: 102 "), err
    rc, _, err = cli("history", "chat:x", "--url", url(srv), "--key", "pk_wrong")
    assert rc == 1 and err.startswith("parley: 101 "), err
    down = f"http://127.0.0.1:{free_port()}"
    rc, _, err = cli("publish", "chat:x", "1", "--url", down, "--key", "k")
    assert rc == 1 and down in err, err
    rc, _, err = cli("subscribe", "chat:x", "--url", down, "--token", "t", timeout=10 * SLOW)
    assert rc == 1 and down in err, err


def test_presence_and_empty_dlq(server_factory):
    srv = server_factory(with_api, name="cli")
    ch = f"room:{uniq('pres')}"

    async def body():
        c = await connect(srv, user="alice")
        await c.subscribe(ch)
        rc, out, err = api_cli(srv, "presence", ch)
        assert rc == 0 and out.startswith("alice "), (out, err)
        rc, out, err = api_cli(srv, "presence", ch, "--json")
        assert [e["user"] for e in json_lines(out)] == ["alice"], out
        await c.close()
    run(body())
    rc, out, err = api_cli(srv, "dlq", "list")
    assert rc == 0 and out == "", (out, err)
    rc, out, _ = api_cli(srv, "dlq", "list", "--json")
    assert rc == 0 and out == ""
    rc, out, err = api_cli(srv, "dlq", "purge", "--all", "--json")
    assert rc == 0 and json.loads(out) == {"count": 0}, err


# ------------------------------------------------------- subscribe and tail


def publish(srv, ch, data):
    rc, out, err = api_cli(srv, "publish", ch, data, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_subscribe_survives_a_server_restart(server_factory):
    srv = server_factory(with_api, name="cli")
    ch, other, fresh = f"chat:{uniq('sub')}", f"chat:{uniq('sub2')}", f"chat:{uniq('new')}"
    sub = Sub("subscribe", ch, other, fresh, "--url", url(srv), "--json",
              "--token", make_token("alice"))
    try:
        sub.wait_err(f"subscribed {ch} ")
        sub.wait_err(f"subscribed {other} ")
        publish(srv, ch, '"one"')
        publish(srv, ch, '"two"')
        publish(srv, other, '"x"')
        got = sub.pubs(3)
        assert sorted((p["channel"], p["offset"]) for p in got) == \
            sorted([(ch, 1), (ch, 2), (other, 1)])
        srv.stop()
        sub.wait_err("lost")
        srv.start()
        # published before the subscriber is back: recovered from the position
        publish(srv, ch, '"three"')
        publish(srv, fresh, '"first"')  # nothing was published there before
        sub.wait_err(f"resubscribed {ch} ")
        sub.wait_err(f"resubscribed {other} ")
        publish(srv, ch, '"four"')
        publish(srv, other, '"y"')
        got = sub.pubs(4)
        assert [(p["offset"], p["data"]) for p in got if p["channel"] == ch] == \
            [(3, "three"), (4, "four")]
        assert [p["data"] for p in got if p["channel"] == fresh] == ["first"]
        assert [p["offset"] for p in got if p["channel"] == other] == [2]
        sub.no_more_output()
        assert sub.end(signal.SIGINT) == 0
    finally:
        if sub.proc.poll() is None:
            sub.proc.kill()


def test_subscribe_since_and_tail(server_factory):
    srv = server_factory(with_api, name="cli")
    ch = f"chat:{uniq('since')}"
    first = publish(srv, ch, "1")
    publish(srv, ch, "2")
    tok = make_token("bob")
    sub = Sub("subscribe", ch, "--url", url(srv), "--since", f"1@{first['epoch']}",
              "--token", tok)
    tail = Sub("tail", ch, "--url", url(srv), "--token", tok)
    try:
        line = sub.line()
        assert line.startswith(f"{ch} 2@{first['epoch']} ") and line.endswith(" 2"), line
        tail.wait_err(f"subscribed {ch} at 2@")
        publish(srv, ch, '{"n":3}')
        assert sub.line().endswith(' {"n":3}')
        assert tail.line().startswith(f"{ch} 3@")
        tail.no_more_output(0.1)
        assert sub.end(signal.SIGTERM) == 0 and tail.end() == 0
    finally:
        for s in (sub, tail):
            if s.proc.poll() is None:
                s.proc.kill()


def test_development_mode_key_and_user(server_factory):
    """Single-tenant development mode: the development secret of --data is
    the API key, and subscribe --user mints a token with it."""
    srv = server_factory(lambda cfg: cfg.pop("tenants"), name="clidev")
    data = srv.data_dir
    ch = f"chat:{uniq('dev')}"
    sub = Sub("subscribe", ch, "--url", url(srv), "--user", "carol", "--data", data)
    try:
        sub.wait_err(f"subscribed {ch} ")
        rc, out, err = cli("publish", ch, "hello", "--url", url(srv), "--data", data)
        assert rc == 0 and " offset 1 " in out, err
        assert sub.line().endswith(' "hello"')
        assert sub.end() == 0
    finally:
        if sub.proc.poll() is None:
            sub.proc.kill()
    rc, _, err = cli("publish", ch, "x", "--url", url(srv), "--data", data + "/nope")
    assert rc == 2 and "no API key" in err, err
