"""Argument types for the command line: every option is checked by its parser, before any work.

Each factory returns an ``argparse`` type: a function from the option's text to
its value that raises ``ArgumentTypeError`` with a short reason, so a bad
option ends in argparse's usage message and exit code 2. Numbers are ASCII
(``silkcheck.inputs.ascii_int``) and finite; outputs are probed for
writability here, so a long run cannot fail at its end for want of a place
to write.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from silkcheck import inputs

T = TypeVar("T")
Parse = Callable[[str], T]

SEED_MAX = (1 << 63) - 1
"""numpy's generators take seeds in [0, 2**63)."""
DAY_S = 24 * 3600.0


def _named(parse: Parse[T], name: str) -> Parse[T]:
    parse.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return parse


def _checked(parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except (ValueError, inputs.InputError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def integer(low: int, high: int) -> Parse[int]:
    """An ASCII decimal integer in [low, high]."""

    def parse(text: str) -> int:
        value = _checked(inputs.ascii_int, text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range [{low:,}, {high:,}]")
        return value

    return _named(parse, "integer")


def count(high: int, low: int = 1) -> Parse[int]:
    """How many of something: an integer in [low (1 by default), high]."""
    return integer(low, high)


SEED = integer(0, SEED_MAX)


def real(low: float, high: float, low_open: bool = False) -> Parse[float]:
    """A finite decimal number in [low, high] ((low, high] if ``low_open``); no NaN, no infinity."""

    def parse(text: str) -> float:
        if not text.isascii() or "_" in text:  # float() also takes '٣' and '1_0'
            raise argparse.ArgumentTypeError(f"{inputs.brief(text)} is not a number")
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{inputs.brief(text)} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{inputs.brief(text)} is not a finite number")
        if value < low or value > high or (low_open and value == low):
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"{value:g} is out of range {bracket}{low:g}, {high:g}]")
        return value

    return _named(parse, "number")


def duration(high_s: float = 7 * DAY_S) -> Parse[float]:
    """A positive time: 30s, 10m, 1h or plain seconds (the fuzz campaign's budget syntax)."""
    from fuzz.campaign import parse_budget

    def parse(text: str) -> float:
        if not text.isascii():
            raise argparse.ArgumentTypeError(f"{inputs.brief(text)}: expected a number with an optional unit s, m, h")
        seconds = _checked(parse_budget, text)
        if not 0 < seconds <= high_s:
            raise argparse.ArgumentTypeError(f"{text.strip()} is not in (0 s, {high_s:g} s]: nothing would run")
        return seconds

    return _named(parse, "duration")


def choice(names: Callable[[], Sequence[str]], what: str) -> Parse[str]:
    """One of ``names()`` (looked up when parsing, so heavy catalogues load only when asked for)."""

    def parse(text: str) -> str:
        known = names()
        if text not in known:
            raise argparse.ArgumentTypeError(f"unknown {what} {inputs.brief(text)}; known: {', '.join(known)}")
        return text

    return _named(parse, what)


def validated(check: Callable[[str], object], what: str) -> Parse[str]:
    """The text itself, once ``check`` (raising ValueError) accepts it: for values parsed again later."""

    def parse(text: str) -> str:
        _checked(check, text)
        return text

    return _named(parse, what)


def input_file(what: str) -> Parse[str]:
    """A regular file that can be read (no directory, FIFO or device); kept as text."""

    def parse(text: str) -> str:
        _checked(lambda t: inputs.open_binary(t, what).close(), text)
        return text

    return _named(parse, what)


def input_dir(what: str) -> Parse[str]:
    return _named(lambda text: str(_checked(lambda t: inputs.readable_dir(t, what), text)), what)


def output_file(what: str) -> Parse[str]:
    """A file that can be written (probed now, before the work that produces it)."""
    return _named(lambda text: str(_checked(lambda t: inputs.writable_file(t, what), text)), what)


def output_dir(what: str) -> Parse[Path]:
    """A directory that is, or can be made, writable (created now)."""
    return _named(lambda text: _checked(lambda t: inputs.writable_dir(t, what), text), what)
