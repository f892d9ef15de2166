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
