"""A P4Runtime proxy between the switch and the controller: where the nemesis
delays or drops digests and slows table writes.

The controller connects to the proxy's Unix socket as if it were the switch.
Every RPC is forwarded unchanged, except that while a fault is on:

* ``DigestList`` messages on the stream are held for ``digest_delay`` seconds
  (kept in order) or dropped (never reach the controller, never acked);
* ``Write`` requests wait ``write_delay`` seconds before they go to the switch.

The proxy knows nothing of the program: it never decodes a digest.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
from p4.v1 import p4runtime_pb2 as p4r
from p4.v1 import p4runtime_pb2_grpc


@dataclass
class Faults:
    """What the nemesis has switched on right now (read by the proxy on every message)."""

    digest_delay: float = 0.0
    drop_digests: bool = False
    write_delay: float = 0.0


@dataclass
class ProxyCounts:
    digests: int = 0
    digests_delayed: int = 0
    digests_dropped: int = 0
    writes: int = 0
    writes_delayed: int = 0


_END = object()


class _Servicer(p4runtime_pb2_grpc.P4RuntimeServicer):
    def __init__(self, proxy: P4RuntimeProxy) -> None:
        self.proxy = proxy

    def Write(self, request: p4r.WriteRequest, context: grpc.ServicerContext) -> p4r.WriteResponse:
        faults = self.proxy.faults
        self.proxy.counts.writes += 1
        if faults.write_delay > 0:
            self.proxy.counts.writes_delayed += 1
            time.sleep(faults.write_delay)
        return self._unary(self.proxy.stub.Write, request, context)

    def Read(self, request: p4r.ReadRequest, context: grpc.ServicerContext) -> Iterator[p4r.ReadResponse]:
        try:
            yield from self.proxy.stub.Read(request)
        except grpc.RpcError as error:
            _relay(error, context)

    def SetForwardingPipelineConfig(self, request, context):  # type: ignore[no-untyped-def]
        return self._unary(self.proxy.stub.SetForwardingPipelineConfig, request, context)

    def GetForwardingPipelineConfig(self, request, context):  # type: ignore[no-untyped-def]
        return self._unary(self.proxy.stub.GetForwardingPipelineConfig, request, context)

    def Capabilities(self, request, context):  # type: ignore[no-untyped-def]
        return self._unary(self.proxy.stub.Capabilities, request, context)

    @staticmethod
    def _unary(method, request, context):  # type: ignore[no-untyped-def]
        try:
            return method(request)
        except grpc.RpcError as error:
            _relay(error, context)

    def StreamChannel(self, request_iterator, context):  # type: ignore[no-untyped-def]
        upstream_requests: queue.Queue[object] = queue.Queue()

        def requests() -> Iterator[p4r.StreamMessageRequest]:
            while (item := upstream_requests.get()) is not _END:
                yield item  # type: ignore[misc]

        upstream = self.proxy.stub.StreamChannel(requests())
        context.add_callback(upstream.cancel)
        context.add_callback(lambda: upstream_requests.put(_END))

        def pump_requests() -> None:
            try:
                for request in request_iterator:
                    upstream_requests.put(request)
            except grpc.RpcError:
                pass
            upstream_requests.put(_END)

        threading.Thread(target=pump_requests, daemon=True, name="proxy-requests").start()
        outbox = _DelayLine()

        def pump_responses() -> None:
            try:
                for response in upstream:
                    if response.HasField("digest"):
                        self.proxy.counts.digests += 1
                        faults = self.proxy.faults
                        if faults.drop_digests:
                            self.proxy.counts.digests_dropped += 1
                            continue
                        if faults.digest_delay > 0:
                            self.proxy.counts.digests_delayed += 1
                        outbox.put(response, faults.digest_delay)
                    else:
                        outbox.put(response, 0.0)
            except grpc.RpcError:
                pass
            outbox.close()

        threading.Thread(target=pump_responses, daemon=True, name="proxy-responses").start()
        yield from outbox


def _relay(error: grpc.RpcError, context: grpc.ServicerContext) -> None:
    """The switch's error as it sent it, binary details (P4Runtime's per-update errors) included."""
    context.set_trailing_metadata(error.trailing_metadata())  # type: ignore[attr-defined]
    context.abort(error.code(), error.details())  # type: ignore[attr-defined]


class _DelayLine:
    """Messages out in order, each no earlier than its due time."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, object]] = []
        self._order = itertools.count()
        self._last_due = 0.0
        self._ready = threading.Condition()
        self._closed = False

    def put(self, message: object, delay: float) -> None:
        with self._ready:
            self._last_due = max(time.monotonic() + delay, self._last_due)
            heapq.heappush(self._heap, (self._last_due, next(self._order), message))
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()

    def __iter__(self) -> Iterator[object]:
        while True:
            with self._ready:
                while True:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        message = heapq.heappop(self._heap)[2]
                        break
                    if self._closed and not self._heap:
                        return
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._ready.wait(timeout)
            yield message


class P4RuntimeProxy:
    """Serves P4Runtime on ``address`` (a ``unix:`` path) and forwards to ``upstream``."""

    def __init__(self, upstream: str, address: str) -> None:
        self.address = address
        self.faults = Faults()
        self.counts = ProxyCounts()
        self.channel = grpc.insecure_channel(upstream)
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(_Servicer(self), self.server)
        self.server.add_insecure_port(address)
        self.server.start()

    def close(self) -> None:
        self.server.stop(grace=None)
        self.channel.close()
