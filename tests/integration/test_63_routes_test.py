# routes.test: a routing rule's match tried on a sample event through the
# server API, explained clause by clause; bad rules and bad events are a 107
# naming the member; the scope is `routes`.
import pytest

from helpers_api import api, api_error, scope_key, with_api


@pytest.fixture(scope="module")
def rsrv(module_factory):
    return module_factory(tweak=with_api, name="routestest")


RULE = {"channel": "alerts:**", "type": ["incident.*"],
        "where": {"data.severity": {"$in": ["high", "critical"]}, "headers.x-team": "ops"}}


def test_a_matching_event_is_explained(rsrv):
    res = api(rsrv, "routes.test", {"match": RULE, "event": {
        "channel": "alerts:eu", "type": "incident.opened",
        "data": {"severity": "critical"}, "headers": {"x-team": "ops"}}})
    assert res["matched"] is True
    assert res["channel"]["matched"] is True and res["type"]["matched"] is True
    assert res["where"]["matched"] is True
    assert all(c["matched"] for c in res["where"]["clauses"])


def test_a_missed_event_says_which_clause_failed(rsrv):
    res = api(rsrv, "routes.test", {"match": RULE, "event": {
        "channel": "alerts:eu", "type": "incident.opened", "data": {"severity": "low"},
        "headers": {"x-team": "ops"}}}, key=scope_key("acme", "routes"))
    assert res["matched"] is False
    failed = [c for c in res["where"]["clauses"] if not c["matched"]]
    assert [c["path"] for c in failed] == ["data.severity"]
    assert failed[0]["op"] == "$in" and failed[0]["actual"] == "low"
    other = api(rsrv, "routes.test", {"match": RULE, "event": {"channel": "chat:x"}})
    assert other["matched"] is False and other["channel"]["matched"] is False


@pytest.mark.parametrize("body, member", [
    ({"match": {"where": {"data.a": {"$inn": [1]}}}, "event": {"channel": "a"}},
     "match.where.data.a.$inn: unknown operator $inn"),
    ({"match": {"channel": "a:**:b"}, "event": {"channel": "a"}}, "match.channel"),
    ({"match": {"colour": "red"}, "event": {"channel": "a"}}, "match.colour"),
    ({"match": "alerts", "event": {"channel": "a"}}, "match: expected an object"),
    ({"event": {"channel": "a"}}, "match: expected an object"),
    ({"match": {}}, "event: expected an object"),
    ({"match": {}, "event": {}}, "event.channel"),
    ({"match": {}, "event": {"channel": "bad channel!"}}, "event.channel"),
    ({"match": {}, "event": {"channel": "a", "type": 7}}, "event.type"),
    ({"match": {}, "event": {"channel": "a", "headers": [1]}}, "event.headers"),
])
def test_bad_rules_and_events_are_107_naming_the_member(rsrv, body, member):
    st, err = api_error(rsrv, "routes.test", body)
    assert (st, err["code"]) == (400, 107), err
    assert member in err["message"], err


def test_needs_the_routes_scope(rsrv):
    st, err = api_error(rsrv, "routes.test", {"match": {}, "event": {"channel": "a"}},
                        key=scope_key("acme", "publish"))
    assert (st, err["code"]) == (403, 103)
