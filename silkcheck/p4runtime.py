"""A small P4Runtime client: the few calls the switch CPU needs, over the p4runtime protobufs.

Writes are single updates (BMv2 rejects atomic batches). One stream carries
arbitration, PacketOut/PacketIn and digests; a reader thread queues what
arrives so the caller can wait for a specific message without sleeping.
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

from silkcheck.targets import TargetError


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


class StreamItem(NamedTuple):
    kind: str  # "packet" | "digest" | "error"
    message: object


class P4RuntimeClient:
    def __init__(self, address: str, device_id: int = 0, election_id: int = 1) -> None:
        self.device_id = device_id
        self.election_id = p4r.Uint128(high=0, low=election_id)
        self.channel = grpc.insecure_channel(address)
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self._requests: queue.Queue[p4r.StreamMessageRequest | None] = queue.Queue()
        self.received: queue.Queue[StreamItem] = queue.Queue()
        self._stream = self.stub.StreamChannel(self._request_iterator())
        self._send(p4r.StreamMessageRequest(
            arbitration=p4r.MasterArbitrationUpdate(device_id=device_id, election_id=self.election_id)))  # fmt: skip
        first = next(self._stream)
        if not first.HasField("arbitration") or first.arbitration.status.code != 0:
            raise P4RuntimeError(f"not primary controller: {first}")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _request_iterator(self) -> Iterator[p4r.StreamMessageRequest]:
        while (request := self._requests.get()) is not None:
            yield request

    def _send(self, request: p4r.StreamMessageRequest) -> None:
        self._requests.put(request)

    def _read(self) -> None:
        try:
            for response in self._stream:
                if response.HasField("packet"):
                    self.received.put(StreamItem("packet", response.packet))
                elif response.HasField("digest"):
                    digest = response.digest
                    self._send(p4r.StreamMessageRequest(
                        digest_ack=p4r.DigestListAck(digest_id=digest.digest_id, list_id=digest.list_id)))  # fmt: skip
                    self.received.put(StreamItem("digest", digest))
                elif response.HasField("error"):
                    self.received.put(StreamItem("error", response.error))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.received.put(StreamItem("error", error))

    def close(self) -> None:
        self._requests.put(None)
        self._stream.cancel()
        self.channel.close()

    # ------------------------------------------------------------ pipeline

    def set_pipeline(self, p4info: P4Info, device_json: bytes) -> None:
        config = p4r.ForwardingPipelineConfig(p4info=p4info.message, p4_device_config=device_json)
        request = p4r.SetForwardingPipelineConfigRequest(
            device_id=self.device_id, election_id=self.election_id, config=config,
            action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
        )  # fmt: skip
        self._call(self.stub.SetForwardingPipelineConfig, request, "set the pipeline")

    def write(self, kind: int, entity: p4r.Entity, what: str) -> None:
        request = p4r.WriteRequest(device_id=self.device_id, election_id=self.election_id)
        request.updates.add(type=kind, entity=entity)
        self._call(self.stub.Write, request, what)

    def _call(self, method: object, request: object, what: str) -> None:
        try:
            method(request)  # type: ignore[operator]
        except grpc.RpcError as error:
            details = error.details() if hasattr(error, "details") else str(error)
            raise P4RuntimeError(f"P4Runtime: cannot {what}: {details}") from None

    def packet_out(self, payload: bytes, metadata: dict[int, bytes]) -> None:
        packet = p4r.PacketOut(payload=payload)
        for metadata_id, value in metadata.items():
            packet.metadata.add(metadata_id=metadata_id, value=value)
        self._send(p4r.StreamMessageRequest(packet=packet))


class Tables:
    """Table writes by name, with keys and action parameters as integers."""

    def __init__(self, client: P4RuntimeClient, info: P4Info) -> None:
        self.client = client
        self.info = info

    def entry(self, table: str, key: dict[str, int], action: str | None = None,
              params: dict[str, int] | None = None) -> p4r.Entity:  # fmt: skip
        t = self.info.tables[table]
        entry = p4r.TableEntry(table_id=t.id)
        for name, value in key.items():
            field_id, bits = t.keys[name]
            entry.match.add(field_id=field_id, exact=p4r.FieldMatch.Exact(value=encode(value, bits)))
        if action is not None:
            a = self.info.actions[action]
            entry.action.action.action_id = a.id
            for name, value in (params or {}).items():
                param_id, bits = a.params[name]
                entry.action.action.params.add(param_id=param_id, value=encode(value, bits))
        return p4r.Entity(table_entry=entry)

    def insert(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None:
        self.client.write(p4r.Update.INSERT, self.entry(table, key, action, params), f"insert into {table} {key}")

    def modify(self, table: str, key: dict[str, int], action: str, params: dict[str, int] | None = None) -> None:
        self.client.write(p4r.Update.MODIFY, self.entry(table, key, action, params), f"modify {table} {key}")

    def delete(self, table: str, key: dict[str, int]) -> None:
        self.client.write(p4r.Update.DELETE, self.entry(table, key), f"delete from {table} {key}")

    def enable_digest(self, name: str) -> None:
        """Every sample at once, one per list, and no duplicate cache (ack timeout 0): the caller
        sees every digest the pipeline sends and applies the learning filter itself."""
        digest = p4r.DigestEntry(digest_id=self.info.digests[name])
        digest.config.max_timeout_ns = 0
        digest.config.max_list_size = 1
        digest.config.ack_timeout_ns = 0
        self.client.write(p4r.Update.INSERT, p4r.Entity(digest_entry=digest), f"configure digest {name}")
