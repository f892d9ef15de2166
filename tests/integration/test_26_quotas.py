# Tenant quotas: max_channels bounds how many channels (streams) a tenant
# may create, through publishes, subscriptions and history reads; channels
# that already exist stay usable, other tenants are unaffected, and the
# count survives a restart.
import time

from helpers_api import ADMIN_KEY, api, api_error, with_api
from parley_client import connect, jwt_encode, run, uniq


def test_max_channels_bounds_new_channels(server_factory):
    srv = server_factory(tweak=with_api, name="quota")
    tid, secret = "q" + uniq(), "quota-secret-" + uniq()
    api(srv, "tenants.create", {"id": tid, "jwt_secret": secret, "max_channels": 2},
        key=ADMIN_KEY)
    key = api(srv, "keys.create", {"tenant": tid, "scopes": ["*"]}, key=ADMIN_KEY)["key"]
    a, b, c = ("chat:" + uniq() for _ in range(3))
    api(srv, "publish", {"channel": a, "data": 1}, key=key)
    api(srv, "publish", {"channel": b, "data": 2}, key=key)
    status, err = api_error(srv, "publish", {"channel": c, "data": 3}, key=key)
    assert status == 413 and err["code"] == 106, (status, err)
    # existing channels keep working; nothing was stored for the refused one
    assert api(srv, "publish", {"channel": a, "data": 4}, key=key)["offset"] == 2
    assert api_error(srv, "history", {"channel": c}, key=key)[1]["code"] == 106
    # another tenant is not limited by this one's quota
    api(srv, "publish", {"channel": c, "data": 5}, tenant="acme")

    async def client():
        tok = jwt_encode({"sub": "u", "tenant": tid, "exp": int(time.time()) + 600}, secret)
        cl = await connect(srv, "u", token=tok)
        err = await cl.error("subscribe", {"channel": "chat:" + uniq()})
        assert err["code"] == 106, err
        res = await cl.subscribe(a)
        assert res["offset"] == 2
        await cl.close()

    run(client())
    srv.restart()
    status, err = api_error(srv, "publish", {"channel": "chat:" + uniq(), "data": 6}, key=key)
    assert err["code"] == 106, (status, err)


def test_storage_bytes_budget_counts_retention(server_factory):
    """storage_bytes bounds the tenant's stored data; pubs trimmed by
    retention give their bytes back."""
    srv = server_factory(tweak=with_api, name="quota-bytes")
    tid = "b" + uniq()
    api(srv, "tenants.create", {"id": tid, "jwt_secret": "bytes-secret-" + uniq(),
                                "storage_bytes": 100}, key=ADMIN_KEY)
    key = api(srv, "keys.create", {"tenant": tid, "scopes": ["*"]}, key=ADMIN_KEY)["key"]
    big = "x" * 40  # 42 bytes of JSON
    api(srv, "publish", {"channel": "chat:a", "data": big}, key=key)
    api(srv, "publish", {"channel": "chat:a", "data": big}, key=key)  # 84 stored
    status, err = api_error(srv, "publish", {"channel": "chat:a", "data": big}, key=key)
    assert status == 413 and err["code"] == 106, (status, err)
    # namespace "small" keeps 10 pubs: 15 one-byte pubs leave 10 bytes stored
    for i in range(15):
        api(srv, "publish", {"channel": "small:b", "data": i % 10}, key=key)
    assert len(api(srv, "history", {"channel": "small:b"}, key=key)["pubs"]) == 10
    api(srv, "publish", {"channel": "chat:c", "data": 12345}, key=key)  # 84 + 10 + 5 = 99
    status, err = api_error(srv, "publish", {"channel": "chat:c", "data": 12345}, key=key)
    assert err["code"] == 106, (status, err)
    # the budget survives a restart (recounted from the stored data)
    srv.restart()
    status, err = api_error(srv, "publish", {"channel": "chat:c", "data": 12345}, key=key)
    assert err["code"] == 106, (status, err)
    assert api(srv, "publish", {"channel": "chat:c", "data": 1}, key=key)["offset"] == 2


def test_tenant_retention_caps_the_namespace(server_factory):
    """A tenant's history_size caps every namespace's retention for it; other
    tenants keep the namespace's own."""
    srv = server_factory(tweak=with_api, name="quota-retention")
    tid = "r" + uniq()
    api(srv, "tenants.create", {"id": tid, "jwt_secret": "ret-secret-" + uniq(),
                                "history_size": 3}, key=ADMIN_KEY)
    key = api(srv, "keys.create", {"tenant": tid, "scopes": ["*"]}, key=ADMIN_KEY)["key"]
    for i in range(5):
        api(srv, "publish", {"channel": "chat:r", "data": i}, key=key)
        api(srv, "publish", {"channel": "chat:r", "data": i}, tenant="acme")
    mine = api(srv, "history", {"channel": "chat:r"}, key=key)["pubs"]
    assert [p["offset"] for p in mine] == [3, 4, 5]
    theirs = api(srv, "history", {"channel": "chat:r"}, tenant="acme")["pubs"]
    assert len(theirs) >= 5
    listed = [t for t in api(srv, "tenants.list", key=ADMIN_KEY)["tenants"] if t["id"] == tid]
    assert listed[0]["history_size"] == 3


def test_refused_tenant_change_is_not_audited(server_factory):
    """Only changes that are made reach the audit log: a tenant refused for a
    too-short secret leaves no record, a valid one leaves exactly one."""
    import json
    import os
    from helpers_api import api_error
    srv = server_factory(tweak=with_api, name="audit-refused")
    log = os.path.join(srv.data_dir, "audit.log")

    def records():
        if not os.path.exists(log):
            return []
        with open(log) as f:
            return [json.loads(line) for line in f if line.strip()]

    before = len(records())
    status, err = api_error(srv, "tenants.create", {"id": "short" + uniq(), "jwt_secret": "x"},
                            key=ADMIN_KEY)
    assert status == 400 and err["code"] == 107, (status, err)
    assert len(records()) == before
    tid = "ok" + uniq()
    api(srv, "tenants.create", {"id": tid, "jwt_secret": "long-enough-secret-" + uniq()},
        key=ADMIN_KEY)
    recs = records()
    assert len(recs) == before + 1 and recs[-1]["action"] == "tenants.create"
    assert recs[-1]["target"] == tid
