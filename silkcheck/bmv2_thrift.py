"""The one BMv2 Thrift call the harness needs: reset a register to zeros.

BMv2's P4Runtime server cannot write registers, so a pipeline reused for the next trace
would keep the last trace's TransitTable cells. BMv2's own runtime service (Thrift, the
``--thrift-port`` every switch is started with) can: ``bm_register_reset``. The Python
Thrift library is not a dependency of the project, and the call is a handful of bytes, so
it is written here in the Thrift binary protocol directly (strict message header, BMv2's
multiplexed service name ``standard``, unframed on the socket as BMv2's buffered transport
expects), as ``silkcheck.p4wire`` does for protobuf.
"""

from __future__ import annotations

import socket
import struct

from silkcheck.targets import TargetError

VERSION_1 = 0x80010000
CALL, REPLY, EXCEPTION = 1, 2, 3
T_STOP, T_I32, T_STRING, T_STRUCT = 0, 8, 11, 12
TIMEOUT_S = 10.0


class ThriftError(TargetError):
    """BMv2's Thrift server refused a call or went away."""


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!i", len(data)) + data


def register_reset_call(seqid: int, context: int, register: str) -> bytes:
    """The message ``Standard.bm_register_reset(cxt_id, register_name)``."""
    head = struct.pack("!I", VERSION_1 | CALL) + _string("standard:bm_register_reset") + struct.pack("!i", seqid)
    args = struct.pack("!bhi", T_I32, 1, context) + struct.pack("!bh", T_STRING, 2) + _string(register)
    return head + args + bytes([T_STOP])


class ThriftClient:
    """One connection to a switch's Thrift server, calls answered in order."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.address = (host, port)
        self._socket: socket.socket | None = None
        self._seqid = 0

    def _connection(self) -> socket.socket:
        if self._socket is None:
            try:
                self._socket = socket.create_connection(self.address, timeout=TIMEOUT_S)
            except OSError as error:
                raise ThriftError(f"BMv2 Thrift server at {self.address[0]}:{self.address[1]}: {error}") from None
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def register_reset(self, register: str, context: int = 0) -> None:
        """Every cell of ``register`` (its full name, as in the BMv2 JSON) back to zero."""
        self._seqid += 1
        connection = self._connection()
        try:
            connection.sendall(register_reset_call(self._seqid, context, register))
            reply = _Reader(connection)
            kind, name = reply.message_head()
            if kind == EXCEPTION:
                raise ThriftError(f"BMv2 Thrift {name}({register!r}): the server raised an application exception")
            if kind != REPLY:
                raise ThriftError(f"BMv2 Thrift {name}({register!r}): message type {kind}, expected a reply")
            if reply.struct_has_fields():  # the result's only field is ``ouch``, the InvalidRegisterOperation
                raise ThriftError(f"BMv2 Thrift: cannot reset register {register!r} (no such register)")
        except OSError as error:
            self.close()
            raise ThriftError(f"BMv2 Thrift: cannot reset register {register!r}: {error}") from None


class _Reader:
    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection

    def take(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.connection.recv(size - len(data))
            if not chunk:
                raise ThriftError("BMv2 Thrift: the server closed the connection mid-reply")
            data += chunk
        return data

    def i32(self) -> int:
        return struct.unpack("!i", self.take(4))[0]

    def string(self) -> str:
        return self.take(self.i32()).decode()

    def message_head(self) -> tuple[int, str]:
        version = self.i32() & 0xFFFFFFFF
        if version & 0xFFFF0000 != VERSION_1:
            raise ThriftError(f"BMv2 Thrift: reply header {version:#x} is not strict binary protocol")
        name = self.string()
        self.i32()  # seqid: one call at a time on this connection
        return version & 0xFF, name

    def struct_has_fields(self) -> bool:
        """Read a struct whole; whether it had any field."""
        seen = False
        while (kind := self.take(1)[0]) != T_STOP:
            self.take(2)  # field id
            seen = True
            self.skip(kind)
        return seen

    def skip(self, kind: int) -> None:
        if kind == T_I32:
            self.take(4)
        elif kind == T_STRING:
            self.take(self.i32())
        elif kind == T_STRUCT:
            self.struct_has_fields()
        else:
            raise ThriftError(f"BMv2 Thrift: cannot read a field of Thrift type {kind}")
