"""A small P4Runtime client: the few calls the switch CPU needs, over the p4runtime protobufs.

Writes are single updates (BMv2 rejects atomic batches). The stream carries
arbitration only (the BMv2 target's packets go by the switch's packet port,
``silkcheck.nanomsg``); a reader thread keeps it drained and keeps the errors
it reports, which a refused call then names.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import grpc
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2 as p4r
from p4.v1 import p4runtime_pb2_grpc

from silkcheck import p4wire
from silkcheck.targets import TargetError

RESPONSE_ERROR = 6
"""StreamMessageResponse's fields read here (p4runtime.proto)."""


class P4RuntimeError(TargetError):
    """The switch refused a request or went away."""


def encode(value: int, bits: int) -> bytes:
    if not 0 <= value < 1 << bits:
        raise P4RuntimeError(f"value {value} does not fit in {bits} bits")
    return value.to_bytes((bits + 7) // 8, "big")


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big")


class TableInfo(NamedTuple):
    id: int
    keys: dict[str, tuple[int, int]]
    """key name -> (field id, bit width)"""
    size: int


class ActionInfo(NamedTuple):
    id: int
    params: dict[str, tuple[int, int]]


class P4Info:
    """Names to ids and widths, read from a P4Info text file."""

    def __init__(self, path: Path) -> None:
        self.message = text_format.Parse(path.read_text(), p4info_pb2.P4Info())
        self.tables = {
            t.preamble.name.split(".")[-1]: TableInfo(
                t.preamble.id, {m.name: (m.id, m.bitwidth) for m in t.match_fields}, t.size
            )
            for t in self.message.tables
        }
        self.actions = {
            a.preamble.name.split(".")[-1]: ActionInfo(a.preamble.id, {p.name: (p.id, p.bitwidth) for p in a.params})
            for a in self.message.actions
        }
        self.digests = {d.preamble.name: d.preamble.id for d in self.message.digests}
        self.registers = {r.preamble.name.split(".")[-1]: r for r in self.message.registers}
        self.packet_metadata = {
            m.preamble.name: {md.name: (md.id, md.bitwidth) for md in m.metadata}
            for m in self.message.controller_packet_metadata
        }


def pipeline_request(p4info: P4Info, device_json: bytes, device_id: int = 0, election_id: int = 1) -> bytes:
    """The encoded request that pushes a pipeline (kept by callers that push one often: encoding
    the P4Info costs more than BMv2 takes to load it), from the primary client of ``election_id``."""
    config = p4r.ForwardingPipelineConfig(p4info=p4info.message, p4_device_config=device_json)
    return p4r.SetForwardingPipelineConfigRequest(
        device_id=device_id, election_id=p4r.Uint128(high=0, low=election_id), config=config,
        action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
    ).SerializeToString()  # fmt: skip


class P4RuntimeClient:
    def __init__(self, address: str, device_id: int = 0, election_id: int = 1) -> None:
        self.device_id = device_id
        self.election_id = p4r.Uint128(high=0, low=election_id)
        self.channel = grpc.insecure_channel(address)
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        # The writes carry raw bytes (``silkcheck.p4wire``): no protobuf per table write.
        self._write = self.channel.unary_unary("/p4.v1.P4Runtime/Write")
        self._set_pipeline = self.channel.unary_unary("/p4.v1.P4Runtime/SetForwardingPipelineConfig")
        self._requests: queue.Queue[bytes | None] = queue.Queue()
        self.stream_errors: list[str] = []
        self._stream = self.channel.stream_stream("/p4.v1.P4Runtime/StreamChannel")(self._request_iterator())
        arbitration = p4r.MasterArbitrationUpdate(device_id=device_id, election_id=self.election_id)
        self._send(p4r.StreamMessageRequest(arbitration=arbitration).SerializeToString())
        first = p4r.StreamMessageResponse.FromString(next(self._stream))
        if not first.HasField("arbitration") or first.arbitration.status.code != 0:
            raise P4RuntimeError(f"not primary controller: {first}")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _request_iterator(self) -> Iterator[bytes]:
        while (request := self._requests.get()) is not None:
            yield request

    def _send(self, request: bytes) -> None:
        self._requests.put(request)

    def _read(self) -> None:
        try:
            for response in self._stream:
                if any(field == RESPONSE_ERROR for field, _ in p4wire.fields(response)):  # a oneof: one field
                    self.stream_errors.append(str(p4r.StreamMessageResponse.FromString(response).error))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.stream_errors.append(str(error))

    def close(self) -> None:
        self._requests.put(None)
        self._stream.cancel()
        self.channel.close()

    # ------------------------------------------------------------ pipeline

    def set_pipeline(self, p4info: P4Info, device_json: bytes) -> None:
        self.push_pipeline(pipeline_request(p4info, device_json, self.device_id, self.election_id.low))

    def push_pipeline(self, request: bytes) -> None:
        """Send an encoded SetForwardingPipelineConfigRequest (``pipeline_request``)."""
        self._call(self._set_pipeline, request, "set the pipeline")

    def write_all(self, updates: list[tuple[int, bytes]], what: str) -> None:
        """One WriteRequest of ``updates`` (encoded entities; never atomic: BMv2 refuses that).
        BMv2's server applies a request's updates one by one in the order given, which is what
        the callers rely on."""
        request = p4wire.write_request(self.device_id, (self.election_id.high, self.election_id.low), updates)
        self._call(self._write, request, what)

    def _call(self, method: object, request: object, what: str) -> None:
        try:
            method(request)  # type: ignore[operator]
        except grpc.RpcError as error:
            details = error.details() if hasattr(error, "details") else str(error)
            stream = f" (the stream reported: {'; '.join(self.stream_errors)})" if self.stream_errors else ""
            raise P4RuntimeError(f"P4Runtime: cannot {what}: {details}{stream}") from None


class Tables:
    """Table writes by name, with keys and action parameters as integers. Writes are held until
    ``flush`` sends them, in order, as one request: the caller flushes before any packet that
    must see them, so a run of writes with no packet between them costs one round trip.

    The entries written and not deleted are tracked (``live``), so that ``clear`` can empty
    every table again: a pipeline reused for the next run starts as a fresh one."""

    def __init__(self, client: P4RuntimeClient, info: P4Info) -> None:
        self.client = client
        self.info = info
        self.pending: list[tuple[int, bytes]] = []
        self.described: list[str] = []
        self.live: dict[bytes, str] = {}
        """The key-only entity of each entry inserted and not deleted -> its description."""

    def _queue(self, kind: int, entity: bytes, what: str) -> None:
        self.pending.append((kind, entity))
        self.described.append(what)

    def flush(self) -> None:
        if not self.pending:
            return
        updates, described = self.pending, self.described
        self.pending, self.described = [], []
        what = described[0] if len(described) == 1 else f"apply {len(described)} writes ({'; '.join(described)})"
        self.client.write_all(updates, what)

    def entry(self, table: str, key: dict[str, int], action: str | None = None,
              params: dict[str, int] | None = None) -> bytes:  # fmt: skip
        """The encoded Entity of a table entry with exact matches."""
        table_id, exact = self._match(table, key)
        return self._entity(table_id, exact, action, params)

    def _match(self, table: str, key: dict[str, int]) -> tuple[int, tuple[tuple[int, bytes], ...]]:
        t = self.info.tables[table]
        return t.id, tuple([(t.keys[name][0], encode(value, t.keys[name][1])) for name, value in key.items()])

    def _entity(self, table_id: int, exact: tuple[tuple[int, bytes], ...], action: str | None,
                params: dict[str, int] | None) -> bytes:  # fmt: skip
        if action is None:
            return p4wire.table_entry(table_id, exact)
        a = self.info.actions[action]
        values = tuple([(a.params[name][0], encode(value, a.params[name][1]))
                        for name, value in (params or {}).items()])  # fmt: skip
        return p4wire.table_entry(table_id, exact, a.id, values)

    def insert(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None:
        table_id, exact = self._match(table, key)
        self._queue(p4r.Update.INSERT, self._entity(table_id, exact, action, params), f"insert into {table} {key}")
        self.live[p4wire.table_entry(table_id, exact)] = f"{table} {key}"

    def modify(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None:
        self._queue(p4r.Update.MODIFY, self.entry(table, key, action, params), f"modify {table} {key}")

    def delete(self, table: str, key: dict[str, int]) -> None:
        entity = self.entry(table, key)
        self._queue(p4r.Update.DELETE, entity, f"delete from {table} {key}")
        self.live.pop(entity, None)

    def clear(self) -> None:
        """Queue the deletion of every entry written and not deleted since this object was made
        (entries do not refer to each other, so any order does); the next ``flush`` sends it."""
        for entity, what in self.live.items():
            self._queue(p4r.Update.DELETE, entity, f"delete from {what}")
        self.live.clear()
