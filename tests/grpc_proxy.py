"""A real gRPC proxy in front of a server's client port, for tests of what a client does
when an answer is lost on the way back: it forwards every unary call as opaque bytes (with
the caller's metadata) and, for the calls a test names, holds the server's answer past the
client's deadline and then drops it. The server has applied such a call; the client only
knows that it timed out."""

import threading
import time
from concurrent import futures

import grpc

# Metadata that belongs to one hop of gRPC, not to the call.
HOP_KEYS = ("user-agent", "grpc-", ":", "te", "content-type")


class AnswerLosingProxy:
    """Listens on 127.0.0.1:`port`, forwards to `upstream` (host:port). `lose(method, n)`
    says whether the answer to the n-th call (from 1) of `method` (a full path such as
    /etcdserverpb.KV/Txn) is lost; a lost answer is held `hold` seconds, then dropped."""

    def __init__(self, upstream, lose, hold=3.0):
        self.lose, self.hold = lose, hold
        self.calls = []
        self._lock = threading.Lock()
        self._upstream = grpc.insecure_channel(upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers((_Forward(self),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def forward(self, method, request, context):
        with self._lock:
            self.calls.append(method)
            n = self.calls.count(method)
        metadata = [(k, v) for k, v in context.invocation_metadata()
                    if not k.startswith(HOP_KEYS)]
        try:
            answer = self._upstream.unary_unary(method)(request, metadata=metadata, timeout=30)
        except grpc.RpcError as e:
            context.abort(e.code(), e.details())
        if self.lose(method, n):
            time.sleep(self.hold)
            context.abort(grpc.StatusCode.UNAVAILABLE, "the proxy lost this answer")
        return answer

    def close(self):
        self._server.stop(0)
        self._upstream.close()


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, proxy):
        self.proxy = proxy

    def service(self, details):
        method = details.method
        # No deserializers: requests and answers pass as bytes.
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self.proxy.forward(method, request, context))
