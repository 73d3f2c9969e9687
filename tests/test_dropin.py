"""Drop-in details real etcd clients and tools rely on (issue 15, item 7), each run against
musubi and against etcd 3.4 (MUSUBI_TEST_TARGET=etcd) wherever etcd does the same:

- a new member answers no client request before it has a leader and has published its
  client URLs (its listener is bound, but requests wait, as etcd's do);
- a leader stopped with SIGTERM hands leadership over, so writes go on at once;
- DELETE /v2/members/<id> of a member removed before answers 410 Gone, etcd's body;
- --discovery with a discovery service's http://host/<token> URL, --discovery-fallback,
  --discovery-proxy;
- one client port serving http:// and https:// alike, unix:// client URLs, and a second
  --listen-peer-urls.
"""

import errno
import json
import socket
import time

import pytest

from harness import free_port, raw_request, target_kind, wait_for


def leader_id(server):
    st, _, body = server.request("GET", "/v2/members/leader")
    return json.loads(body)["id"] if st == 200 else None


def member_ids(server):
    st, _, body = server.request("GET", "/v2/members")
    assert st == 200, body
    return {m["name"]: m["id"] for m in json.loads(body)["members"]}


def first_answer(server, path, timeout=30.0):
    """The first reply to `path`, polled from before the process binds its port: refused
    connections are retried at once; a connected request waits as long as it must."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return raw_request(server.client_port, "GET", path, timeout=timeout)
        except OSError as e:
            if getattr(e, "errno", None) != errno.ECONNREFUSED and not isinstance(
                    e, ConnectionResetError):
                raise
        time.sleep(0.001)
    raise AssertionError("no answer on %s" % path)


@pytest.mark.parametrize("path", ["/v2/machines", "/v2/members"])
def test_a_new_member_answers_only_once_published(fleet, path):
    names = ["n1", "n2", "n3"]
    peers = [free_port() for _ in names]
    initial = ",".join("n%d=http://127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(peers))
    members = [fleet.target(name=n, peer_port=p, extra_args=["--initial-cluster", initial])
               for n, p in zip(names, peers)]
    first = members[0]
    first.start(wait=False)
    # The others start a little later: the first member must wait for them, not answer.
    time.sleep(0.3)
    for m in members[1:]:
        m.start(wait=False)
    st, _, body = first_answer(first, path)
    assert st == 200, body
    if path == "/v2/machines":
        assert first.url in body.decode().split(", "), body
    else:
        listed = {m["name"]: m for m in json.loads(body)["members"]}
        assert listed["n1"]["clientURLs"] == [first.url], body


def test_a_leader_stopped_with_sigterm_hands_over_first(fleet):
    # A long election timeout: without a hand-over the others would wait it out.
    servers = fleet.cluster(3, extra_args=["--heartbeat-interval", "100",
                                           "--election-timeout", "3000"])
    ids = member_ids(servers[0])
    lead = wait_for("a leader", lambda: leader_id(servers[0]))
    leader = next(s for s in servers if ids[s.name] == lead)
    rest = [s for s in servers if s is not leader]
    st, _, _ = rest[0].request("PUT", "/v2/keys/before", body="value=1")
    assert st in (200, 201)
    started = time.time()
    leader.stop()
    st, _, body = rest[0].request("PUT", "/v2/keys/after", body="value=2", timeout=10)
    took = time.time() - started
    assert st in (200, 201), body
    assert took < 2.0, "the write waited %.1fs: no hand-over" % took
    new = leader_id(rest[1])
    assert new not in (None, lead)


def test_deleting_a_removed_member_is_410_gone(fleet):
    a, b, c = fleet.cluster(3)
    gone = member_ids(a)["n3"]
    # etcd refuses a removal until every member has been connected for a few seconds.
    wait_for("n3 removed", lambda: a.request("DELETE", "/v2/members/" + gone)[0] in (204, 410))
    wait_for("n3 gone from the list", lambda: "n3" not in member_ids(a))
    for s in (a, b):
        st, h, body = s.request("DELETE", "/v2/members/" + gone)
        assert st == 410, body
        assert json.loads(body) == {"message": "Member permanently removed: " + gone}
        assert h["content-type"] == "application/json"
    st, _, body = a.request("DELETE", "/v2/members/1234")
    assert st == 404, body
    assert json.loads(body) == {"message": "No such member: 1234"}
    st, _, body = a.request("PUT", "/v2/members/1234", body=json.dumps(
        {"peerURLs": ["http://127.0.0.1:1"]}), headers={"Content-Type": "application/json"})
    assert st == 404, body
    assert json.loads(body) == {"message": "No such member: 1234"}


class DiscoveryService:
    """A discovery service as discovery.etcd.io is one: v2 keys under `/<token>/...`, kept
    in a v2 store (`backend`) below /_etcd/registry. It doubles as an HTTP proxy (a request
    line with an absolute URL), counting what reached it that way."""

    def __init__(self, backend, tls=None):
        import http.server
        import ssl
        import threading
        service = self
        self.proxied = 0
        self.backend = backend

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def relay(self):
                path = self.path
                if path.startswith("http://"):
                    service.proxied += 1
                    path = "/" + path.split("/", 3)[3]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {"Content-Type": self.headers["Content-Type"]} if body else {}
                st, h, data = raw_request(service.backend.client_port, self.command,
                                          "/v2/keys/_etcd/registry" + path, body, headers,
                                          timeout=120)
                self.send_response(st)
                for name in ("content-type", "x-etcd-index"):
                    if name in h:
                        self.send_header(name, h[name])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.scheme = "http"
        if tls:  # (certificate, key) files
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def discovery(fleet):
    service = DiscoveryService(fleet.etcd().start())
    yield service
    service.close()


def discovered(fleet, name, url, *extra, env=None):
    return fleet.spawn(target_kind(), name=name, style="listen-only", env=env,
                        extra_args=["--name", name, "--enable-v2", "--discovery", url] + list(extra))


@pytest.mark.parametrize("through_proxy", [False, True])
def test_discovery_through_a_token_url(fleet, discovery, through_proxy):
    token = "3f1e0c2a" + ("p" if through_proxy else "d")
    st, _, body = discovery.backend.request(
        "PUT", "/v2/keys/_etcd/registry/%s/_config/size" % token, body="value=3")
    assert st == 201, body
    url = "http://127.0.0.1:%d/%s" % (discovery.port, token)
    extra = ["--discovery-proxy", "http://127.0.0.1:%d" % discovery.port] if through_proxy else []
    nodes = [discovered(fleet, "d%d" % i, url, *extra) for i in range(3)]
    for n in nodes:
        n.start(wait=False)
    for n in nodes:
        n.wait_ready(timeout=60)
    assert sorted(member_ids(nodes[0])) == ["d0", "d1", "d2"]
    assert (discovery.proxied > 0) == through_proxy


def test_discovery_over_https(fleet, tmp_path):
    from test_tls import Pki
    pki = Pki(str(tmp_path))
    discovery = DiscoveryService(fleet.etcd().start(), tls=pki.server)
    try:
        token = "5e1f"
        discovery.backend.request("PUT", "/v2/keys/_etcd/registry/%s/_config/size" % token,
                                  body="value=2")
        url = "https://127.0.0.1:%d/%s" % (discovery.port, token)
        # Both etcd (Go) and musubi take the system CA bundle from SSL_CERT_FILE.
        env = {"SSL_CERT_FILE": pki.ca[0]}
        nodes = [discovered(fleet, "s%d" % i, url, env=env) for i in range(2)]
        for n in nodes:
            n.start(wait=False)
        for n in nodes:
            n.wait_ready(timeout=60)
        assert sorted(member_ids(nodes[0])) == ["s0", "s1"]
    finally:
        discovery.close()


@pytest.mark.parametrize("fallback", ["exit", "proxy"])
def test_a_full_discovery_cluster_is_refused(fleet, discovery, fallback):
    token = "full" + fallback
    discovery.backend.request("PUT", "/v2/keys/_etcd/registry/%s/_config/size" % token,
                              body="value=1")
    url = "http://127.0.0.1:%d/%s" % (discovery.port, token)
    discovered(fleet, "first", url).start()
    late = discovered(fleet, "late", url, "--discovery-fallback", fallback)
    late.start(wait=False)
    if fallback == "proxy" and target_kind() == "etcd":
        # etcd 3.4 runs as a v2 proxy; musubi has none and refuses instead (docs/flags.md).
        return
    assert late.proc.wait(30) != 0
    log = late.log_tail()
    assert "discovery: cluster is full" in log, log
    if target_kind() == "musubi" and fallback == "proxy":
        assert "no proxy mode" in log, log


def test_a_bad_discovery_fallback_is_refused(fleet):
    bad = discovered(fleet, "bad", "http://127.0.0.1:1/x", "--discovery-fallback", "stay")
    bad.start(wait=False)
    assert bad.proc.wait(30) != 0
    assert "stay" in bad.log_tail(1 << 20)


def custom(fleet, name, *args):
    """A target server started with exactly `args` after the program (and --data-dir)."""
    s = fleet.spawn(target_kind(), name=name)
    prog = s.argv()[:2] if target_kind() == "musubi" else s.argv()[:1]
    s.argv = lambda: prog + ["--name", name, "--data-dir", s.data_dir, "--enable-v2"] + list(args)
    return s


def test_one_port_serves_http_and_https(fleet):
    import ssl
    port = free_port()
    both = "http://127.0.0.1:%d,https://127.0.0.1:%d" % (port, port)
    s = custom(fleet, "both", "--listen-client-urls", both, "--advertise-client-urls", both,
               "--auto-tls")
    s.client_port = port
    s.start()
    st, _, body = s.request("PUT", "/v2/keys/k", body="value=plain")
    assert st == 201, body
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", "/v2/keys/k")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["node"]["value"] == "plain"
    conn.close()


def test_a_unix_client_url_is_served(fleet, tmp_path, monkeypatch):
    import http.client
    # etcd takes unix://host:port, the socket file "host:port" in its working directory.
    monkeypatch.chdir(tmp_path)
    sock_port = free_port()
    sock = str(tmp_path / ("localhost:%d" % sock_port))
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    s = custom(fleet, "unix", "--listen-client-urls",
               "%s,unix://localhost:%d" % (url, sock_port), "--advertise-client-urls", url)
    s.client_port = port
    s.start()

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(sock)

    conn = UnixConnection("localhost")
    conn.request("PUT", "/v2/keys/u", body="value=over-unix",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    assert resp.status == 201, resp.read()
    resp.read()
    conn.close()
    st, _, body = s.request("GET", "/v2/keys/u")
    assert json.loads(body)["node"]["value"] == "over-unix"


def test_a_second_listen_peer_url_is_served(fleet):
    # n1 listens on two peer URLs and tells the cluster only the second: n2 reaches it there.
    c1, c2, pa, pb, p2 = (free_port() for _ in range(5))
    u = "http://127.0.0.1:%d"
    initial = "n1=%s,n2=%s" % (u % pb, u % p2)
    n1 = custom(fleet, "n1", "--listen-client-urls", u % c1, "--advertise-client-urls", u % c1,
                "--listen-peer-urls", "%s,%s" % (u % pa, u % pb),
                "--initial-advertise-peer-urls", u % pb, "--initial-cluster", initial)
    n2 = custom(fleet, "n2", "--listen-client-urls", u % c2, "--advertise-client-urls", u % c2,
                "--listen-peer-urls", u % p2, "--initial-advertise-peer-urls", u % p2,
                "--initial-cluster", initial)
    n1.client_port, n2.client_port = c1, c2
    n1.start(wait=False)
    n2.start(wait=False)
    n1.wait_ready()
    n2.wait_ready()
    st, _, _ = n1.request("PUT", "/v2/keys/k", body="value=both")
    assert st == 201
    wait_for("replicated", lambda: json.loads(n2.request("GET", "/v2/keys/k")[2])
             .get("node", {}).get("value") == "both")
