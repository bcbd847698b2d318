"""Frames in and out of a BMv2 switch over its nanomsg packet port (``--packet-in``).

A switch started with ``--packet-in ipc://PATH`` takes the frames of every port from one
nanomsg PAIR socket and sends every port's output back on it, each message a small header
(type, port, length: native ints, BMv2 ``dev_mgr_packet_in.cpp``) and the frame. The BMv2
target sends its packets this way rather than as P4Runtime PacketOuts: one C call each way
per packet, with no gRPC stream and no Python threads between the caller and the switch,
which halves a packet's round trip and doubles what one switch answers per second
(measured, issue #14). libnanomsg comes with BMv2 (it links it); it is loaded with ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import time
from functools import cache

from silkcheck.targets import TargetError

AF_SP, NN_PAIR = 1, 16
NN_SOL_SOCKET, NN_SNDTIMEO, NN_RCVTIMEO = 0, 4, 5
ETIMEDOUT, EAGAIN = 110, 11
MSG_PACKET_IN, MSG_PACKET_OUT = 3, 4
"""BMv2's message types: a frame into the switch (on a port), a frame out of it."""
HEADER = struct.Struct("=iii")
SLICE_MS = 100
"""A receive waits in slices this long, so that Ctrl-C is seen between them."""
SEND_TIMEOUT_MS = 10_000
MAX_FRAME = 9216


class NanomsgError(TargetError):
    """The switch's packet socket failed, or libnanomsg is not there."""


@cache
def _library() -> ctypes.CDLL:
    name = ctypes.util.find_library("nanomsg") or "libnanomsg.so.5"
    try:
        lib = ctypes.CDLL(name)
    except OSError as error:
        raise NanomsgError(f"libnanomsg (BMv2's packet port library) cannot be loaded: {error}") from None
    lib.nn_strerror.restype = ctypes.c_char_p
    return lib


class PacketSocket:
    """The client end of a switch's packet port."""

    def __init__(self, address: str) -> None:
        self.lib = _library()
        self.address = address
        self.socket = self.lib.nn_socket(AF_SP, NN_PAIR)
        if self.socket < 0:
            self._fail("open a socket")
        self._option(NN_SNDTIMEO, SEND_TIMEOUT_MS)
        self._option(NN_RCVTIMEO, SLICE_MS)
        if self.lib.nn_connect(self.socket, address.encode()) < 0:
            self._fail(f"connect to {address}")
        self.buffer = ctypes.create_string_buffer(HEADER.size + MAX_FRAME)
        self.tagged = 0
        """Tags handed out so far (``tags``)."""

    def tags(self, count: int) -> int:
        """The first of ``count`` consecutive 32-bit tags no earlier call gave (after 2**32 - 1 of them,
        days of packets, they start again at 1)."""
        if self.tagged + count >= 1 << 32:
            self.tagged = 0
        first, self.tagged = self.tagged + 1, self.tagged + count
        return first

    def _option(self, option: int, value: int) -> None:
        number = ctypes.c_int(value)
        if self.lib.nn_setsockopt(self.socket, NN_SOL_SOCKET, option, ctypes.byref(number), ctypes.sizeof(number)) < 0:
            self._fail(f"set socket option {option}")

    def _fail(self, what: str) -> None:
        errno = self.lib.nn_errno()
        raise NanomsgError(f"BMv2 packet port {self.address}: cannot {what}: {self.lib.nn_strerror(errno).decode()}")

    def send(self, port: int, frame: bytes) -> None:
        """``frame`` into the switch as if it arrived on ``port``."""
        message = HEADER.pack(MSG_PACKET_IN, port, len(frame)) + frame
        if self.lib.nn_send(self.socket, message, len(message), 0) != len(message):
            self._fail(f"send a frame on port {port}")

    def receive(self, deadline: float) -> tuple[int, bytes] | None:
        """The next frame the switch sent and the port it left by, or None at ``deadline`` (``time.monotonic``)."""
        while True:
            size = self.lib.nn_recv(self.socket, self.buffer, len(self.buffer), 0)
            if size >= 0:
                break
            if self.lib.nn_errno() not in (ETIMEDOUT, EAGAIN):
                self._fail("receive")
            if time.monotonic() >= deadline:
                return None
        if not HEADER.size <= size <= len(self.buffer):
            raise NanomsgError(f"BMv2 packet port {self.address}: a message of {size} bytes (from {HEADER.size} to "
                               f"{len(self.buffer)} expected)")  # fmt: skip
        message = ctypes.string_at(self.buffer, size)
        kind, port, length = HEADER.unpack_from(message)
        if kind != MSG_PACKET_OUT or length != size - HEADER.size:
            raise NanomsgError(f"BMv2 packet port {self.address}: message type {kind} of {length} bytes in a "
                               f"{size}-byte message, expected a frame out (type {MSG_PACKET_OUT})")  # fmt: skip
        return port, message[HEADER.size :]

    def close(self) -> None:
        if self.socket >= 0:
            self.lib.nn_close(self.socket)
            self.socket = -1
