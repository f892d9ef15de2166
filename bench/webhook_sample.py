#!/usr/bin/env python3
"""Sampler for bench/webhooks.sh: every --every seconds (default 0.2) reads
the server's /metrics and hook_sink's /count and writes one JSON line

    {"t": <CLOCK_MONOTONIC s>, "lag": ..., "depth": ..., "created": ...,
     "missed": ..., "delivered": ..., "sink": ...}

to --out, until the file named by --stop exists (or it is killed). With
--gate FILE, /metrics is read only while FILE exists (the other figures are
then null): reading /metrics is not free for the server (see
bench/README.md, "Webhooks"), so runs that measure the publish path alone
leave it unread while publishing.
Missing figures (no route, no endpoint) are null. `python3 webhook_sample.py
--once URL SINKURL` prints one sample and exits (used at window edges)."""
import json
import os
import re
import sys
import time
import urllib.request

FIELDS = {
    "lag": re.compile(r"^parley_route_lag_entries (\S+)$", re.M),
    "depth": re.compile(r"^parley_webhook_queue_depth\{[^}]*\} (\S+)$", re.M),
    "created": re.compile(r"^parley_route_deliveries_created_total (\S+)$", re.M),
    "missed": re.compile(r"^parley_route_events_missed_total (\S+)$", re.M),
    "delivered": re.compile(
        r'^parley_webhook_deliveries_total\{[^}]*outcome="delivered"\} (\S+)$', re.M),
    "in_flight": re.compile(r"^parley_webhook_in_flight\{[^}]*\} (\S+)$", re.M),
}


def get(url, timeout=30.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except Exception:
        return None


def sample(metrics_url, sink_url, gate=None):
    t = time.monotonic()
    m = (get(metrics_url) or "") if metrics_url and (gate is None or os.path.exists(gate)) else ""
    s = {"t": round(t, 4)}
    for k, rx in FIELDS.items():
        v = rx.search(m)
        s[k] = float(v.group(1)) if v else None
    c = get(sink_url) if sink_url else None
    s["sink"] = int(c.strip()) if c and c.strip().isdigit() else None
    s["t_end"] = round(time.monotonic(), 4)
    return s


def main(argv):
    if argv[1:2] == ["--once"]:
        print(json.dumps(sample(argv[2], argv[3] if len(argv) > 3 else None)))
        return 0
    opts = dict(zip(argv[1::2], argv[2::2]))
    every = float(opts.get("--every", "0.2"))
    out = open(opts["--out"], "a", buffering=1)
    stop = opts["--stop"]
    nxt = time.monotonic()
    while not os.path.exists(stop):
        out.write(json.dumps(sample(opts["--metrics"], opts.get("--sink"), opts.get("--gate"))) + "\n")
        nxt += every
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            nxt = time.monotonic()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
