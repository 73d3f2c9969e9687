"""v2 auth API: one curl-level scenario sent to a reference etcd 3.4 and to the target,
compared response by response (status, body bytes, the headers etcd sets).

Store indexes are compared relative to each side's index at the start, because etcd
counts its auth writes (and, on the first one, its /2 directories) in the store index.
"""

import base64
import json
import re

import pytest

ROOT = ("root", "pw")
JSON = "application/json"


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


# (method, path, json body or form string or None, credentials or raw header dict)
SCENARIO = [
    ("GET", "/v2/auth/enable", None, None),
    ("GET", "/v2/auth/users", None, None),
    ("GET", "/v2/auth/roles", None, None),
    ("GET", "/v2/auth/roles/root", None, None),
    ("GET", "/v2/auth/roles/guest", None, None),
    ("GET", "/v2/auth/users/root", None, None),
    ("PUT", "/v2/auth/enable", None, None),
    ("POST", "/v2/auth/enable", None, None),
    ("POST", "/v2/auth/users", None, None),
    ("PUT", "/v2/auth/users/root", {"user": "root", "password": "pw"}, None),
    ("PUT", "/v2/auth/users/root", {"user": "other", "password": "pw"}, None),
    ("PUT", "/v2/auth/users/root", "not json", None),
    ("GET", "/v2/auth/users/root", None, None),
    ("PUT", "/v2/auth/enable", None, None),
    ("PUT", "/v2/auth/enable", None, ROOT),
    ("GET", "/v2/auth/enable", None, None),
    ("GET", "/v2/auth/users", None, None),
    ("GET", "/v2/auth/users", None, ("root", "bad")),
    ("GET", "/v2/auth/users", None, ROOT),
    ("GET", "/v2/auth/roles", None, ROOT),
    ("GET", "/v2/auth/roles/guest", None, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "permissions": {"kv": {"read": ["/foo/*", "/a"], "write": ["/foo/*"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "permissions": {"kv": {"read": ["/x"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/r2", {"role": "r2"}, ROOT),
    ("PUT", "/v2/auth/roles/root", {"role": "root"}, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "grant": {"kv": {"read": ["/b"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "grant": {"kv": {"read": ["/b"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "revoke": {"kv": {"read": ["/zz"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "revoke": {"kv": {"write": ["/foo/*"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "grant": {"kv": {"write": ["/foo/w"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/nope", {"role": "nope", "revoke": {"kv": {"write": ["/a"]}}}, ROOT),
    ("PUT", "/v2/auth/roles/r1", {"role": "r1", "permissions": {"kv": {"read": ["/x"]}}, "grant": {"kv": {"read": ["/c"]}}}, ROOT),
    ("DELETE", "/v2/auth/roles/r2", None, ROOT),
    ("DELETE", "/v2/auth/roles/r2", None, ROOT),
    ("DELETE", "/v2/auth/roles/root", None, ROOT),
    ("GET", "/v2/auth/roles/r1/x", None, ROOT),
    ("GET", "/v2/auth/roles/", None, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1", "password": "p1"}, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1"}, ROOT),
    ("PUT", "/v2/auth/users/u2", {"user": "u2", "roles": ["r1"]}, ROOT),
    ("PUT", "/v2/auth/users/u2", {"user": "u2", "password": "p2", "roles": ["r1", "zz"]}, ROOT),
    ("PUT", "/v2/auth/users/u2", {"user": "u2", "password": "p2", "roles": ["r1"]}, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1", "grant": ["r1", "nonexist"]}, ROOT),
    ("GET", "/v2/auth/users/u1", None, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1", "grant": ["r1"]}, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1", "revoke": ["r9"]}, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1", "revoke": ["nonexist"], "roles": ["x"]}, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1", "revoke": ["nonexist"]}, ROOT),
    ("PUT", "/v2/auth/users/u9", {"user": "u9", "revoke": ["x"]}, ROOT),
    ("PUT", "/v2/auth/users/u1", {"user": "u1", "password": "p1b"}, ROOT),
    ("GET", "/v2/auth/users", None, ROOT),
    ("GET", "/v2/auth/users/u1", None, ROOT),
    ("GET", "/v2/auth/users", None, ("u1", "p1b")),
    ("DELETE", "/v2/auth/enable", None, None),
    ("DELETE", "/v2/auth/users/root", None, ROOT),
    ("DELETE", "/v2/auth/users/u9", None, ROOT),
    # The keys API under auth: guest (no header), users, bad credentials.
    ("PUT", "/v2/keys/foo/w", "value=1", ("u1", "p1b")),
    ("PUT", "/v2/keys/a", "value=1", ("u1", "p1b")),
    ("PUT", "/v2/keys/a", "value=1", ROOT),
    ("GET", "/v2/keys/a", None, ("u1", "p1b")),
    ("GET", "/v2/keys/foo?recursive=true", None, ("u1", "p1b")),
    ("GET", "/v2/keys/foo/?recursive=true", None, ("u1", "p1b")),
    ("GET", "/v2/keys/a", None, ("u1", "wrong")),
    ("GET", "/v2/keys/a", None, ("nouser", "x")),
    ("GET", "/v2/keys/a", None, {"Authorization": "Bearer x"}),
    ("PUT", "/v2/keys/a?ttl=abc", None, ("u1", "p1b")),
    ("GET", "/v2/keys", None, None),
    ("GET", "/v2/keys/a", None, None),
    ("PUT", "/v2/keys/g", "value=1", None),
    ("PUT", "/v2/auth/roles/guest", {"role": "guest", "revoke": {"kv": {"write": ["/*"]}}}, ROOT),
    ("PUT", "/v2/keys/g", "value=2", None),
    ("GET", "/v2/keys/g", None, None),
    ("DELETE", "/v2/auth/roles/guest", None, ROOT),
    ("GET", "/v2/keys/g", None, None),
    ("DELETE", "/v2/auth/enable", None, ROOT),
    ("DELETE", "/v2/auth/enable", None, ROOT),
    ("GET", "/v2/auth/roles", None, None),
    ("PUT", "/v2/keys/g", "value=3", None),
    ("PUT", "/v2/auth/enable", None, ROOT),
    ("GET", "/v2/auth/roles/guest", None, ROOT),
    ("DELETE", "/v2/auth/users/u1", None, ROOT),
    ("GET", "/v2/auth/users/u1", None, ROOT),
]

COMPARED_HEADERS = ("content-type", "allow", "www-authenticate")
PRESENCE_HEADERS = ("x-etcd-cluster-id", "x-etcd-index", "x-raft-index")


def send(server, step):
    method, path, body, creds = step
    headers = {}
    if isinstance(creds, tuple):
        headers.update(basic(*creds))
    elif isinstance(creds, dict):
        headers.update(creds)
    if isinstance(body, dict):
        body = json.dumps(body)
        headers["Content-Type"] = JSON
    elif body == "not json":
        headers["Content-Type"] = JSON
    return server.request(method, path, body=body, headers=headers)


def normalize(resp, base):
    status, headers, body = resp
    text = body.decode()

    def shift(m):
        return '"%s":%d' % (m.group(1), int(m.group(2)) - base)

    # Only keys-API bodies carry store indexes; the error index 0 stays 0.
    text = re.sub(r'"(modifiedIndex|createdIndex)":(\d+)', shift, text)
    text = re.sub(r'"index":([1-9]\d*)', lambda m: '"index":%d' % (int(m.group(1)) - base), text)
    shown = {h: headers.get(h) for h in COMPARED_HEADERS}
    present = {h: h in headers for h in PRESENCE_HEADERS}
    idx = headers.get("x-etcd-index")
    if idx is not None and idx != "0":
        shown["x-etcd-index"] = int(idx) - base
    return status, text, shown, present


def test_auth_scenario_matches_etcd(fleet):
    # Own names, so that MUSUBI_TEST_TARGET=etcd (etcd against etcd) gets two data dirs.
    reference = fleet.etcd(name="reference").start()
    target = fleet.target(name="target").start()
    bases = (reference.index(), target.index())
    for i, step in enumerate(SCENARIO):
        ref = normalize(send(reference, step), bases[0])
        got = normalize(send(target, step), bases[1])
        assert got == ref, "step %d %r:\n etcd:   %r\n target: %r" % (i, step[:2], ref, got)


def test_unauthenticated_keys_are_401_with_etcds_body(target):
    target.request("PUT", "/v2/auth/users/root", body=json.dumps({"user": "root", "password": "pw"}),
                   headers={"Content-Type": JSON})
    status, _, _ = target.request("PUT", "/v2/auth/enable", headers=basic(*ROOT))
    assert status == 200
    status, headers, body = target.request("GET", "/v2/keys/x", headers=basic("root", "nope"))
    assert status == 401
    assert headers["x-etcd-index"] == "0"
    assert "www-authenticate" not in headers
    assert body == (b'{"errorCode":110,"message":"The request requires user authentication",'
                    b'"cause":"Insufficient credentials","index":0}\n')


if __name__ == "__main__":
    pytest.main([__file__, "-v"])
