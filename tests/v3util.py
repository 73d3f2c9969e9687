"""Helpers for the etcd v3 API tests (test_v3_*.py): the JSON gateway, etcdctl in v3
mode, and masking of the parts of a reply that differ between two servers (cluster and
member IDs, the raft term, server-chosen lease IDs)."""

import base64
import contextlib
import json
import os
import socket
import subprocess
import threading
import time

import requests

from harness import ETCDCTL_BIN


def b64(data):
    """Padded standard base64 of bytes (or of a str's UTF-8), as the gateway wants."""
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text)


def ordered(raw):
    """JSON text parsed with every object kept as a list of (name, value) pairs, so that
    comparing two results also compares the field order."""
    return json.loads(raw, object_pairs_hook=lambda pairs: ("{}", [list(p) for p in pairs]))


class Gateway:
    """HTTP POSTs to a server's /v3/ JSON gateway over one keep-alive connection."""

    def __init__(self, server, prefix="/v3"):
        self.server = server
        self.prefix = prefix
        self.http = requests.Session()

    def raw(self, path, body, timeout=10.0):
        """POST `body` (dict → JSON, str/bytes verbatim) to prefix+path. Returns the
        requests.Response."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        return self.http.post(self.server.url + self.prefix + path, data=body, timeout=timeout,
                              headers={"Content-Type": "application/json"})

    def call(self, path, body=None, ok=True):
        """POST and return the parsed JSON reply; with ok=True a non-200 fails."""
        r = self.raw(path, {} if body is None else body)
        if ok:
            assert r.status_code == 200, "%s %s -> %d %s" % (path, body, r.status_code, r.text)
        return r.json()

    def put(self, key, value, **kw):
        return self.call("/kv/put", dict(key=b64(key), value=b64(value), **kw))

    def get(self, key, **kw):
        return self.call("/kv/range", dict(key=b64(key), **kw))

    def rev(self):
        return int(self.call("/kv/range", {"key": b64("\0")})["header"]["revision"])

    def close(self):
        self.http.close()


@contextlib.contextmanager
def running(work, args_list):
    """Runs `work(stop, *args)` in a thread for each args of `args_list` while the block
    runs; then sets `stop` and waits for every thread."""
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(stop,) + tuple(args)) for args in args_list]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()


def mask_headers(obj):
    """Replace cluster_id, member_id and raft_term in every "header" of a parsed reply
    (in place) by fixed markers; the revision stays."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "header" and isinstance(v, dict):
                for f in ("cluster_id", "member_id", "raft_term"):
                    if f in v:
                        v[f] = "<%s>" % f
            else:
                mask_headers(v)
    elif isinstance(obj, list):
        for v in obj:
            mask_headers(v)
    return obj


class Ctl3:
    """Debian's etcdctl with ETCDCTL_API=3 against one server."""

    def __init__(self, server):
        self.server = server
        self.env = dict(os.environ, ETCDCTL_API="3")
        self.env.pop("ETCDCTL_ENDPOINTS", None)

    def argv(self, *args):
        return [ETCDCTL_BIN, "--endpoints", self.server.url, "--command-timeout", "10s"] + list(args)

    def run(self, *args, stdin=None, timeout=30):
        """(exit code, stdout, stderr)."""
        p = subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def __call__(self, *args, rc=0, stdin=None):
        code, out, err = self.run(*args, stdin=stdin)
        assert code == rc, "etcdctl %s: exit %d (want %d)\nstdout: %r\nstderr: %r" % (
            " ".join(args), code, rc, out, err)
        return out

    def popen(self, *args):
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env, start_new_session=True)


class ChunkedStream:
    """A raw HTTP/1.1 client for the streaming paths (/v3/watch, /v3/lease/keepalive) that
    keeps the chunk boundaries, because etcd3gw parses each HTTP chunk as one JSON object.
    POST `body` to `path` and read the chunked reply chunk by chunk. The request body
    is sent with a Content-Length, and the connection stays open after it (a watch goes
    on until the server or the test ends it)."""

    def __init__(self, port, path, body, timeout=10.0, host="127.0.0.1"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = False
        head = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (path, host, port, len(body))).encode()
        self.sock.sendall(head + body)
        raw = self._until(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunk(self, timeout=None):
        """The next chunk's bytes; b"" for the last chunk. Raises socket.timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            self.closed = True
            return b""
        data = self._exactly(size)
        assert self._exactly(2) == b"\r\n", "chunk not followed by CRLF"
        return data

    def message(self, timeout=None):
        """The next chunk parsed as one JSON object (the chunk must hold exactly one)."""
        data = self.chunk(timeout)
        if not data:
            raise EOFError("stream ended")
        return json.loads(data)

    def messages_until(self, pred, timeout=10.0):
        """Messages until pred(message) is true (that one included)."""
        out = []
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("no message satisfied the condition; got %r" % out)
            m = self.message(timeout=left)
            out.append(m)
            if pred(m):
                return out

    def rest(self, timeout=10.0):
        """The body's remaining bytes until the server closes (for non-chunked replies)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out, self.buf = self.buf, b""
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
