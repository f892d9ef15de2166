# Storage faults: the database belongs to the running server. Removing its
# WAL file under it stops the acks (113, temporary; /readyz 503; one
# storage_fault line in the log) without a crash, and what was acked before
# is in history after a restart. There is no -shm file to lose: the WAL
# index lives in the server's memory.
import glob
import json
import os

from parley_client import RpcError, connect, run


def _fault_lines(srv):
    out = []
    for line in srv.log_text().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "storage_fault":
            out.append(ev)
    return out


async def _publish_n(srv, ch, n):
    cl = await connect(srv, "writer")
    acks = [await cl.publish(ch, {"k": k}) for k in range(n)]
    await cl.close()
    return acks


async def _publish_fails(srv, ch):
    cl = await connect(srv, "writer")
    for k in range(3):
        try:
            await cl.publish(ch, {"late": k})
        except RpcError as e:
            assert e.code == 113, e.reply
            assert e.reply["error"]["temporary"] is True, e.reply
        else:
            raise AssertionError("a publish was acked after the WAL file was removed")
    await cl.close()


async def _history(srv, ch):
    cl = await connect(srv, "reader")
    pubs, _ = await cl.full_history(ch)
    await cl.close()
    return pubs


def test_removed_wal_stops_acks(server_factory):
    srv = server_factory(name="walgone")
    acks = run(_publish_n(srv, "chat:fa", 5))
    assert [a["offset"] for a in acks] == [1, 2, 3, 4, 5]
    assert srv.http("GET", "/readyz")[0] == 200
    os.unlink(os.path.join(srv.data_dir, "parley.db-wal"))
    run(_publish_fails(srv, "chat:fa"))
    run(_publish_fails(srv, "chat:fb"))  # sticky, on any channel
    assert srv.alive(), srv.log_tail()
    assert srv.http("GET", "/readyz")[0] == 503
    assert srv.http("GET", "/healthz")[0] == 200  # alive, just not storing
    faults = _fault_lines(srv)
    assert len(faults) == 1, srv.log_tail()
    assert faults[0]["level"] == "error", faults[0]
    assert "parley.db-wal" in faults[0]["error"], faults[0]
    assert "restart" in faults[0]["action"], faults[0]
    srv.restart()  # what an operator does
    assert srv.http("GET", "/readyz")[0] == 200
    pubs = run(_history(srv, "chat:fa"))
    assert [(p["offset"], p["id"]) for p in pubs] == [(a["offset"], a["id"]) for a in acks]
    assert [p["epoch"] for p in pubs] == [a["epoch"] for a in acks]
    more = run(_publish_n(srv, "chat:fa", 1))
    assert more[0]["offset"] == 6 and more[0]["epoch"] == acks[0]["epoch"]


def test_no_shm_file_to_lose(server_factory):
    srv = server_factory(name="shm")
    run(_publish_n(srv, "chat:fs", 3))
    shm = os.path.join(srv.data_dir, "parley.db-shm")
    assert not os.path.exists(shm), "the WAL index should live in memory"
    # Whatever appears under that name is not the server's: an unwritable
    # one changes nothing.
    with open(shm, "wb") as f:
        f.write(b"\0" * 32768)
    os.chmod(shm, 0)
    os.chmod(srv.data_dir, 0o500)  # nor can a new file be made
    try:
        acks = run(_publish_n(srv, "chat:fs", 3))
    finally:
        os.chmod(srv.data_dir, 0o700)
    assert [a["offset"] for a in acks] == [4, 5, 6]
    assert srv.alive(), srv.log_tail()
    assert srv.http("GET", "/readyz")[0] == 200
    assert not _fault_lines(srv)
    assert glob.glob(os.path.join(srv.data_dir, "parley.db*"))
