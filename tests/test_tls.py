"""TLS as etcd 3.4 does it: https client and peer URLs, client certificate authentication,
peer TLS in a three-member cluster, Debian's etcdctl v2 over TLS.

The certificates are made here, at test time, with python's `cryptography` (P-256 keys,
SHA-256 signatures: rustls/webpki, Go and OpenSSL 3 all refuse SHA-1). Run this file with
MUSUBI_TEST_TARGET=etcd to prove each expectation against etcd 3.4 itself; the tests that
use musubi-only flags (etcd 2.x's -ca-file) are skipped there."""

import datetime
import http.client
import ipaddress
import json
import os
import ssl
import subprocess
import tempfile
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness import ETCD_BIN, ETCDCTL_BIN, Server, free_port, musubi_bin, target_kind


# --- certificates -------------------------------------------------------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, cert, key):
    with open(path + ".crt", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return path + ".crt", path + ".key"


def _cert(cn, key, issuer_name, issuer_key, ca):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                            critical=True)
    else:
        b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                    ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
             .add_extension(x509.SubjectAlternativeName([
                 x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                 critical=False))
    return b.sign(issuer_key, hashes.SHA256())


class Pki:
    """A CA with a server and a client certificate, and a second CA with its own client."""

    def __init__(self, d):
        self.dir = d
        self._signers = {}
        self.ca = self._ca("ca")
        self.other_ca = self._ca("other-ca")
        self.server = self._leaf("server", "ca")
        self.client = self._leaf("client", "ca")
        self.stranger = self._leaf("stranger", "other-ca")

    def _ca(self, cn):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cn, key, _name(cn), key, ca=True)
        self._signers[cn] = (cert, key)
        return _write(os.path.join(self.dir, cn), cert, key)

    def _leaf(self, cn, ca):
        ca_cert, ca_key = self._signers[ca]
        key = ec.generate_private_key(ec.SECP256R1())
        return _write(os.path.join(self.dir, cn), _cert(cn, key, ca_cert.subject, ca_key, ca=False), key)


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="musubi-tls-")
    yield Pki(d)
    subprocess.run(["rm", "-rf", d])


def context(ca=None, cert=None, verify=True):
    ctx = ssl.create_default_context(cafile=ca)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def https(port, method, path, ctx, body=None, timeout=10.0):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def refused(port, ctx):
    """Whether a request with `ctx` is refused during or right after the handshake (with
    TLS 1.3 the server checks the client's certificate after the client has finished)."""
    try:
        https(port, "GET", "/v2/keys/", ctx, timeout=5.0)
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return True
    return False


# --- servers ------------------------------------------------------------------------------

class TlsServer(Server):
    """A target member whose client and/or peer URLs are https; `ready_ctx` is what the
    readiness probe connects with."""

    def __init__(self, workdir, client_tls, peer_tls, tls_args, ready_ctx, cluster=None, **kw):
        kind = target_kind()
        super().__init__(kind, workdir, **kw)
        self.client_scheme = "https" if client_tls else "http"
        self.peer_scheme = "https" if peer_tls else "http"
        self.tls_args = list(tls_args)
        self.ready_ctx = ready_ctx
        self.cluster = cluster

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.client_scheme, self.client_port)

    @property
    def peer_url(self):
        return "%s://127.0.0.1:%d" % (self.peer_scheme, self.peer_port)

    def argv(self):
        if self.kind == "etcd":
            prog = [self.binary or ETCD_BIN]
        else:
            prog = [self.binary or musubi_bin(), "serve"]
        return prog + [
            "--name", self.name, "--data-dir", self.data_dir,
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.cluster or "%s=%s" % (self.name, self.peer_url),
            "--initial-cluster-state", "new", "--enable-v2"] + self.tls_args

    def wait_ready(self, timeout=30.0, settle=True):
        """Ready once the v2 API answers 200 over this member's scheme (it never waits
        for the index to settle, so `settle` changes nothing)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if not self.alive():
                raise RuntimeError("%s exited with %s; log:\n%s" % (self.kind, self.proc.returncode, self.log_tail()))
            try:
                if self.client_scheme == "https":
                    st, _ = https(self.client_port, "GET", "/v2/keys/", self.ready_ctx, timeout=1.0)
                else:
                    st, _, _ = self.request("GET", "/v2/keys/", timeout=1.0)
                if st == 200:
                    return
                last = st
            except Exception as e:  # noqa: BLE001 - not ready yet
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError("%s not ready (%s); log:\n%s" % (self.kind, last, self.log_tail()))


def start(fleet, client_tls=True, peer_tls=False, tls_args=(), ready_ctx=None, **kw):
    s = TlsServer(fleet.workdir, client_tls, peer_tls, tls_args, ready_ctx, **kw)
    fleet.servers.append(s)
    return s.start()


def serving(pki):
    return ["--cert-file", pki.server[0], "--key-file", pki.server[1]]


def cert_auth(pki):
    return serving(pki) + ["--client-cert-auth", "--trusted-ca-file", pki.ca[0]]


# --- tests --------------------------------------------------------------------------------

def test_https_get_and_put_with_the_ca(fleet, pki):
    s = start(fleet, tls_args=serving(pki), ready_ctx=context(pki.ca[0]))
    ctx = context(pki.ca[0])
    st, body = https(s.client_port, "PUT", "/v2/keys/tls", ctx, body="value=secret")
    assert st == 201 and body["node"]["value"] == "secret"
    st, body = https(s.client_port, "GET", "/v2/keys/tls", ctx)
    assert (st, body["node"]["value"]) == (200, "secret")
    # the server is not who another CA vouches for
    assert refused(s.client_port, context(pki.other_ca[0]))
    # plain HTTP on a TLS port: the connection is closed, as etcd does
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
        s.request("GET", "/v2/keys/", timeout=5.0)


def test_client_cert_auth_refuses_clients_without_a_ca_signed_cert(fleet, pki):
    s = start(fleet, tls_args=cert_auth(pki), ready_ctx=context(pki.ca[0], pki.client))
    assert refused(s.client_port, context(pki.ca[0]))
    assert refused(s.client_port, context(pki.ca[0], pki.stranger))
    ctx = context(pki.ca[0], pki.client)
    assert https(s.client_port, "PUT", "/v2/keys/a", ctx, body="value=1")[0] == 201
    assert https(s.client_port, "GET", "/v2/keys/a", ctx)[1]["node"]["value"] == "1"


def test_a_trusted_ca_alone_requires_client_certs_as_in_etcd(fleet, pki):
    args = serving(pki) + ["--trusted-ca-file", pki.ca[0]]
    s = start(fleet, tls_args=args, ready_ctx=context(pki.ca[0], pki.client))
    assert refused(s.client_port, context(pki.ca[0]))


@pytest.mark.skipif(target_kind() == "etcd", reason="etcd 3.4 dropped etcd 2.x's -ca-file")
def test_the_etcd2_ca_file_flag_turns_on_client_cert_auth(fleet, pki):
    args = ["-cert-file=" + pki.server[0], "-key-file=" + pki.server[1], "-ca-file=" + pki.ca[0]]
    s = start(fleet, tls_args=args, ready_ctx=context(pki.ca[0], pki.client))
    assert refused(s.client_port, context(pki.ca[0]))


def test_etcdctl_v2_over_tls(fleet, pki):
    s = start(fleet, tls_args=cert_auth(pki), ready_ctx=context(pki.ca[0], pki.client))
    env = dict(os.environ, ETCDCTL_API="2")
    base = [ETCDCTL_BIN, "--endpoints", s.url, "--ca-file", pki.ca[0]]
    with_cert = base + ["--cert-file", pki.client[0], "--key-file", pki.client[1]]

    def run(argv):
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)

    p = run(with_cert + ["set", "/ctl", "over-tls"])
    assert (p.returncode, p.stdout) == (0, "over-tls\n"), p.stderr
    p = run(with_cert + ["get", "/ctl"])
    assert (p.returncode, p.stdout) == (0, "over-tls\n"), p.stderr
    p = run(base + ["get", "/ctl"])
    assert p.returncode != 0, p.stdout


def etcdctl3(pki, server, *args, cert=True):
    """etcdctl v3 over TLS (gRPC over HTTP/2 with ALPN h2), with the client cert or not."""
    argv = [ETCDCTL_BIN, "--endpoints", server.url, "--cacert", pki.ca[0], "--dial-timeout", "5s",
            "--command-timeout", "10s"]
    if cert:
        argv += ["--cert", pki.client[0], "--key", pki.client[1]]
    return subprocess.run(argv + list(args), capture_output=True, text=True,
                          env=dict(os.environ, ETCDCTL_API="3"), timeout=30)


def test_etcdctl_v3_over_tls(fleet, pki):
    s = start(fleet, tls_args=cert_auth(pki), ready_ctx=context(pki.ca[0], pki.client))
    p = etcdctl3(pki, s, "put", "ctl3", "over-tls")
    assert (p.returncode, p.stdout) == (0, "OK\n"), p.stderr
    p = etcdctl3(pki, s, "get", "ctl3", "--print-value-only")
    assert (p.returncode, p.stdout) == (0, "over-tls\n"), p.stderr
    assert etcdctl3(pki, s, "get", "ctl3", cert=False).returncode != 0


def test_auto_tls_serves_a_self_signed_certificate(fleet):
    s = start(fleet, tls_args=["--auto-tls"], ready_ctx=context(verify=False))
    assert https(s.client_port, "PUT", "/v2/keys/auto", context(verify=False), body="value=1")[0] == 201
    assert refused(s.client_port, context())  # nobody vouches for it


def test_an_unreadable_cert_file_stops_the_server_naming_it(fleet, pki):
    missing = os.path.join(pki.dir, "missing.crt")
    s = TlsServer(fleet.workdir, True, False, ["--cert-file", missing, "--key-file", pki.server[1]], None)
    fleet.servers.append(s)
    p = subprocess.run(s.argv(), capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert missing in p.stderr, p.stderr


@pytest.mark.parametrize("peer_auth", ["ca", "auto"])
def test_three_members_with_peer_tls_form_and_replicate(fleet, pki, peer_auth):
    if peer_auth == "ca":
        peer_args = ["--peer-cert-file", pki.server[0], "--peer-key-file", pki.server[1],
                     "--peer-trusted-ca-file", pki.ca[0], "--peer-client-cert-auth"]
    else:  # self-signed peer certificates, not verified
        peer_args = ["--peer-auto-tls"]
    names = ["tls%d" % i for i in range(3)]
    ports = [(free_port(), free_port()) for _ in names]
    cluster = ",".join("%s=https://127.0.0.1:%d" % (n, p) for n, (_, p) in zip(names, ports))
    ctx = context(pki.ca[0], pki.client)
    members = []
    for name, (client, peer) in zip(names, ports):
        s = TlsServer(fleet.workdir, True, True, cert_auth(pki) + peer_args, ctx, cluster=cluster,
                      name=name, client_port=client, peer_port=peer)
        fleet.servers.append(s)
        members.append(s.start(wait=False))
    for s in members:
        s.wait_ready()

    deadline = time.time() + 30
    while True:  # the first write waits for a leader
        try:
            if https(members[0].client_port, "PUT", "/v2/keys/replicated", ctx, body="value=yes")[0] == 201:
                break
        except OSError:
            pass
        assert time.time() < deadline, members[0].log_tail()
        time.sleep(0.2)
    for s in members[1:]:
        deadline = time.time() + 10
        while True:
            st, body = https(s.client_port, "GET", "/v2/keys/replicated", ctx)
            if st == 200:
                assert body["node"]["value"] == "yes"
                break
            assert time.time() < deadline, s.log_tail()
            time.sleep(0.1)
    # each member publishes its client URLs through the leader, over the peer TLS channel
    deadline = time.time() + 10
    while True:
        st, body = https(members[1].client_port, "GET", "/v2/members", ctx)
        if all(m.get("clientURLs") for m in body["members"]):
            break
        assert time.time() < deadline, body
        time.sleep(0.1)
    assert sorted(m["peerURLs"][0] for m in body["members"]) == sorted(
        "https://127.0.0.1:%d" % p for _, p in ports)
    assert sorted(m["clientURLs"][0] for m in body["members"]) == sorted(s.url for s in members)
    if peer_auth == "ca":  # the peer port refuses a client without a peer-CA certificate
        assert refused(ports[0][1], context(pki.ca[0]))

    env = dict(os.environ, ETCDCTL_API="2")
    p = subprocess.run([ETCDCTL_BIN, "--endpoints", members[2].url, "--ca-file", pki.ca[0],
                        "--cert-file", pki.client[0], "--key-file", pki.client[1], "member", "list"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 0 and p.stdout.count("isLeader=true") == 1, p.stdout + p.stderr

    # v3 leases granted and kept alive through followers: KeepAlive and TimeToLive reach
    # the leader over the peer TLS channel, as every member's client URL is https.
    p = etcdctl3(pki, members[1], "lease", "grant", "30")
    assert p.returncode == 0, p.stderr
    lease = p.stdout.split()[1]
    for m in members:
        p = etcdctl3(pki, m, "lease", "keep-alive", "--once", lease)
        assert p.returncode == 0 and "TTL(30)" in p.stdout, p.stdout + p.stderr
        p = etcdctl3(pki, m, "lease", "timetolive", lease)
        assert p.returncode == 0 and "granted with TTL(30s)" in p.stdout, p.stdout + p.stderr
