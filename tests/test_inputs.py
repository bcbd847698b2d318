"""The input layer: special files, limits, encodings and strict JSON, each refused with a clear error."""

import os

import pytest

from silkcheck.inputs import (
    InputError,
    JsonLimits,
    ascii_int,
    brief,
    open_binary,
    parse_json,
    read_bytes,
    read_json,
    writable_dir,
    writable_file,
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', "x.json: the top level: duplicate key(s) 'a'"),
        ('{"config": {"digest_bits": 0, "digest_bits": 16}}', "x.json: config: duplicate key(s) 'digest_bits'"),
        ('{"a": {"b": [1, {"c": "\\ud800"}]}}', "x.json: a.b[1].c: a lone surrogate in the string"),
        ('{"pool": ["x", "\\udc00"]}', "x.json: pool[1]: a lone surrogate"),
        ('{"a": [[["\\ud800"]]]}', "x.json: a[0][0][0]: a lone surrogate"),
        ('{"\\ud800": 1}', "x.json: the top level: a lone surrogate in the key"),
        ('"\\ud800"', "x.json: the top level: a lone surrogate"),
        ('{"t": ' + "9" * 5000 + "}", "x.json: t: an integer literal of 5,000 digits (at most 40)"),
        ('{"t": NaN}', "x.json: t: NaN is not a JSON number"),
        ('{"t": -Infinity}', "x.json: t: -Infinity is not a JSON number"),
        ("[" * 1000 + "]" * 1000, "x.json: JSON nested deeper than 32 levels"),
        ('{"a": 1', "x.json: line 1 column 8: invalid JSON"),
    ],
)
def test_strict_json_refuses_what_json_loads_accepts_or_crashes_on(text, message):
    with pytest.raises(InputError) as error:
        parse_json(text, "x.json")
    assert message in str(error.value)


def test_strict_json_accepts_ordinary_json():
    brackets_in_a_string = "[" * 100
    assert parse_json('{"name": "' + brackets_in_a_string + '", "e": [1, {"x": "😀"}]}', "x.json") == {
        "name": brackets_in_a_string, "e": [1, {"x": "😀"}]}  # fmt: skip
    assert parse_json('["\\ud83d\\ude00"]', "x.json") == ["😀"]  # a surrogate pair is one character
    assert parse_json("[[[1]]]", "x.json", JsonLimits(max_depth=3)) == [[[1]]]
    with pytest.raises(InputError, match="nested deeper than 2"):
        parse_json("[[[1]]]", "x.json", JsonLimits(max_depth=2))


def test_invalid_utf8_names_line_and_column(tmp_path):
    path = tmp_path / "t.json"
    path.write_bytes(b'{"a":\n  "\xed\xa0\x80"}')  # an encoded lone surrogate
    with pytest.raises(InputError, match=r"t.json: line 2 column 4: not UTF-8 \(byte\(s\) ed"):
        read_json(path, "trace")


def test_special_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {fifo: "is a FIFO", tmp_path: "is a directory", "/dev/zero": "is a device",
             tmp_path / "nope": "No such file or directory"}  # fmt: skip
    for path, message in cases.items():
        with pytest.raises(InputError, match=message):
            read_bytes(path, "trace", 1000)


def test_size_limit(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 101)
    with pytest.raises(InputError, match="big: the trace is 101 bytes; at most 100 are read"):
        read_bytes(path, "trace", 100)
    assert read_bytes(path, "trace", 101) == b"x" * 101
    with open_binary(path, "capture") as handle:  # no limit: the caller streams
        assert handle.read(3) == b"xxx"


def test_outputs_are_probed(tmp_path):
    assert writable_file(tmp_path / "page.html", "page") == tmp_path / "page.html"
    assert not (tmp_path / "page.html").exists()  # the probe leaves nothing behind
    assert writable_file(os.devnull, "page")
    for path, message in {tmp_path: "is a directory", tmp_path / "no" / "x": "directory .* does not exist"}.items():
        with pytest.raises(InputError, match=message):
            writable_file(path, "page")
    assert writable_dir(tmp_path / "a" / "b", "out").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is not a directory"):
        writable_dir(tmp_path / "file" / "sub", "out")


def test_ascii_int_and_brief():
    assert ascii_int("8080") == 8080 and ascii_int("-3") == -3
    for text in ("٨٠", " 80", "8_0", "", "+", "1" * 41):
        with pytest.raises(ValueError):
            ascii_int(text)
    assert brief("x" * 200_000).endswith("(200,002 characters)") and len(brief("x" * 200_000)) < 100


def test_names_no_file_can_have(tmp_path):
    for name in ("a\ud800.json", "a\x00.json"):
        with pytest.raises(InputError, match="file name holds"):
            read_bytes(tmp_path / name, "trace", 10)
        with pytest.raises(InputError, match="file name holds"):
            writable_file(tmp_path / name, "page")
