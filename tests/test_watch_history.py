"""`--v2-watch-history`: musubi's answer to etcd's "401 event index cleared" loops. With
the default window a watch from an index 1000 events back is refused exactly as etcd
refuses it; with a larger window the same watch is answered from history."""

import json

import pytest

from harness import raw_request, target_kind

EVENTS = 1200


def fill(server):
    for i in range(EVENTS):
        st, _, _ = raw_request(server.client_port, "PUT", "/v2/keys/h/k%d" % (i % 7), "value=%d" % i)
        assert st in (200, 201)


def test_the_default_window_clears_old_events_like_etcd(fleet):
    s = fleet.target().start()
    first = s.index() + 1
    fill(s)
    st, h, body = raw_request(s.client_port, "GET", "/v2/keys/h/k0?wait=true&waitIndex=%d" % first)
    err = json.loads(body)
    assert st == 400 and err["errorCode"] == 401, (st, body)
    assert err["message"] == "The event in requested index is outdated and cleared"
    assert err["cause"].startswith("the requested history has been cleared [")


def test_a_larger_window_answers_from_history(fleet):
    if target_kind() == "etcd":
        pytest.skip("etcd's window is fixed at 1000 events")
    s = fleet.target(extra_args=["--v2-watch-history", "5000"]).start()
    first = s.index() + 1
    fill(s)
    st, _, body = raw_request(s.client_port, "GET", "/v2/keys/h/k0?wait=true&waitIndex=%d" % first, timeout=5)
    ev = json.loads(body)
    assert st == 200 and ev["action"] == "set" and ev["node"]["value"] == "0", body
    assert ev["node"]["modifiedIndex"] == first
