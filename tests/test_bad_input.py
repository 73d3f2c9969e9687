"""Bad input against the real musubi binary: over-size values, abandoned and slow
connections, a flood of malformed requests. The server answers in etcd's JSON, stays up,
and loses nothing it acknowledged."""

import json
import socket
import time

import pytest

from harness import raw_request, target_kind


@pytest.fixture
def small_limit(fleet):
    if target_kind() == "etcd":
        pytest.skip("etcd 3.4's v2 API does not enforce --max-request-bytes (it took a 10 MB value)")
    return fleet.target(extra_args=["--max-request-bytes", "1024"]).start()


def test_an_over_size_value_gets_etcds_request_too_large_error(small_limit):
    ok = "value=" + "a" * 1024
    st, _, _ = raw_request(small_limit.client_port, "PUT", "/v2/keys/fits", ok)
    assert st == 201
    big = "value=" + "a" * (1024 + 512 * 1024 + 1)
    st, h, body = raw_request(small_limit.client_port, "PUT", "/v2/keys/big", big)
    assert st == 500, (st, body[:200])
    assert json.loads(body) == {"errorCode": 300, "message": "Raft Internal Error",
                                "cause": "etcdserver: request is too large", "index": 0}
    st, _, body = raw_request(small_limit.client_port, "GET", "/v2/keys/fits")
    assert st == 200 and json.loads(body)["node"]["value"] == "a" * 1024
    st, _, _ = raw_request(small_limit.client_port, "GET", "/v2/keys/big")
    assert st == 404


def test_abandoned_and_slow_connections_do_not_block_others(target):
    idle = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", target.client_port))
        s.sendall(b"PUT /v2/keys/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
        idle.append(s)
    try:
        for i in range(20):
            st, _, body = raw_request(target.client_port, "PUT", "/v2/keys/live", "value=%d" % i, timeout=5)
            assert st in (200, 201), body
        # Half a request, then the client goes away: nothing is written.
        for s in idle[:25]:
            s.close()
        time.sleep(0.2)
        st, _, _ = raw_request(target.client_port, "GET", "/v2/keys/slow")
        assert st == 404
    finally:
        for s in idle:
            s.close()
    st, _, body = raw_request(target.client_port, "GET", "/v2/keys/live")
    assert st == 200 and json.loads(body)["node"]["value"] == "19"


def test_garbage_requests_get_errors_and_the_server_stays_up(target):
    junk = [b"\x00\x01\x02\r\n\r\n", b"GET /v2/keys/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PUT /v2/keys/a?ttl=%ff HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            b"POST /v2/keys/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 9\r\n\r\nvalue=%G1"]
    for raw in junk:
        s = socket.create_connection(("127.0.0.1", target.client_port))
        s.sendall(raw)
        s.settimeout(5)
        reply = b""
        try:
            while not reply.endswith(b"\n") or b"\r\n\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except socket.timeout:
            pass
        s.close()
        assert reply.startswith(b"HTTP/1.1 4") or reply.startswith(b"HTTP/1.1 3") or reply == b"", reply[:200]
    st, _, _ = raw_request(target.client_port, "PUT", "/v2/keys/after", "value=ok")
    assert st in (200, 201)
