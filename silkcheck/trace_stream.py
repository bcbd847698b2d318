"""A trace file read as a stream: the header first, then the events one at a time.

For traces too large to load whole (``inputs.TRACE_MAX_BYTES``). The file is read in
chunks and the top-level object scanned value by value; every value (the header's
fields, each event) goes through the input layer's strict JSON parser and the trace
loader's own checks (``trace.loads`` for the header, ``trace.EventReader`` for each
event), so a streamed trace is accepted or refused exactly as a loaded one would be.
One thing more is asked of it: ``events`` must be its last field (``silkcheck``
writes it so), since an event cannot be judged before the config that comes after it.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from silkcheck import inputs
from silkcheck import trace as tr

CHUNK = 1 << 20
WHITESPACE = " \t\n\r"


class _Scanner:
    """JSON text read chunk by chunk, one value at a time."""

    def __init__(self, file: BinaryIO, source: str) -> None:
        self.file = file
        self.source = source
        self.utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self.text = ""
        self.at = 0
        self.eof = False
        self.read_bytes = 0
        self.json = json.JSONDecoder()

    def fail(self, message: str) -> tr.TraceError:
        return tr.TraceError(f"{self.source}: {message}")

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.file.read(CHUNK)
        try:
            decoded = self.utf8.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            raise self.fail(f"byte {self.read_bytes + error.start:,}: not UTF-8 ({error.reason})") from None
        self.read_bytes += len(chunk)
        self.eof = not chunk
        self.text = self.text[self.at :] + decoded
        self.at = 0
        return bool(chunk)

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the file)."""
        while True:
            while self.at < len(self.text) and self.text[self.at] in WHITESPACE:
                self.at += 1
            if self.at < len(self.text) or not self._more():
                return self.text[self.at : self.at + 1]

    def expect(self, char: str, where: str) -> None:
        found = self.peek()
        if found != char:
            raise self.fail(f"{where}: expected {char!r}, found {found or 'the end of the file'!r}")
        self.at += 1

    def value(self, where: str) -> str:
        """The text of the next JSON value (a value cut by a chunk's end is read on)."""
        self.peek()
        while True:
            try:
                _, end = self.json.raw_decode(self.text, self.at)
            except json.JSONDecodeError as error:
                if self._more():
                    continue
                raise self.fail(f"{where}: invalid JSON: {error.msg}") from None
            if end == len(self.text) and self._more():
                continue  # a number may go on in the next chunk
            span = self.text[self.at : end]
            self.at = end
            return span


def load_stream(path: str | Path) -> tuple[tr.Trace, Iterator[tr.TraceEvent]]:
    """The trace's header (a ``Trace`` with no events), and its events as they are read."""
    source = str(path)
    file = inputs.open_binary(path, "trace")  # any size: it is read a chunk at a time
    scanner = _Scanner(file, source)
    try:
        scanner.expect("{", "trace")
        fields: dict[str, str] = {}
        while True:
            key = json.loads(scanner.value("trace (a field name)"))
            if not isinstance(key, str):
                raise scanner.fail(f"trace: a field name must be a string, got {inputs.brief(key)}")
            if key in fields:
                raise scanner.fail(f"trace: field {inputs.brief(key)} is given twice")
            scanner.expect(":", f"trace.{key}")
            if key == "events":
                break
            fields[key] = scanner.value(f"trace.{key}")
            if scanner.peek() != ",":
                raise scanner.fail("trace.events: missing required field (read as a stream, it comes last)")
            scanner.at += 1
        header_text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + ', "events": []}'
        header = tr.loads(header_text, source)
        version = json.loads(fields["version"])  # checked by the loader
    except BaseException:
        file.close()
        raise
    return header, _events(file, scanner, header, version)


def _events(file: BinaryIO, scanner: _Scanner, header: tr.Trace, version: int) -> Iterator[tr.TraceEvent]:
    source = scanner.source
    reader = tr.EventReader(source, header.config, header.vips, version)
    with file:
        scanner.expect("[", "trace.events")
        index = 0
        if scanner.peek() == "]":
            scanner.at += 1
        else:
            while True:
                where = f"events[{index}]"
                try:
                    item = inputs.parse_json(scanner.value(where), f"{source}: {where}")
                except inputs.InputError as error:
                    raise tr.TraceError(str(error)) from None
                yield reader.read(index, item)
                index += 1
                separator = scanner.peek()
                scanner.at += 1
                if separator == "]":
                    break
                if separator != ",":
                    found = separator or "the end"
                    raise scanner.fail(f"{where}: expected ',' or ']' after the event, found {found!r}")
        if scanner.peek() != "}":
            raise scanner.fail("trace: a field follows the events; read as a stream, events must come last")
        scanner.at += 1
        if scanner.peek():
            raise scanner.fail("trace: text after the trace's closing brace")
