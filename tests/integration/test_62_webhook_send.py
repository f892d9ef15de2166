# `parley webhook send` against a real HTTP receiver on loopback (Python's
# http.server in a thread) that verifies each signature with its own
# implementation (hmac, hashlib, base64) and answers as scripted: 500, 410,
# 429 with Retry-After, a redirect, slowly, or not at all. Covers the retry
# schedule, the status contract, the SSRF guard and usage errors.
import base64
import json
import subprocess
import time

import pytest

from helpers_webhooks import Receiver, verify
from parley_client import SLOW, free_port, parley_bin

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET2 = "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode()
ALLOW = ["--allow-network", "127.0.0.0/8"]


@pytest.fixture
def receivers():
    made = []

    def make(*script):
        r = Receiver(script or [{"status": 200}])
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def send(*args, timeout=60 * SLOW):
    start = time.monotonic()
    res = subprocess.run([parley_bin(), "webhook", "send", *args], capture_output=True,
                         text=True, timeout=timeout)
    return res.returncode, res.stdout + res.stderr, time.monotonic() - start


def test_retries_until_delivered(receivers):
    r = receivers({"status": 500}, {"status": 500}, {"status": 200})
    rc, out, _ = send("--url", r.url, "--secret", SECRET, "--schedule", "0s,1s,1s",
                      "--channel", "orders:eu", "--type", "order.created",
                      "--data", '{"total": 12.5}', *ALLOW)
    assert rc == 0, out
    assert "delivered on attempt 3" in out
    assert len(r.requests) == 3
    ids = {q["headers"]["webhook-id"] for q in r.requests}
    assert len(ids) == 1, ids
    for q in r.requests:
        assert verify(SECRET, q["headers"], q["body"]), q
        assert q["headers"]["content-type"] == "application/json"
        assert q["body"] == r.requests[0]["body"]
    env = json.loads(r.requests[0]["body"])
    assert env["channel"] == "orders:eu" and env["type"] == "order.created"
    assert env["data"] == {"total": 12.5} and env["schema_version"] == 1
    assert env["id"] == ids.pop()
    assert b'"data":{"total": 12.5}' in r.requests[0]["body"]  # byte for byte
    # 1 s each with +-10% jitter.
    for a, b in zip(r.requests, r.requests[1:]):
        assert b["t"] - a["t"] >= 0.85, (a["t"], b["t"])
    assert out.count("attempt ") >= 3 and "status 500" in out and "next attempt in" in out


def test_gone_disables_after_one_request(receivers):
    r = receivers({"status": 410})
    rc, out, _ = send("--url", r.url, "--secret", SECRET, "--schedule", "0s,1s,1s", *ALLOW)
    assert rc == 1, out
    assert "disabled" in out
    assert len(r.requests) == 1


def test_retry_after_is_honoured(receivers):
    r = receivers({"status": 429, "headers": {"Retry-After": "2"}}, {"status": 200})
    rc, out, _ = send("--url", r.url, "--secret", SECRET, "--schedule", "0s,100ms", *ALLOW)
    assert rc == 0, out
    assert len(r.requests) == 2
    assert r.requests[1]["t"] - r.requests[0]["t"] >= 1.95
    assert "throttle" in out and "Retry-After 2s" in out


def test_redirect_is_not_followed(receivers):
    target = receivers({"status": 200})
    r = receivers({"status": 301, "headers": {"Location": target.url}})
    rc, out, _ = send("--url", r.url, "--secret", SECRET, "--schedule", "0s,100ms", *ALLOW)
    assert rc == 1, out
    assert len(r.requests) == 2
    assert target.requests == []
    assert "redirect not followed" in out and "dead-lettered after 2 attempts" in out


def test_receiver_down(receivers):
    port = free_port()
    rc, out, _ = send("--url", f"http://127.0.0.1:{port}/", "--secret", SECRET,
                      "--schedule", "0s,100ms,100ms", *ALLOW)
    assert rc == 1, out
    assert out.count("no answer") == 3
    assert "dead-lettered after 3 attempts" in out


@pytest.mark.parametrize("host", ["127.0.0.1", "0x7f.0.0.1", "[::ffff:127.0.0.1]", "2130706433"])
def test_ssrf_refuses_loopback(receivers, host):
    r = receivers({"status": 200})
    rc, out, _ = send("--url", f"http://{host}:{r.port}/hook", "--secret", SECRET,
                      "--schedule", "0s,100ms")
    assert rc == 1, out
    assert "refused" in out and "loopback" in out
    assert "--allow-network 127.0.0.0/8" in out
    assert "attempt 1" not in out
    time.sleep(0.2)
    assert r.requests == []


def test_ssrf_refuses_a_name_resolving_to_loopback(receivers):
    r = receivers({"status": 200})
    rc, out, _ = send("--url", f"http://localhost:{r.port}/hook", "--secret", SECRET,
                      "--schedule", "0s")
    assert rc == 1, out
    assert "refused by the SSRF guard" in out
    assert r.requests == []


def test_odd_ipv4_host_refused_even_when_allowed(receivers):
    r = receivers({"status": 200})
    rc, out, _ = send("--url", f"http://foo.127.0.0.1:{r.port}/", "--secret", SECRET, *ALLOW)
    assert rc == 1, out
    assert "looks like an IPv4 address" in out
    assert r.requests == []


def test_allowed_odd_spelling_is_judged_as_its_address(receivers):
    r = receivers({"status": 204})
    rc, out, _ = send("--url", f"http://0x7f.0.0.1:{r.port}/hook", "--secret", SECRET, *ALLOW)
    assert rc == 0, out
    assert len(r.requests) == 1


def test_timeout_is_a_failure(receivers):
    r = receivers({"status": 200, "sleep": 3})
    rc, out, took = send("--url", r.url, "--secret", SECRET, "--timeout", "1s",
                         "--schedule", "0s", *ALLOW)
    assert rc == 1, out
    assert "timed out" in out.lower()
    assert "dead-lettered after 1 attempts" in out
    assert took < 3 * SLOW


def test_abort_message_stops(receivers):
    r = receivers({"status": 500, "headers": {"webhook-delivery": "Abort-Message"}})
    rc, out, _ = send("--url", r.url, "--secret", SECRET, "--schedule", "0s,100ms,100ms", *ALLOW)
    assert rc == 1, out
    assert "aborted" in out
    assert len(r.requests) == 1


def test_delivery_disable_header(receivers):
    r = receivers({"status": 400, "headers": {"webhook-delivery": "disable"}})
    rc, out, _ = send("--url", r.url, "--secret", SECRET, "--schedule", "0s,100ms", *ALLOW)
    assert rc == 1, out
    assert "disabled" in out
    assert len(r.requests) == 1


def test_two_secrets_two_signatures(receivers):
    r = receivers({"status": 200})
    rc, out, _ = send("--url", r.url, "--secret", SECRET, "--secret", SECRET2,
                      "--id", "msg_custom_1", *ALLOW)
    assert rc == 0, out
    q = r.requests[0]
    assert q["headers"]["webhook-id"] == "msg_custom_1"
    assert len(q["headers"]["webhook-signature"].split()) == 2
    assert verify(SECRET, q["headers"], q["body"])
    assert verify(SECRET2, q["headers"], q["body"])
    assert not verify("whsec_" + base64.b64encode(b"x" * 32).decode(), q["headers"], q["body"])


@pytest.mark.parametrize("args", [
    [],
    ["--secret", SECRET],
    ["--url", "http://127.0.0.1:1/"],
    ["--url", "ftp://127.0.0.1/x", "--secret", SECRET],
    ["--url", "not a url", "--secret", SECRET],
    ["--url", "http://127.0.0.1:1/", "--secret", "v1,abc"],
    ["--url", "http://127.0.0.1:1/", "--secret", "nope"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "--schedule", "1s,,2s"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "--schedule", "soon"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "--max-attempts", "0"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "--data", "{bad"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "--allow-network", "10.1.2.3/16"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "--timeout", "fast"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "--bogus"],
    ["--url", "http://127.0.0.1:1/", "--secret", SECRET, "extra"],
])
def test_usage_errors(args):
    rc, out, _ = send(*args)
    assert rc == 2, (args, out)
    assert "attempt 1" not in out


def test_unknown_subcommand():
    res = subprocess.run([parley_bin(), "webhook", "receive"], capture_output=True, text=True)
    assert res.returncode == 2
