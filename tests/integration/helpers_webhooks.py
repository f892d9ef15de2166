# The webhook tests' receiver: a real HTTP server on loopback (Python's
# http.server in a thread) that records every request, verifies Standard
# Webhooks signatures with its own implementation (hmac, hashlib, base64),
# and answers as scripted: any status, headers, slowly, or by a function.
import base64
import hashlib
import hmac
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from helpers_api import api, wait_until, with_api
from parley_client import SLOW

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def verify(secret, headers, body):
    """The receiver's own check: any v1 entry matching the decoded secret."""
    key = base64.b64decode(secret[len("whsec_"):])
    msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not msg_id or not ts or abs(time.time() - int(ts)) > 300:
        return False
    want = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    for entry in headers.get("webhook-signature", "").split():
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(sig), want):
            return True
    return False


class Receiver:
    """Answers request i with script[i] (the last repeats): a dict with status,
    headers and sleep (seconds before answering), or with fn(i, request) when
    fn is given. Records every request."""

    def __init__(self, script, fn=None):
        self.script, self.requests, self.fn = list(script), [], fn
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = {"t": time.monotonic(), "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(req)
                step = (receiver.fn(n, req) if receiver.fn
                        else receiver.script[min(n, len(receiver.script) - 1)])
                time.sleep(step.get("sleep", 0))
                try:
                    self.send_response(step.get("status", 200))
                    for k, v in step.get("headers", {}).items():
                        self.send_header(k, v)
                    text = step.get("body", "ok").encode()
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the sender gave up (a timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def hooks_config(url, schedule=("0s", "1s", "1s"), match=None, extra_hook=None, routes=None,
                 ns_extra=()):
    """A tweak: webhook `ops` of tenant acme at url, route `alerts` from
    alerts:** (type incident.*) to it, loopback allowed."""
    def tweak(cfg):
        with_api(cfg, extra_ns=[{"name": "alerts"}, {"name": "pager"}, *ns_extra])
        cfg["webhook_allowed_networks"] = ["127.0.0.0/8"]
        hook = {"id": "ops", "tenant": "acme", "url": url, "secret": SECRET,
                "retry_schedule": list(schedule)}
        hook.update(extra_hook or {})
        cfg["webhooks"] = [hook]
        cfg["routes"] = routes if routes is not None else [
            {"id": "alerts", "tenant": "acme",
             "match": match or {"channel": "alerts:**", "type": ["incident.*"]},
             "action": {"webhook": "ops"}}]
    return tweak


def publish(srv, channel, data, type_="incident.opened", **extra):
    body = {"channel": channel, "data": data, "type": type_, **extra}
    return api(srv, "publish", body)


def wait_requests(r, n, timeout=15 * SLOW):
    wait_until(lambda: len(r.requests) >= n, timeout, f"{n} webhook requests")
    return r.requests


class Receivers:
    """Makes receivers (Receiver's arguments) and closes them all."""

    def __init__(self):
        self.made = []

    def __call__(self, *script, fn=None):
        r = Receiver(script or [{"status": 200}], fn=fn)
        self.made.append(r)
        return r

    def close(self):
        for r in self.made:
            r.close()
