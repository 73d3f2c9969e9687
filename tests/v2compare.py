"""Side-by-side comparison of etcd v2 HTTP responses (reference etcd 3.4 vs the target).

A request is a `Req` whose indexes are *relative*: `Idx(n)` stands for "the side's base
index + n", so one request renders differently for each side (etcd's first write is
index 4 on a fresh server, musubi's may be another). Responses are normalised by
subtracting the side's base from every index (modifiedIndex, createdIndex, error index,
X-Etcd-Index, 20-digit in-order key names, index numbers inside `cause`), replacing
`expiration` by a marker, and sorting children of unsorted listings. `ttl` may differ
by 1.
"""

import json
import re
from urllib.parse import quote

IDX_HEADERS = ("x-etcd-index",)
PRESENCE_HEADERS = ("x-etcd-index", "x-raft-index", "x-raft-term", "x-etcd-cluster-id")
VALUE_HEADERS = ("content-type", "allow", "location")


class Idx:
    """A relative store index, rendered as base + rel."""

    def __init__(self, rel):
        self.rel = rel

    def render(self, base):
        return str(base + self.rel)

    def __repr__(self):
        return "Idx(%d)" % self.rel


class KeyIdx:
    """A path segment that is an in-order key name: zero-padded (base + rel)."""

    def __init__(self, rel):
        self.rel = rel

    def render(self, base):
        return "%020d" % (base + self.rel)

    def __repr__(self):
        return "{I:%d}" % self.rel


def _render_val(v, base):
    if isinstance(v, (Idx, KeyIdx)):
        return v.render(base)
    return v


class Req:
    """method, path (list of pieces under /v2/keys, str pieces are sent verbatim,
    KeyIdx pieces are rendered), query and form as lists of (name, value) pairs."""

    def __init__(self, method, path, query=(), form=None, note="", raw_query=None, raw_body=None):
        self.raw_query = raw_query    # sent verbatim after "?" (malformed encodings)
        self.raw_body = raw_body      # sent verbatim as a form body
        self.method = method
        self.path = path if isinstance(path, list) else [path]
        self.query = list(query)
        self.form = None if form is None else list(form)
        self.note = note

    def params(self):
        return dict(self.query + (self.form or []))

    def render(self, base):
        path = "/v2/keys" + "".join(_render_val(p, base) for p in self.path)
        if self.query:
            path += "?" + "&".join(
                quote(k, safe="") + "=" + quote(_render_val(v, base), safe="")
                for k, v in self.query)
        if self.raw_query is not None:
            path += ("&" if "?" in path else "?") + self.raw_query
        body = self.raw_body
        if self.form is not None:
            body = "&".join(quote(k, safe="") + "=" + quote(_render_val(v, base), safe="")
                            for k, v in self.form)
        return self.method, path, body

    def describe(self, base=None):
        if base is None:
            parts = "".join(repr(p) if not isinstance(p, str) else p for p in self.path)
            q = "&".join("%s=%r" % (k, v) for k, v in self.query)
            f = "&".join("%s=%r" % (k, v) for k, v in (self.form or []))
            extra = (" raw query: %r" % self.raw_query if self.raw_query is not None else "") + \
                (" raw body: %r" % self.raw_body if self.raw_body is not None else "")
            return "%s /v2/keys%s%s%s%s" % (self.method, parts, ("?" + q) if q else "",
                                           (" form: " + f) if self.form is not None else "", extra)
        m, p, b = self.render(base)
        return "%s %s%s" % (m, p, (" body: %s" % b) if b is not None else "")


_KEYIDX = re.compile(r"(?<=/)(\d{20})(?=/|$)")


def rebase_key(s, base):
    return _KEYIDX.sub(lambda m: "{I:%d}" % (int(m.group(1)) - base), s)


def rebase_cause(cause, code, req, base):
    if code == 101:
        sent = req.params().get("prevIndex")
        sent = sent.render(base) if isinstance(sent, Idx) else sent

        def pair(m):
            left, right = m.group(1), m.group(2)
            if sent is not None and left == sent and right.isdigit():
                return "[%s != %s]" % ("I:%d" % (int(left) - base), "I:%d" % (int(right) - base))
            return m.group(0)
        return re.sub(r"\[([^\]]*?) != ([^\]]*?)\]", pair, cause)
    if code == 401:
        return re.sub(r"\[(\d+)/(\d+)\]",
                      lambda m: "[I:%d/I:%d]" % (int(m.group(1)) - base, int(m.group(2)) - base),
                      cause)
    return rebase_key(cause, base)


def rebase_body(obj, base, req, sorted_listing):
    def node(n):
        if not isinstance(n, dict):
            return n
        out = {}
        for k, v in n.items():
            if k in ("modifiedIndex", "createdIndex") and isinstance(v, int):
                out[k] = v - base
            elif k == "key" and isinstance(v, str):
                out[k] = rebase_key(v, base)
            elif k == "expiration" and isinstance(v, str):
                out[k] = "<expiration>"
            elif k == "nodes" and isinstance(v, list):
                kids = [node(c) for c in v]
                if not sorted_listing:
                    kids.sort(key=lambda c: json.dumps(c, sort_keys=True) if isinstance(c, dict) else "")
                out[k] = kids
            else:
                out[k] = v
        return out

    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        if k in ("node", "prevNode"):
            out[k] = node(v)
        elif k == "index" and isinstance(v, int):
            out[k] = v - base if v != 0 else 0   # request errors carry index 0
        elif k == "cause" and isinstance(v, str):
            out[k] = rebase_cause(v, obj.get("errorCode"), req, base)
        else:
            out[k] = v
    return out


def is_sorted_request(req):
    v = req.params().get("sorted")
    return v in ("1", "t", "T", "true", "TRUE", "True")


class Normalized:
    def __init__(self, status, headers, body, raw_headers, raw_body, timeout=False):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw_headers = raw_headers
        self.raw_body = raw_body
        self.timeout = timeout

    def show(self):
        if self.timeout:
            return "  (no response: timed out)"
        lines = ["  status %s" % self.status]
        for k in sorted(self.raw_headers):
            if k in PRESENCE_HEADERS or k in VALUE_HEADERS:
                lines.append("  %s: %s" % (k, self.raw_headers[k]))
        body = self.raw_body
        if len(body) > 1500:
            body = body[:1500] + b"...(%d bytes)" % len(self.raw_body)
        lines.append("  body: %r" % body)
        return "\n".join(lines)


def normalize(status, headers, body, base, req):
    hdrs = {}
    for h in PRESENCE_HEADERS:
        hdrs["has " + h] = h in headers
    for h in VALUE_HEADERS:
        if h in headers:
            v = headers[h]
            if h == "allow":
                v = ",".join(sorted(x.strip() for x in v.split(",")))
            hdrs[h] = v
    if body:
        hdrs["body ends with newline"] = body.endswith(b"\n")
    if "x-etcd-index" in headers:
        try:
            v = int(headers["x-etcd-index"])
            hdrs["x-etcd-index (rebased)"] = v - base if v != 0 else 0
        except ValueError:
            hdrs["x-etcd-index (rebased)"] = headers["x-etcd-index"]
    parsed = None
    if body:
        try:
            parsed = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            parsed = None
    if parsed is not None:
        nb = ("json", rebase_body(parsed, base, req, is_sorted_request(req)))
    else:
        nb = ("raw", body)
    return Normalized(status, hdrs, nb, headers, body)


def diff_values(a, b, path="body"):
    """Differences between two normalised JSON values; `ttl` may differ by 1."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a.keys()) != list(b.keys()):
            out.append("%s: fields %s != %s" % (path, list(a.keys()), list(b.keys())))
        for k in a:
            if k in b:
                if k == "ttl" and isinstance(a[k], int) and isinstance(b[k], int) \
                        and not isinstance(a[k], bool) and abs(a[k] - b[k]) <= 1:
                    continue
                out += diff_values(a[k], b[k], "%s.%s" % (path, k))
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append("%s: %d items != %d items" % (path, len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_values(x, y, "%s[%d]" % (path, i))
    elif type(a) is not type(b) or a != b:
        out.append("%s: %r != %r" % (path, a, b))
    return out


def diff(ref, tgt):
    """List of human-readable differences between two Normalized responses."""
    if ref.timeout or tgt.timeout:
        if ref.timeout != tgt.timeout:
            return ["timeout: reference %s, target %s" % (ref.timeout, tgt.timeout)]
        return []
    out = []
    if ref.status != tgt.status:
        out.append("status: %s != %s" % (ref.status, tgt.status))
    for k in sorted(set(ref.headers) | set(tgt.headers)):
        if ref.headers.get(k) != tgt.headers.get(k):
            out.append("header %s: %r != %r" % (k, ref.headers.get(k), tgt.headers.get(k)))
    if ref.body[0] != tgt.body[0]:
        out.append("body kind: %s != %s" % (ref.body[0], tgt.body[0]))
    elif ref.body[0] == "raw":
        if ref.body[1] != tgt.body[1]:
            out.append("body: %r != %r" % (ref.body[1][:300], tgt.body[1][:300]))
    else:
        out += diff_values(ref.body[1], tgt.body[1])
    return out
