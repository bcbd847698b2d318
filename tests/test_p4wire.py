"""The hand-written P4Runtime wire format against the generated protobuf classes, both ways."""

from __future__ import annotations

from p4.v1 import p4data_pb2 as p4d
from p4.v1 import p4runtime_pb2 as p4r

from silkcheck import p4wire

BIG = 2**64 - 1


def test_requests_are_the_bytes_protobuf_writes() -> None:
    for payload, metadata in ((b"\x01\x02frame", [(1, b"\x00\x05"), (2, b"\x00\x01")]), (b"", []), (b"x", [(0, b"")])):
        packet = p4r.PacketOut(payload=payload)
        for metadata_id, value in metadata:
            packet.metadata.add(metadata_id=metadata_id, value=value)
        assert p4wire.packet_out(payload, metadata) == p4r.StreamMessageRequest(packet=packet).SerializeToString()
    for digest_id, list_id in ((1, 2), (0, 0), (2**32 - 1, BIG)):
        ack = p4r.DigestListAck(digest_id=digest_id, list_id=list_id)
        assert p4wire.digest_ack(digest_id, list_id) == p4r.StreamMessageRequest(digest_ack=ack).SerializeToString()


def _entity(table_id: int, exact: list, action_id: int | None, params: list) -> p4r.Entity:
    entry = p4r.TableEntry(table_id=table_id)
    for field_id, value in exact:
        entry.match.add(field_id=field_id, exact=p4r.FieldMatch.Exact(value=value))
    if action_id is not None:
        entry.action.action.action_id = action_id
        for param_id, value in params:
            entry.action.action.params.add(param_id=param_id, value=value)
    return p4r.Entity(table_entry=entry)


def test_table_writes_are_the_bytes_protobuf_writes() -> None:
    cases = [
        (33554433, [(1, b"\x00\x00\x01"), (2, b"\x12\x34\x56")], 16777217, [(1, b"\x05")]),
        (33554434, [(1, b"\x14\x00\x00\x01"), (2, b"\x00\x50"), (3, b"\x06")], 16777218,
         [(1, b"\x00"), (2, b"\x01"), (3, b"\x02"), (4, b"\x03"), (5, b"\x00")]),
        (7, [(1, b"\x01")], None, []),
        (9, [(1, b"\x01")], 4, []),
    ]  # fmt: skip
    updates = []
    for table_id, exact, action_id, params in cases:
        entity = _entity(table_id, exact, action_id, params)
        assert p4wire.table_entry(table_id, exact, action_id, params) == entity.SerializeToString()
        updates.append((p4r.Update.INSERT, entity))
    request = p4r.WriteRequest(device_id=0, election_id=p4r.Uint128(high=0, low=1))
    for kind, entity in updates:
        request.updates.add(type=kind, entity=entity)
    encoded = [(kind, entity.SerializeToString()) for kind, entity in updates]
    assert p4wire.write_request(0, (0, 1), encoded) == request.SerializeToString()
    assert p4wire.write_request(3, (BIG, 2), []) == p4r.WriteRequest(
        device_id=3, election_id=p4r.Uint128(high=BIG, low=2)).SerializeToString()


def test_packet_ins_and_digest_lists_read_as_protobuf_reads_them() -> None:
    packet = p4r.PacketIn(payload=b"\xff" * 300)
    packet.metadata.add(metadata_id=1, value=b"\x00\x00\x01\x00")
    packet.metadata.add(metadata_id=2, value=b"\x00\x02")
    (field, value), = p4wire.fields(p4r.StreamMessageResponse(packet=packet).SerializeToString())
    assert field == 2
    assert p4wire.packet_in(value) == p4wire.PacketIn(packet.payload, {1: b"\x00\x00\x01\x00", 2: b"\x00\x02"})
    digest = p4r.DigestList(digest_id=385875968, list_id=2**40, timestamp=123456789)
    samples = [[b"\x00\x01", b"", b"\x07" * 20], [b"\x02"]]
    for sample in samples:
        struct = p4d.P4StructLike()
        for member in sample:
            struct.members.add(bitstring=member)
        digest.data.add(struct=struct)
    (field, value), = p4wire.fields(p4r.StreamMessageResponse(digest=digest).SerializeToString())
    assert field == 3 and p4wire.digest_list(value) == p4wire.DigestList(385875968, 2**40, samples)
