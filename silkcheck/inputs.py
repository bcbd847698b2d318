"""The one way silkcheck reads what a user gives it: files with limits, JSON parsed strictly.

Every command opens a user's file through this module, so that every command
refuses the same things with the same kind of message, before anything is
read into memory:

* special files: a directory, a FIFO (reading one blocks forever), a device
  (``/dev/zero`` never ends), a file the user cannot read;
* files over a size limit set for their purpose;
* bytes that are not UTF-8 (including encoded lone surrogates) where text is
  expected;
* JSON that is nested too deeply, has integer literals too long to be any
  field of a trace, duplicate keys in one object (the standard library keeps
  the last one silently), lone surrogate escapes, or ``NaN``/``Infinity``.

Numbers in text (ports, option values) are ASCII digits only: ``str.isdigit``
and ``int()`` also take other scripts' digits, which no protocol field means.

Every error is an ``InputError`` whose message names the file (and, for JSON,
the path of the offending value) and never echoes more than a short prefix of
a value (``brief``). Outputs are checked the same way before long work starts
(``writable_file``, ``writable_dir``).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MiB = 1 << 20
TRACE_MAX_BYTES = 256 * MiB
"""A JSON trace is loaded whole: 256 MiB of JSON is several GB of Python objects."""
BRIEF_CHARS = 60


class InputError(ValueError):
    """Input a user gave that silkcheck cannot use: the message says which file or option, where, and why."""


def brief(value: object, limit: int = BRIEF_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length said, for error messages."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def ascii_int(text: str) -> int:
    """A decimal integer of ASCII digits with an optional sign (``int()`` also takes ``'٨٠'``, ``' 8_0 '``)."""
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{brief(text)} is not a decimal integer")
    if len(digits) > 40:
        raise ValueError(f"{brief(text)} has {len(digits):,} digits; no value here has more than 40")
    return int(text)


# ---------------------------------------------------------------- files


def _describe_kind(mode: int) -> str | None:
    """What a file that is not a regular file is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    return "is not a regular file"


def _file_name(path: str | Path, what: str) -> Path:
    """``path`` if the operating system can take it as a file name."""
    text = str(path)
    if "\x00" in text:
        raise InputError(f"{brief(text)}: the {what}'s file name holds a NUL character")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise InputError(f"{brief(text)}: the {what}'s file name holds a character no file name can have") from None
    return Path(path)


def _os_reason(error: OSError) -> str:
    return error.strerror or errno.errorcode.get(error.errno or 0, str(error))


def open_binary(path: str | Path, what: str, max_bytes: int | None = None) -> BinaryIO:
    """``path`` opened for reading as ``what`` (e.g. "trace", "capture"): a regular, readable file of at
    most ``max_bytes`` bytes (None: any size, for a caller that streams it)."""
    path = _file_name(path, what)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what}: {_os_reason(error)}") from None
    try:
        info = os.fstat(fd)
        kind = _describe_kind(info.st_mode)
        if kind is not None:
            raise InputError(f"{path}: cannot read the {what}: it {kind}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise InputError(f"{path}: the {what} is {info.st_size:,} bytes; at most {max_bytes:,} are read")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The whole of a regular file of at most ``max_bytes`` bytes (re-checked while reading: it may grow)."""
    with open_binary(path, what, max_bytes) as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as error:
            raise InputError(f"{path}: cannot read the {what}: {_os_reason(error)}") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: the {what} is over {max_bytes:,} bytes, the most that is read")
    return data


def decode_utf8(data: bytes, source: str) -> str:
    """Strict UTF-8 (which also refuses encoded surrogates); the error says the line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        bad = data[error.start : error.end].hex(" ")
        raise InputError(f"{source}: line {line} column {column}: not UTF-8 (byte(s) {bad}: {error.reason})") from None


def read_text(path: str | Path, what: str, max_bytes: int) -> str:
    return decode_utf8(read_bytes(path, what, max_bytes), str(path))


def _probe_write(path: Path) -> str | None:
    """Why ``path`` (a file to create or replace) cannot be written, or None. The probe opens it for
    appending (removing it again if it did not exist): permission bits say nothing for root, nor on a
    read-only or special file system."""
    if path.exists() and str(path) != os.devnull:
        kind = _describe_kind(path.stat().st_mode)
        if kind is not None:
            return f"it {kind}"
    elif not path.exists():
        parent = path.parent
        if not parent.exists():
            return f"its directory {parent} does not exist"
        if not parent.is_dir():
            return f"{parent} is not a directory"
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as error:
        return _os_reason(error)
    if not existed:
        path.unlink(missing_ok=True)
    return None


def writable_file(path: str | Path, what: str) -> Path:
    """``path`` if a file can be written there (checked before the long work that produces it)."""
    path = _file_name(path, what)
    why = _probe_write(path)
    if why is not None:
        raise InputError(f"{path}: cannot write the {what} there: {why}")
    return path


def writable_dir(path: str | Path, what: str) -> Path:
    """``path`` if it is, or can be made, a writable directory; it is created (with its parents)."""
    path = _file_name(path, what)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise InputError(f"{path}: cannot use it as the {what} directory: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write the {what} there: {existing} is not writable")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{path}: cannot create the {what} directory: {_os_reason(error)}") from None
    return path


def readable_dir(path: str | Path, what: str) -> Path:
    path = _file_name(path, what)
    if not path.is_dir():
        raise InputError(f"{path}: the {what} is not a directory" if path.exists() else f"{path}: no such {what}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(f"{path}: cannot read the {what}: permission denied")
    return path


# ---------------------------------------------------------------- strict JSON


@dataclass(frozen=True)
class JsonLimits:
    max_depth: int = 32
    """Objects and arrays inside each other; a trace needs 4."""
    max_int_digits: int = 40
    """Digits of one integer literal; a trace's widest field (a time, < 2**62) has 19."""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _Object(dict):  # type: ignore[type-arg]
    """A decoded JSON object that knows how deeply it nests. Arrays get no decoder hook, so the
    object holding an array counts the array's depth; depth is found while decoding, not by a
    second pass over the text."""

    __slots__ = ("depth",)


class _Duplicated(_Object):
    __slots__ = ("duplicates",)


def _depth_of(value: Any) -> int:
    if type(value) is _Object or type(value) is _Duplicated:
        return value.depth  # type: ignore[no-any-return]
    if type(value) is list:
        deepest = 0
        for item in value:
            if type(item) in (_Object, _Duplicated, list):
                deepest = max(deepest, _depth_of(item))
        return 1 + deepest
    return 0


class _Flagged:
    """A value the JSON decoder could not refuse on the spot (its hooks do not know where they are):
    it is left in the tree and found, with its path, once decoding ends."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _where(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the top level"


def _find_flagged(value: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(value, _Flagged):
        yield path, value.why
    elif isinstance(value, _Duplicated):
        yield path, f"duplicate key(s) {', '.join(brief(k) for k in value.duplicates)} (each key may appear once)"
    elif isinstance(value, str) and _has_lone_surrogate(value):
        yield path, f"a lone surrogate in the string {brief(value)} (not a Unicode character)"
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _has_lone_surrogate(key):
                yield path, f"a lone surrogate in the key {brief(key)} (not a Unicode character)"
            yield from _find_flagged(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _find_flagged(item, [*path, index])


def parse_json(text: str, source: str, limits: JsonLimits = JsonLimits()) -> Any:
    """``text`` as JSON, refusing what ``json.loads`` accepts silently or fails on with a traceback
    (see the module docstring); the error names ``source`` and the path of the offending value."""
    flagged = False

    def pairs(items: list[tuple[str, Any]]) -> _Object:
        nonlocal flagged
        obj = _Object(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            obj = _Duplicated(items)
            obj.duplicates = sorted({k for k, _ in items if k in seen or seen.add(k)})  # type: ignore[func-returns-value]
            flagged = True
        deepest = 0
        for _, value in items:
            if type(value) in (_Object, _Duplicated, list):
                deepest = max(deepest, _depth_of(value))
        obj.depth = 1 + deepest
        return obj

    def integer(literal: str) -> Any:
        nonlocal flagged
        if len(literal) - literal.startswith("-") > limits.max_int_digits:
            flagged = True
            return _Flagged(f"an integer literal of {len(literal.lstrip('-')):,} digits "
                            f"(at most {limits.max_int_digits})")  # fmt: skip
        return int(literal)

    def constant(name: str) -> Any:
        nonlocal flagged
        flagged = True
        return _Flagged(f"{name} is not a JSON number")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=integer, parse_constant=constant)
    except json.JSONDecodeError as error:
        raise InputError(f"{source}: line {error.lineno} column {error.colno}: invalid JSON: {error.msg}") from None
    except RecursionError:  # deeper than the interpreter's stack: far deeper than any limit
        raise InputError(f"{source}: JSON nested deeper than {limits.max_depth} levels") from None
    if _depth_of(data) > limits.max_depth:
        raise InputError(f"{source}: JSON nested deeper than {limits.max_depth} levels")
    # Lone surrogates come from \\uD800-style escapes or from text that was never UTF-8: both rare,
    # so the tree is searched for them only when the text could hold one.
    if flagged or _has_lone_surrogate(text) or _SURROGATE_ESCAPE.search(text):
        for path, why in _find_flagged(data, []):
            raise InputError(f"{source}: {_where(path)}: {why}")
    return data


def read_json(path: str | Path, what: str, max_bytes: int = TRACE_MAX_BYTES, limits: JsonLimits = JsonLimits()) -> Any:
    """A JSON file, read through ``read_text`` and parsed by ``parse_json``."""
    return parse_json(read_text(path, what, max_bytes), str(path), limits)
