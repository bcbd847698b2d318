"""The hand-written P4Runtime wire format against the generated protobuf classes, both ways."""

from __future__ import annotations

from p4.v1 import p4runtime_pb2 as p4r

from silkcheck import p4wire

BIG = 2**64 - 1


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
        assert p4wire.table_entry(table_id, tuple(exact), action_id, tuple(params)) == entity.SerializeToString()
        updates.append((p4r.Update.INSERT, entity))
    request = p4r.WriteRequest(device_id=0, election_id=p4r.Uint128(high=0, low=1))
    for kind, entity in updates:
        request.updates.add(type=kind, entity=entity)
    encoded = [(kind, entity.SerializeToString()) for kind, entity in updates]
    assert p4wire.write_request(0, (0, 1), encoded) == request.SerializeToString()
    assert p4wire.write_request(3, (BIG, 2), []) == p4r.WriteRequest(
        device_id=3, election_id=p4r.Uint128(high=BIG, low=2)).SerializeToString()


def test_stream_responses_read_as_protobuf_reads_them() -> None:
    error = p4r.StreamError(canonical_code=3, message="bad packet", packet_out=p4r.PacketOutError())
    arbitration = p4r.MasterArbitrationUpdate(device_id=2**40, election_id=p4r.Uint128(high=1, low=BIG))
    for response in (p4r.StreamMessageResponse(error=error), p4r.StreamMessageResponse(arbitration=arbitration)):
        (field, value), = p4wire.fields(response.SerializeToString())
        kind = response.WhichOneof("update")
        assert field == response.DESCRIPTOR.fields_by_name[kind].number
        assert value == getattr(response, kind).SerializeToString()
    nested = dict(p4wire.fields(arbitration.SerializeToString()))
    assert nested[1] == 2**40 and dict(p4wire.fields(nested[3])) == {1: 1, 2: BIG}
