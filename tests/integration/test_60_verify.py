# `parley verify` as a person debugging a webhook uses it: a saved request
# (headers file, raw body) checked against secrets, each diagnosis produced
# by a real cause, and usage errors. Signatures are made here with Python's
# hmac, hashlib and base64, an implementation independent of the server's.
import base64
import hashlib
import hmac
import json
import os
import subprocess

from parley_client import parley_bin

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_"):])
TS = 1700000000
MSG_ID = "msg_2Lq8jFvGzY"


def v1(key, msg_id, ts, body):
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def save(tmp_path, headers, body):
    h, b = tmp_path / "headers.txt", tmp_path / "body.bin"
    h.write_text("POST /hooks/in HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n")
    b.write_bytes(body)
    return str(h), str(b)


def standard(tmp_path, body, sent_body=None, ts=TS, key=KEY, extra=()):
    """Saves a Standard Webhooks request whose signature covers sent_body
    (default: body) but whose saved body is body."""
    sig = v1(key, MSG_ID, ts, sent_body if sent_body is not None else body)
    headers = [("Content-Type", "application/json"), ("webhook-id", MSG_ID),
               ("webhook-timestamp", str(ts)), ("webhook-signature", " ".join([*extra, sig]))]
    return save(tmp_path, headers, body)


def verify(*args):
    res = subprocess.run([parley_bin(), "verify", *args], capture_output=True, text=True,
                         timeout=30)
    return res.returncode, res.stdout, res.stderr


def files(hb):
    return ["--headers", hb[0], "--body", hb[1]]


BODY = json.dumps({"type": "message.created", "data": {"channel": "chat:lobby", "n": 3}},
                  indent=2).encode()


def test_ok_with_the_second_of_two_signatures(tmp_path):
    old = v1(b"old secret bytes", MSG_ID, TS, BODY)
    hb = standard(tmp_path, BODY, extra=[old])
    unrelated = "whsec_" + base64.b64encode(b"some other secret").decode()
    rc, out, err = verify(*files(hb), "--secret", unrelated, "--secret", SECRET, "--now",
                          str(TS + 10))
    assert rc == 0, (out, err)
    assert out.strip() == "ok: signature 2 of 2 matches secret 2"
    # The old secret alone (before rotation ends) matches the first signature.
    old_secret = "whsec_" + base64.b64encode(b"old secret bytes").decode()
    rc, out, _ = verify(*files(hb), "--secret", old_secret, "--now", str(TS + 10))
    assert rc == 0 and out.strip() == "ok: signature 1 of 2 matches secret 1"


def test_reserialized_body(tmp_path):
    received = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    hb = standard(tmp_path, received, sent_body=BODY)
    rc, out, _ = verify(*files(hb), "--secret", SECRET, "--now", str(TS))
    assert rc == 1
    assert "the body was re-serialized" in out
    assert "indented by 2 spaces" in out
    assert "verify the raw bytes as received" in out


def test_trailing_newline(tmp_path):
    hb = standard(tmp_path, BODY + b"\n", sent_body=BODY)
    rc, out, _ = verify(*files(hb), "--secret", SECRET, "--now", str(TS))
    assert rc == 1
    assert "trailing newline removed" in out


def test_clock_skew(tmp_path):
    hb = standard(tmp_path, BODY)
    rc, out, _ = verify(*files(hb), "--secret", SECRET, "--now", str(TS + 900))
    assert rc == 1
    assert "clock skew" in out and "900 s before now" in out
    assert "matches otherwise" in out
    rc, out, _ = verify(*files(hb), "--secret", SECRET, "--now", str(TS + 900), "--tolerance",
                        "15m")
    assert rc == 0, out
    rc, out, _ = verify(*files(hb), "--secret", SECRET, "--now", str(TS - 301))
    assert rc == 1 and "301 s after now" in out


def test_pasted_v1_prefix(tmp_path):
    hb = standard(tmp_path, BODY)
    rc, out, _ = verify(*files(hb), "--secret", "v1," + SECRET, "--now", str(TS))
    assert rc == 1
    assert 'starts with "v1,"' in out
    assert "signature 1 of 1 matches secret 1" in out


def test_missing_whsec_prefix(tmp_path):
    hb = standard(tmp_path, BODY)
    rc, out, _ = verify(*files(hb), "--secret", SECRET[len("whsec_"):], "--now", str(TS))
    assert rc == 1
    assert "whsec_ prefix is missing" in out and "matches secret 1" in out


def test_whitespace_and_undecoded_secret(tmp_path):
    hb = standard(tmp_path, BODY)
    rc, out, _ = verify(*files(hb), "--secret", " " + SECRET + "\n", "--now", str(TS))
    assert rc == 1 and "surrounding whitespace removed" in out
    hb = standard(tmp_path, BODY, key=SECRET.encode())
    rc, out, _ = verify(*files(hb), "--secret", SECRET, "--now", str(TS))
    assert rc == 1 and "whole secret string as the key" in out


def test_url_safe_base64_secret(tmp_path):
    key = bytes(range(250, 256)) * 4  # base64 with + and /
    secret = "whsec_" + base64.urlsafe_b64encode(key).decode()
    assert "-" in secret or "_" in secret[6:]
    hb = standard(tmp_path, BODY, key=key)
    rc, out, _ = verify(*files(hb), "--secret", secret, "--now", str(TS))
    assert rc == 1 and "URL-safe alphabet" in out


def test_wrong_secret(tmp_path):
    hb = standard(tmp_path, BODY)
    rc, out, _ = verify(*files(hb), "--secret", "whsec_" + base64.b64encode(b"x" * 24).decode(),
                        "--now", str(TS))
    assert rc == 1
    assert out.startswith("mismatch: wrong secret")


def test_missing_and_malformed_headers(tmp_path):
    hb = save(tmp_path, [("webhook-id", MSG_ID), ("webhook-signature", "v1,abc")], BODY)
    rc, out, _ = verify(*files(hb), "--secret", SECRET, "--scheme", "standard-webhooks")
    assert rc == 1 and "missing header webhook-timestamp" in out
    hb = save(tmp_path, [("webhook-id", MSG_ID), ("webhook-timestamp", str(TS)),
                         ("webhook-signature", "v1")], BODY)
    rc, out, _ = verify(*files(hb), "--secret", SECRET)
    assert rc == 1 and "malformed webhook-signature" in out


def test_github_style(tmp_path):
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    hb = save(tmp_path, [("X-Hub-Signature-256", "sha256=" + mac)], body)
    rc, out, _ = verify(*files(hb), "--secret", secret)
    assert rc == 0 and out.strip() == "ok: signature 1 of 1 matches secret 1"
    hb = save(tmp_path, [("X-Signature", "sha256=" + mac.upper())], body)
    rc, out, _ = verify(*files(hb), "--secret", secret, "--header", "X-Signature", "--prefix",
                        "sha256=")
    assert rc == 0, out
    rc, out, _ = verify(*files(hb), "--secret", secret, "--header", "X-Signature")
    assert rc == 1 and "--prefix 'sha256='" in out


def test_stripe(tmp_path):
    secret, t = "whsec_stripe_endpoint_secret", TS
    body = b'{"id":"evt_1","object":"event"}'
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    hb = save(tmp_path, [("Stripe-Signature", f"t={t},v1={'0' * 64},v1={mac},v0=abc")], body)
    rc, out, _ = verify(*files(hb), "--secret", secret, "--now", str(t + 5))
    assert rc == 0 and out.strip() == "ok: signature 2 of 2 matches secret 1"
    rc, out, _ = verify(*files(hb), "--secret", secret[len("whsec_"):], "--now", str(t))
    assert rc == 1 and "whole secret, prefix included" in out
    rc, out, _ = verify(*files(hb), "--secret", secret, "--now", str(t + 3600))
    assert rc == 1 and "clock skew" in out


def test_usage_errors(tmp_path):
    hb = standard(tmp_path, BODY)
    cases = [
        ([*files(hb)], "--secret"),
        (["--body", hb[1], "--secret", SECRET], "--headers"),
        ([*files(hb), "--secret", SECRET, "--scheme", "jwt"], "--scheme"),
        ([*files(hb), "--secret", SECRET, "--tolerance", "soon"], "--tolerance"),
        ([*files(hb), "--secret", SECRET, "--now", "yesterday"], "--now"),
        (["--headers", str(tmp_path / "nope"), "--body", hb[1], "--secret", SECRET], "cannot read"),
        ([*files(hb), "--secret", SECRET, "--scheme", "stripe", "--header", "X"], "--header"),
    ]
    for args, word in cases:
        rc, out, err = verify(*args)
        assert rc == 2, (args, out, err)
        assert word in err and out == ""
    plain = save(tmp_path, [("Content-Type", "application/json")], BODY)
    rc, _, err = verify(*files(plain), "--secret", SECRET)
    assert rc == 2 and "--scheme" in err


def test_help_lists_verify():
    res = subprocess.run([parley_bin(), "help"], capture_output=True, text=True, timeout=30)
    assert "verify" in res.stdout
    res = subprocess.run([parley_bin(), "verify", "--help"], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0 and "--tolerance" in res.stdout
    assert os.path.basename(parley_bin()) == "parley"
