"""The v3 JSON gateway's HTTP rules against the target (reference §4), each as etcd 3.4
has them: paths and methods, CORS headers, JSON input forms and errors, zero values left
out of replies, and the streams (watch, lease keepalive) with one JSON object per HTTP
chunk, because etcd3gw json.loads each chunk.

Run with MUSUBI_TEST_TARGET=etcd to prove every expectation against etcd 3.4 itself.
"""

import json
import socket

import pytest

from harness import raw_request
from v3util import ChunkedStream, Gateway, b64

CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "POST, GET, OPTIONS, PUT, DELETE",
    "access-control-allow-headers": "accept, content-type, authorization",
}


@pytest.fixture
def gw(target):
    g = Gateway(target)
    yield g
    g.close()


def post(server, path, body, headers=None):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return raw_request(server.client_port, "POST", path, body, h)


def header_ok(h, rev=None):
    assert set(h) <= {"cluster_id", "member_id", "revision", "raft_term"}, h
    for f in ("cluster_id", "member_id", "raft_term"):
        assert isinstance(h[f], str) and h[f].isdigit() and int(h[f]) > 0, h
    if rev is not None:
        assert h["revision"] == str(rev), h


def is_error(status, body, http_status, code, message=None):
    """A unary error body: {"error": M, "message": M, "code": N} with the HTTP status."""
    assert status == http_status, (status, body)
    j = json.loads(body)
    assert set(j) == {"error", "message", "code"}, j
    assert j["code"] == code and j["error"] == j["message"] and j["message"], j
    if message is not None:
        assert j["message"] == message, j
    return j


# ---------------------------------------------------------------------------
# paths, methods, CORS

def test_v3beta_is_rewritten_and_v3alpha_is_404(target):
    st, h, body = post(target, "/v3beta/kv/put", {"key": b64("beta"), "value": b64("1")})
    assert st == 200, body
    header_ok(json.loads(body)["header"], 2)
    st, _, body = post(target, "/v3/kv/range", {"key": b64("beta")})
    assert st == 200 and json.loads(body)["kvs"][0]["value"] == b64("1"), body
    st, _, body = post(target, "/v3beta/kv/range", {"key": b64("beta")})
    assert st == 200 and json.loads(body)["kvs"][0]["value"] == b64("1"), body
    st, _, body = post(target, "/v3beta/lease/grant", {"TTL": 60, "ID": 5})
    assert st == 200 and json.loads(body)["ID"] == "5", body
    for path in ("/v3alpha/kv/range", "/v3alpha/kv/put", "/v3alpha/watch"):
        st, _, body = post(target, path, {"key": b64("beta")})
        assert st == 404, (path, st, body)


def test_methods_and_unknown_paths(target):
    for method in ("GET", "PUT", "DELETE"):
        st, h, body = raw_request(target.client_port, method, "/v3/kv/range")
        assert st == 405, (method, st, body)
        assert h["content-type"].startswith("text/plain"), h
        assert body.strip() == b"Method Not Allowed", body
    for path in ("/v3/kv/nothing", "/v3/lease/nothing", "/v3/auth/status", "/v3/", "/v3/kv"):
        st, h, body = post(target, path, {})
        assert st == 404, (path, st, body)
        assert h["content-type"].startswith("text/plain"), h
        assert body.strip() == b"Not Found", (path, body)


def test_cors_headers_on_every_reply(target):
    def cors(h):
        for k, v in CORS.items():
            assert h.get(k) == v, (k, h)

    replies = [
        post(target, "/v3/kv/put", {"key": b64("c"), "value": b64("v")}),          # 200
        post(target, "/v3/kv/range", {"key": ""}),                                   # 400 gRPC error
        post(target, "/v3/kv/range", "{"),                                           # 400 bad JSON
        post(target, "/v3/lease/revoke", {"ID": 999}),                               # 404 gRPC error
        post(target, "/v3/kv/nothing", {}),                                          # 404 path
        raw_request(target.client_port, "GET", "/v3/kv/range"),                      # 405
        post(target, "/v3/lease/keepalive", {"ID": 999}),                            # stream
    ]
    for st, h, body in replies:
        cors(h)
    # a CORS preflight is answered 200 with the headers and an empty body
    st, h, body = raw_request(target.client_port, "OPTIONS", "/v3/kv/range")
    assert st == 200 and body == b"", (st, body)
    cors(h)
    ws = ChunkedStream(target.client_port, "/v3/watch", {"create_request": {"key": b64("c")}})
    try:
        assert ws.status == 200
        cors(ws.headers)
    finally:
        ws.close()


# ---------------------------------------------------------------------------
# input

def test_input_forms(target, gw):
    gw.put("a", "1")
    gw.put("b", "2")
    gw.put("c", "3")
    # lowerCamel names, int64 as a string, enums by name and by number
    st, _, body = post(target, "/v3/kv/range", {"key": b64("a"), "rangeEnd": b64("d"), "sortOrder": "DESCEND",
                                                 "sortTarget": 0, "keysOnly": True, "limit": "2"})
    j = json.loads(body)
    assert st == 200 and [kv["key"] for kv in j["kvs"]] == [b64("c"), b64("b")], body
    assert j["more"] is True and j["count"] == "3" and "value" not in j["kvs"][0], body
    st, _, body = post(target, "/v3/kv/range", {"key": b64("a"), "range_end": b64("d"), "sort_order": 2,
                                                 "sort_target": "KEY", "keys_only": True, "limit": 2})
    assert st == 200 and json.loads(body) == j, body
    # prevKv in lowerCamel, lease as a string
    st, _, body = post(target, "/v3/lease/grant", {"TTL": "60", "ID": "77"})
    assert st == 200 and json.loads(body)["ID"] == "77", body
    st, _, body = post(target, "/v3/kv/put", {"key": b64("a"), "value": b64("9"), "prevKv": True, "lease": "77"})
    assert st == 200 and json.loads(body)["prev_kv"]["value"] == b64("1"), body
    assert gw.get("a")["kvs"][0]["lease"] == "77"
    # unknown fields and null are ignored; trailing bytes after the object are not read
    st, _, body = post(target, "/v3/kv/range", '{"key":"%s","bogus":{"x":1},"limit":null}' % b64("b"))
    assert st == 200 and json.loads(body)["kvs"][0]["value"] == b64("2"), body
    st, _, body = post(target, "/v3/kv/range", '{"key":"%s"} trailing' % b64("b"))
    assert st == 200 and json.loads(body)["count"] == "1", body
    # the Content-Type is not looked at
    st, _, body = post(target, "/v3/kv/range", {"key": b64("b")}, headers={"Content-Type": "text/plain"})
    assert st == 200 and json.loads(body)["count"] == "1", body
    # an empty body, {} and null are an empty request: here the key is missing
    for empty in ("", "{}", "null"):
        st, _, body = post(target, "/v3/kv/range", empty)
        is_error(st, body, 400, 3, "etcdserver: key is not provided")
    st, _, body = post(target, "/v3/lease/leases", "")
    assert st == 200 and [l["ID"] for l in json.loads(body)["leases"]] == ["77"], body


def test_bad_json_and_bad_values(target):
    # malformed JSON: 400 code 3 on a unary path
    for bad in ('{"key":', "{", "[]", '{"key":"YQ==","limit":"abc"}', '{"key":"YQ==","limit":1.5}'):
        st, _, body = post(target, "/v3/kv/range", bad)
        is_error(st, body, 400, 3)
    # bytes must be padded standard base64
    st, _, body = post(target, "/v3/kv/range", {"key": "Zm9vMQ"})
    is_error(st, body, 400, 3, "illegal base64 data at input byte 4")
    st, _, body = post(target, "/v3/kv/put", {"key": b64("k"), "value": "not base64!"})
    is_error(st, body, 400, 3)
    # a bool must be a JSON bool
    for v in ('"true"', "1"):
        st, _, body = post(target, "/v3/kv/range", '{"key":"YQ==","keys_only":%s}' % v)
        is_error(st, body, 400, 3)
    # an unknown enum name
    st, _, body = post(target, "/v3/kv/range", {"key": "YQ==", "sort_order": "SIDEWAYS"})
    is_error(st, body, 400, 3)
    # nothing of these was applied
    st, _, body = post(target, "/v3/kv/range", {"key": "AA==", "range_end": "AA=="})
    assert st == 200 and "kvs" not in json.loads(body), body
    header_ok(json.loads(body)["header"], 1)


def test_grpc_errors_map_to_http_status(target, gw):
    gw.put("k", "v")
    st, _, body = post(target, "/v3/kv/range", {"key": b64("k"), "revision": 1000})
    is_error(st, body, 400, 11, "etcdserver: mvcc: required revision is a future revision")
    st, _, body = post(target, "/v3/kv/put", {"key": b64("k"), "value": b64("v"), "lease": "999"})
    is_error(st, body, 404, 5, "etcdserver: requested lease not found")
    post(target, "/v3/lease/grant", {"TTL": 60, "ID": 9})
    st, _, body = post(target, "/v3/lease/grant", {"TTL": 60, "ID": 9})
    is_error(st, body, 412, 9, "etcdserver: lease already exists")
    st, _, body = post(target, "/v3/kv/put", {"key": b64("k"), "value": b64("v"), "ignore_value": True})
    is_error(st, body, 400, 3, "etcdserver: value is provided")
    st, _, body = post(target, "/v3/kv/compaction", {"revision": 50})
    is_error(st, body, 400, 11, "etcdserver: mvcc: required revision is a future revision")
    st, _, body = post(target, "/v3/lease/grant", {"TTL": 9000000001})
    is_error(st, body, 400, 11, "etcdserver: too large lease TTL")


# ---------------------------------------------------------------------------
# output

def test_zero_values_are_left_out(target, gw):
    j = gw.call("/kv/put", {"key": b64("z"), "value": b64("")})
    assert set(j) == {"header"}, j
    header_ok(j["header"], 2)
    j = gw.call("/kv/range", {"key": b64("z")})
    # an empty value and lease 0 are left out; int64s are strings
    assert j["kvs"] == [{"key": b64("z"), "create_revision": "2", "mod_revision": "2", "version": "1"}], j
    assert j["count"] == "1" and "more" not in j, j
    j = gw.call("/kv/range", {"key": b64("missing")})
    assert set(j) == {"header"}, j
    j = gw.call("/kv/range", {"key": b64("z"), "count_only": True})
    assert set(j) == {"header", "count"}, j
    j = gw.call("/kv/deleterange", {"key": b64("missing")})
    assert set(j) == {"header"}, j
    header_ok(j["header"], 2)
    j = gw.call("/kv/txn", {"compare": [{"key": b64("z"), "target": "VALUE", "value": b64("x")}]})
    assert set(j) == {"header"}, j                       # no succeeded:false, no responses
    j = gw.call("/kv/txn", {"success": [{"request_range": {"key": b64("missing")}},
                                        {"request_txn": {}}]})
    assert j["succeeded"] is True, j
    assert j["responses"] == [{"response_range": {"header": {"revision": "2"}}},
                              {"response_txn": {"header": {}, "succeeded": True}}], j
    j = gw.call("/kv/compaction", {"revision": 2})
    assert set(j) == {"header"}, j
    # leases: the proto names ID, TTL, grantedTTL as they are
    j = gw.call("/lease/grant", {"TTL": 60, "ID": 42})
    assert {k: j[k] for k in ("ID", "TTL")} == {"ID": "42", "TTL": "60"} and "error" not in j, j
    j = gw.call("/lease/timetolive", {"ID": 42, "keys": True})
    assert j["ID"] == "42" and j["grantedTTL"] == "60" and 55 <= int(j["TTL"]) <= 60 and "keys" not in j, j
    j = gw.call("/lease/timetolive", {"ID": 43})
    assert j["ID"] == "43" and j["TTL"] == "-1" and "grantedTTL" not in j, j
    j = gw.call("/lease/revoke", {"ID": 42})
    assert set(j) == {"header"}, j
    j = gw.call("/lease/leases", {})
    assert set(j) == {"header"}, j


def test_maintenance_and_cluster_names(target, gw):
    """dbSize, raftIndex, peerURLs, clientURLs: the proto names, int64 as strings."""
    j = gw.call("/maintenance/status", {})
    assert j["version"].startswith("3.4") and isinstance(j["dbSize"], str) and "raftIndex" in j, j
    j = gw.call("/cluster/member/list", {})
    m = j["members"][0]
    assert isinstance(m["ID"], str) and m["peerURLs"] and m["clientURLs"] == [target.url], j
    assert "isLearner" not in m, j


# ---------------------------------------------------------------------------
# streams

def read_messages(stream, n, timeout=10.0):
    """n chunks, each one whole {"result": ...} object ending in a newline."""
    out = []
    for _ in range(n):
        data = stream.chunk(timeout=timeout)
        assert data, "the stream ended after %d messages: %r" % (len(out), out)
        assert data.endswith(b"\n") and data.count(b"\n") == 1, \
            "a chunk must hold exactly one JSON object and its newline: %r" % data
        j = json.loads(data)
        assert set(j) == {"result"}, j
        out.append(j["result"])
    return out


def test_watch_stream_one_object_per_chunk(target, gw):
    gw.put("w0", "old")
    ws = ChunkedStream(target.client_port, "/v3/watch",
                       {"create_request": {"key": b64("w"), "range_end": b64("x"), "prev_kv": True}})
    try:
        assert ws.status == 200 and ws.chunked, ws.headers
        assert ws.headers["content-type"] == "application/json", ws.headers
        [created] = read_messages(ws, 1)
        # created first, with the current revision; watch_id 0 is left out
        assert set(created) == {"header", "created"} and created["created"] is True, created
        header_ok(created["header"], 2)
        gw.put("w1", "a")                                                   # 3
        gw.put("w1", "b")                                                   # 4
        gw.call("/kv/txn", {"success": [{"request_put": {"key": b64("w2"), "value": b64("c")}},
                                        {"request_delete_range": {"key": b64("w0")}}]})   # 5
        gw.put("zz", "outside")                                             # 6
        gw.call("/kv/deleterange", {"key": b64("w1")})                      # 7
        m = read_messages(ws, 4)
        assert [r["header"]["revision"] for r in m] == ["3", "4", "5", "7"], m
        assert m[0]["events"] == [{"kv": {"key": b64("w1"), "create_revision": "3", "mod_revision": "3",
                                          "version": "1", "value": b64("a")}}], m[0]
        assert m[1]["events"][0]["prev_kv"]["value"] == b64("a"), m[1]
        # one response for the Txn, its events in op order; a DELETE's kv is key + mod_revision
        assert m[2]["events"] == [
            {"kv": {"key": b64("w2"), "create_revision": "5", "mod_revision": "5", "version": "1",
                    "value": b64("c")}},
            {"type": "DELETE", "kv": {"key": b64("w0"), "mod_revision": "5"},
             "prev_kv": {"key": b64("w0"), "create_revision": "2", "mod_revision": "2", "version": "1",
                         "value": b64("old")}}], m[2]
        assert m[3]["events"][0]["type"] == "DELETE" and m[3]["events"][0]["kv"] == {
            "key": b64("w1"), "mod_revision": "7"}, m[3]
        assert all("watch_id" not in r and "created" not in r for r in m), m
    finally:
        ws.close()


def test_watch_history_and_compacted_start(target, gw):
    for i in range(5):
        gw.put("h", str(i))                                                 # 2..6
    gw.call("/kv/compaction", {"revision": 4, "physical": True})
    # a start below the compaction: created, then canceled with compact_revision and no
    # reason, its header without a revision
    ws = ChunkedStream(target.client_port, "/v3/watch", {"create_request": {"key": b64("h"), "start_revision": 2}})
    try:
        created, canceled = read_messages(ws, 2)
        assert created["created"] is True and "canceled" not in created, created
        header_ok(created["header"], 6)
        assert canceled["canceled"] is True and canceled["compact_revision"] == "4", canceled
        assert set(canceled) == {"header", "canceled", "compact_revision"}, canceled
        assert "revision" not in canceled["header"], canceled
    finally:
        ws.close()
    # a start at the compaction revision is accepted and replays from there
    ws = ChunkedStream(target.client_port, "/v3/watch", {"create_request": {"key": b64("h"), "start_revision": 4}})
    try:
        created, = read_messages(ws, 1)
        assert created["created"] is True, created
        events = []
        while len(events) < 3:
            events += read_messages(ws, 1)[0]["events"]
        assert [(e["kv"]["mod_revision"], e["kv"]["value"]) for e in events] == [
            ("4", b64("2")), ("5", b64("3")), ("6", b64("4"))], events
    finally:
        ws.close()


def test_watch_several_requests_in_one_body(target, gw):
    body = "".join(json.dumps(r) for r in [
        {"create_request": {"key": b64("a")}},                               # auto: ID 0
        {"create_request": {"key": b64("b"), "watch_id": 7}},
        {"create_request": {"key": b64("c"), "watch_id": 7}},                # duplicate
        {"create_request": {"key": b64("d"), "range_end": b64("c")}},        # empty range
        {"create_request": {"key": b64("e"), "watch_id": 0}},                # 0 means auto: ID 1
        {"progress_request": {}},
        {"cancel_request": {"watch_id": 0}},
    ])
    ws = ChunkedStream(target.client_port, "/v3/watch", body)
    try:
        m = read_messages(ws, 7)
        for r in m:
            header_ok(r["header"], 1)
        strip = [{k: v for k, v in r.items() if k != "header"} for r in m]
        assert strip == [
            {"created": True},
            {"watch_id": "7", "created": True},
            {"watch_id": "-1", "created": True, "canceled": True,
             "cancel_reason": "mvcc: duplicate watch ID provided on the WatchStream"},
            {"watch_id": "-1", "created": True, "canceled": True, "cancel_reason": "mvcc: watcher range is empty"},
            {"watch_id": "1", "created": True},
            {"watch_id": "-1"},
            {"canceled": True},
        ], strip
        # the watch stays open after the body ended: the remaining watchers still report
        gw.put("a", "cancelled: no event")
        gw.put("b", "x")
        [ev] = read_messages(ws, 1)
        assert ev["watch_id"] == "7" and ev["events"][0]["kv"]["key"] == b64("b"), ev
    finally:
        ws.close()


def test_keepalive_stream(target, gw):
    gw.call("/lease/grant", {"TTL": 30, "ID": 11})
    body = json.dumps({"ID": 11}) + json.dumps({"ID": "11"}) + json.dumps({"ID": 12345})
    ks = ChunkedStream(target.client_port, "/v3/lease/keepalive", body)
    try:
        assert ks.status == 200 and ks.chunked, ks.headers
        m = read_messages(ks, 3)
        assert [{k: v for k, v in r.items() if k != "header"} for r in m] == [
            {"ID": "11", "TTL": "30"}, {"ID": "11", "TTL": "30"}, {"ID": "12345"}], m
        header_ok(m[0]["header"], 1)
        # the stream ends once the request body has ended and been answered
        assert ks.chunk(timeout=10) == b""
    finally:
        ks.close()


def test_stream_with_malformed_json_is_500(target):
    for path in ("/v3/watch", "/v3/lease/keepalive"):
        st, _, body = post(target, path, '{"create_request":')
        is_error(st, body, 500, 2)


def test_watch_stream_survives_a_slow_reader(target, gw):
    """Many events while the client reads nothing: later each chunk still holds one whole
    message, in revision order."""
    ws = ChunkedStream(target.client_port, "/v3/watch", {"create_request": {"key": b64("s")}})
    try:
        read_messages(ws, 1)
        for i in range(50):
            gw.put("s", "v%d" % i)
        revs = []
        while len(revs) < 50:
            for r in read_messages(ws, 1):
                revs += [int(e["kv"]["mod_revision"]) for e in r["events"]]
        assert revs == list(range(2, 52)), revs
    finally:
        ws.close()


def test_stream_connection_closed_by_client(target, gw):
    """A client that hangs up on a watch leaves the server serving others."""
    for _ in range(5):
        ws = ChunkedStream(target.client_port, "/v3/watch", {"create_request": {"key": b64("q")}})
        read_messages(ws, 1)
        ws.sock.shutdown(socket.SHUT_RDWR)
        ws.close()
    gw.put("q", "still here")
    assert gw.get("q")["kvs"][0]["value"] == b64("still here")
