# A guaranteed pub that retention removes before its offline recipient
# comes back is `expired`: the recipient gets the retained ones (with their
# attempt numbers), and trace shows the expired one with the reason.
import os
import sqlite3

from helpers_api import api, with_api
from parley_client import connect, run, uniq


def tiny_ns(cfg):
    cfg = with_api(cfg)
    cfg["namespaces"].append({"name": "tiny", "class": "guaranteed", "history_size": 2})
    return cfg


def test_retention_expires_undelivered_guaranteed_pubs(server_factory):
    srv = server_factory(tweak=tiny_ns, name="expired")
    user = uniq("zed")
    ch = f"tiny:#{user}"
    ids = [api(srv, "publish", {"channel": ch, "data": i})["id"] for i in range(5)]

    async def come_back():
        cl = await connect(srv, user)
        await cl.subscribe(ch)
        got = await cl.pubs(ch, 2)
        assert [p["offset"] for p in got] == [4, 5], got
        assert all(p["attempt"] == 1 for p in got), got
        await cl.close()

    run(come_back())
    kept = api(srv, "trace", {"id": ids[4]})
    assert kept["deliveries"][0]["state"] == "sent", kept
    # The trimmed pubs are gone, so trace cannot look them up by id; their
    # delivery rows are read from the database file, once the server (which
    # holds the database for itself while it runs) has stopped.
    srv.stop()
    db = sqlite3.connect(os.path.join(srv.data_dir, "parley.db"))
    try:
        rows = db.execute("SELECT d.off, d.state FROM deliveries d JOIN channels c"
                          " ON c.cid = d.cid WHERE c.channel = ? ORDER BY d.off", (ch,)).fetchall()
        why = db.execute("SELECT DISTINCT l.error FROM delivery_log l JOIN channels c"
                         " ON c.cid = l.cid WHERE c.channel = ? AND l.state = 5", (ch,)).fetchall()
    finally:
        db.close()
    expired, sent = 5, 1
    assert rows == [(1, expired), (2, expired), (3, expired), (4, sent), (5, sent)], rows
    assert why == [("removed by retention",)], why
