"""Structural checks over real files: hostile safetensors headers and JSON are reported,
never raised, with bounded memory; pickle-based files are never opened."""

from __future__ import annotations

import json
import os
import random
import struct
import tracemalloc
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from modeldepot.health.structure import (
    MAX_HEADER_BYTES,
    MAX_JSON_BYTES,
    MAX_PROBLEMS,
    check_json,
    check_safetensors,
    check_structure,
)
from modeldepot.testing.generators import make_safetensors


def raw_safetensors(header: bytes | Mapping[str, object], data: bytes = b"") -> bytes:
    """A safetensors file with exactly this header (no validation) and data area."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def tensor(dtype: str, shape: Sequence[object], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}


def write(tmp_path: Path, data: bytes, name: str = "model.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def problems_of(tmp_path: Path, data: bytes) -> tuple[str, ...]:
    report = check_safetensors(write(tmp_path, data))
    assert report.ok is (not report.problems)
    return report.problems


# --- valid files --------------------------------------------------------------------------


def test_files_written_by_the_generator_are_sound(tmp_path: Path) -> None:
    data = make_safetensors(
        {
            "a": ("F16", (4, 8)),
            "b": ("BF16", (3,)),
            "scalar": ("F32", ()),
            "empty": ("I8", (0, 5)),
            "flags": ("BOOL", (7,)),
            "fp8": ("F8_E4M3", (2, 2)),
        },
        metadata={"format": "pt"},
    )
    report = check_safetensors(write(tmp_path, data))
    assert report.ok
    assert report.problems == ()


def test_header_order_does_not_matter_only_offsets(tmp_path: Path) -> None:
    header = {"second": tensor("U8", [2], 4, 6), "first": tensor("I32", [1], 0, 4)}
    assert problems_of(tmp_path, raw_safetensors(header, b"\0" * 6)) == ()


def test_an_empty_header_with_no_data_is_sound(tmp_path: Path) -> None:
    assert problems_of(tmp_path, raw_safetensors(b"{}")) == ()


def test_sub_byte_dtypes_follow_the_spec_rule(tmp_path: Path) -> None:
    """F4 and F6: elements x bits must fill whole bytes (safetensors MisalignedSlice)."""
    good = {"f4": tensor("F4", [2, 3], 0, 3), "f6": tensor("F6_E2M3", [4], 3, 6)}
    assert problems_of(tmp_path, raw_safetensors(good, b"\0" * 6)) == ()

    odd = {"f4": tensor("F4", [3], 0, 2)}
    (problem,) = problems_of(tmp_path, raw_safetensors(odd, b"\0" * 2))
    assert "'f4'" in problem
    assert "whole bytes" in problem


def test_every_dtype_of_the_format_is_known(tmp_path: Path) -> None:
    names = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16"]
    names += ["BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"]
    widths = {"16": 2, "32": 4, "64": 8}
    header: dict[str, object] = {}
    offset = 0
    for name in names:
        width = next((w for suffix, w in widths.items() if name.endswith(suffix)), 1)
        header[name] = tensor(name, [3], offset, offset + 3 * width)
        offset += 3 * width
    assert problems_of(tmp_path, raw_safetensors(header, b"\0" * offset)) == ()


# --- the header length ----------------------------------------------------------------------


def test_a_header_claiming_1_gb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    path = write(tmp_path, struct.pack("<Q", 10**9) + b"{" + b" " * 1015)
    assert path.stat().st_size == 1024
    tracemalloc.start()
    try:
        report = check_safetensors(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not report.ok
    assert report.problems == (
        "header length 1000000000 exceeds the limit of 100000000 bytes (100 MB)",
    )
    assert peak < 256 * 1024


def test_the_100_mb_limit_is_decimal(tmp_path: Path) -> None:
    """One byte over 100,000,000 is refused before anything is read (sparse file)."""
    path = tmp_path / "big.safetensors"
    with path.open("wb") as out:
        out.write(struct.pack("<Q", MAX_HEADER_BYTES + 1))
        out.truncate(MAX_HEADER_BYTES + 100)
    (problem,) = check_safetensors(path).problems
    assert "exceeds the limit of 100000000 bytes" in problem


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "file is 0 bytes, too short"),
        (b"\x02\x00\x00", "file is 3 bytes, too short"),
        (struct.pack("<Q", 0), "header length 0 is below the minimum of 2 bytes"),
        (struct.pack("<Q", 1) + b"{", "header length 1 is below the minimum"),
        (struct.pack("<Q", 500) + b"{}", "header length 500 runs past the end of the 10-byte"),
        (struct.pack("<Q", 2**64 - 1) + b"{}", "exceeds the limit"),
    ],
)
def test_header_lengths_that_cannot_be_right(tmp_path: Path, data: bytes, expected: str) -> None:
    (problem,) = problems_of(tmp_path, data)
    assert expected in problem


# --- header content -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"\xff\xfe{}", "header is not valid UTF-8"),
        (b"{not json", "header is not valid JSON"),
        (b'{"a": NaN}', "header is not valid JSON"),
        (b'{"a": -Infinity}', "header is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", "header is not valid JSON"),
        (b"[1, 2]", "header is a JSON list, not an object"),
        (b'"{}"', "header is a JSON str, not an object"),
    ],
)
def test_headers_that_are_not_a_json_object(tmp_path: Path, header: bytes, expected: str) -> None:
    (problem,) = problems_of(tmp_path, raw_safetensors(header))
    assert expected in problem


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    header = (
        b'{"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},'
        b' "w": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}'
    )
    problems = problems_of(tmp_path, raw_safetensors(header, b"\0" * 4))
    assert "duplicate key 'w' in header" in problems


def test_duplicate_keys_inside_a_tensor_entry_are_refused(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "U8", "dtype": "F64", "shape": [2], "data_offsets": [0, 2]}}'
    problems = problems_of(tmp_path, raw_safetensors(header, b"\0" * 2))
    assert "duplicate key 'dtype' in header" in problems


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"format": 1}, "__metadata__ value of 'format' is 1, not a string"),
        (["pt"], "__metadata__ is ['pt'], not a map of strings"),
        ({"nested": {"a": "b"}}, "__metadata__ value of 'nested'"),
    ],
)
def test_metadata_must_map_strings_to_strings(
    tmp_path: Path, metadata: object, expected: str
) -> None:
    header = {"__metadata__": metadata, "w": tensor("U8", [1], 0, 1)}
    (problem,) = problems_of(tmp_path, raw_safetensors(header, b"\0"))
    assert expected in problem


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (tensor("F128", [2], 0, 2), "tensor 'w': unknown dtype 'F128'"),
        (tensor("f16", [1], 0, 2), "tensor 'w': unknown dtype 'f16'"),
        ({"dtype": 7, "shape": [2], "data_offsets": [0, 2]}, "unknown dtype 7"),
        ({"shape": [2], "data_offsets": [0, 2]}, "unknown dtype None"),
        (tensor("U8", [-2], 0, 2), "tensor 'w': shape [-2] is not a list of non-negative integers"),
        (tensor("U8", [2.0], 0, 2), "shape [2.0] is not a list"),
        (tensor("U8", [True, 2], 0, 2), "shape [True, 2] is not a list"),
        ({"dtype": "U8", "shape": "2", "data_offsets": [0, 2]}, "shape '2' is not a list"),
        ({"dtype": "U8", "shape": [2]}, "tensor 'w': data_offsets None is not a pair"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0]}, "data_offsets [0] is not a pair"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0, 1, 2]}, "is not a pair"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0, "2"]}, "is not a pair of integers"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0.0, 2.0]}, "is not a pair"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [False, 2]}, "is not a pair"),
        (tensor("U8", [2], -2, 0), "data_offsets [-2, 0] do not satisfy 0 <= begin <= end"),
        (tensor("U8", [2], 2, 0), "data_offsets [2, 0] do not satisfy"),
        ("not an object", "tensor 'w': entry is 'not an object', not an object"),
        ([0, 2], "tensor 'w': entry is [0, 2], not an object"),
    ],
)
def test_malformed_tensor_entries_name_the_tensor(
    tmp_path: Path, entry: object, expected: str
) -> None:
    problems = problems_of(tmp_path, raw_safetensors({"w": entry}, b"\0\0"))
    assert any(expected in p for p in problems), problems


def test_shape_and_size_must_agree(tmp_path: Path) -> None:
    header = {"w": tensor("F32", [2, 3], 0, 12)}
    (problem,) = problems_of(tmp_path, raw_safetensors(header, b"\0" * 12))
    assert problem == "tensor 'w': data_offsets span 12 bytes but shape [2, 3] of F32 needs 24"


def test_a_wrong_dtype_is_a_size_mismatch(tmp_path: Path) -> None:
    """A header saying F16 over bytes written as F32 no longer adds up."""
    data = make_safetensors({"w": ("F32", (4,))})
    tampered = data.replace(b'"F32"', b'"F16"')
    (problem,) = problems_of(tmp_path, tampered)
    assert problem == "tensor 'w': data_offsets span 16 bytes but shape [4] of F16 needs 8"


def test_astronomical_shapes_and_offsets_are_reported_quickly(tmp_path: Path) -> None:
    header = {
        "huge": tensor("F64", [2**62] * 100_000, 0, 8),
        "far": tensor("U8", [8], 10**30, 10**30 + 8),
    }
    problems = problems_of(tmp_path, raw_safetensors(header, b"\0" * 8))
    assert any("tensor 'huge'" in p and "needs more than 8 bytes" in p for p in problems)
    assert any("tensor 'far': data_offsets end" in p and "past the 8-byte" in p for p in problems)


def test_offsets_past_the_end_of_the_file(tmp_path: Path) -> None:
    header = {"a": tensor("U8", [4], 0, 4), "b": tensor("U8", [8], 4, 12)}
    problems = problems_of(tmp_path, raw_safetensors(header, b"\0" * 6))
    assert problems == ("tensor 'b': data_offsets end 12 is past the 6-byte data area",)


def test_a_truncated_file_is_reported(tmp_path: Path) -> None:
    data = make_safetensors({"a": ("F16", (8, 8)), "b": ("F16", (8,))})
    (problem,) = problems_of(tmp_path, data[:-5])
    assert problem.startswith("tensor 'b': data_offsets end 144 is past the 139-byte")


def test_overlapping_tensors_are_reported(tmp_path: Path) -> None:
    header = {
        "a": tensor("U8", [8], 0, 8),
        "b": tensor("U8", [8], 4, 12),
        "c": tensor("U8", [4], 12, 16),
    }
    problems = problems_of(tmp_path, raw_safetensors(header, b"\0" * 16))
    assert problems == ("tensor 'b' overlaps tensor 'a' (bytes 4..8 of the data area)",)


def test_two_tensors_on_the_same_bytes_overlap(tmp_path: Path) -> None:
    header = {"a": tensor("U8", [8], 0, 8), "b": tensor("U8", [8], 0, 8)}
    problems = problems_of(tmp_path, raw_safetensors(header, b"\0" * 8))
    assert problems == ("tensor 'b' overlaps tensor 'a' (bytes 0..8 of the data area)",)


def test_gaps_and_trailing_bytes_are_reported(tmp_path: Path) -> None:
    header = {"a": tensor("U8", [4], 0, 4), "b": tensor("U8", [4], 8, 12)}
    problems = problems_of(tmp_path, raw_safetensors(header, b"\0" * 16))
    assert problems == (
        "gap: bytes 4..8 of the data area, before tensor 'b', belong to no tensor",
        "trailing bytes: the last 4 bytes of the data area belong to no tensor",
    )


def test_data_without_any_tensor_is_trailing(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, raw_safetensors(b"{}      ", b"junk"))
    assert problem == "trailing bytes: the last 4 bytes of the data area belong to no tensor"


def test_hostile_names_are_shortened_in_problems(tmp_path: Path) -> None:
    name = "x" * 10_000
    problems = problems_of(tmp_path, raw_safetensors({name: tensor("Q", [1], 0, 1)}, b"\0"))
    assert all(len(p) < 300 for p in problems)
    assert any("unknown dtype 'Q'" in p for p in problems)


def test_the_number_of_problems_is_capped(tmp_path: Path) -> None:
    header = {f"t{i}": tensor("BAD", [1], i, i + 1) for i in range(1000)}
    report = check_safetensors(write(tmp_path, raw_safetensors(header, b"\0" * 1000)))
    assert not report.ok
    assert len(report.problems) == MAX_PROBLEMS + 1
    assert report.problems[-1] == f"... and {1000 - MAX_PROBLEMS} more problems"


@pytest.mark.parametrize("seed", range(40))
def test_random_corruption_never_raises(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = bytearray(make_safetensors({"a": ("F16", (4, 4)), "b": ("I64", (3,))}, seed))
    for _ in range(rng.randint(1, 6)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    report = check_safetensors(write(tmp_path, bytes(data)))
    assert report.ok is (not report.problems)


# --- reading --------------------------------------------------------------------------------


def test_unreadable_files_are_problems_not_exceptions(tmp_path: Path) -> None:
    (missing,) = check_safetensors(tmp_path / "nope.safetensors").problems
    assert missing.startswith("unreadable: ")
    (folder,) = check_safetensors(tmp_path).problems
    assert folder.startswith("unreadable: ")
    assert check_json(tmp_path / "nope.json").problems[0].startswith("unreadable: ")


def test_a_fifo_does_not_hang_the_check(tmp_path: Path) -> None:
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    (problem,) = check_safetensors(fifo).problems
    assert problem == "unreadable: model.safetensors is not a regular file"


# --- JSON ---------------------------------------------------------------------------------


def test_configs_parse(tmp_path: Path) -> None:
    assert check_json(write(tmp_path, b'{"dim": 64, "eps": NaN}\n', "config.json")).ok
    bad = check_json(write(tmp_path, b'{"dim": 64,', "config.json"))
    assert not bad.ok
    assert bad.problems[0].startswith("file is not valid JSON")
    deep = check_json(write(tmp_path, b"[" * 100_000, "config.json"))
    assert deep.problems == ("file JSON is nested too deeply",)
    latin1 = check_json(write(tmp_path, b'{"name": "caf\xe9"}', "config.json"))
    assert latin1.problems == ("file is not valid UTF-8 (byte 13)",)


def test_oversized_json_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    with path.open("wb") as out:
        out.truncate(MAX_JSON_BYTES + 1)
    (problem,) = check_json(path).problems
    assert problem == (
        f"{MAX_JSON_BYTES + 1} bytes is more than the {MAX_JSON_BYTES} bytes allowed for JSON"
    )


@pytest.mark.parametrize(
    "filename",
    ["../outside.safetensors", "/etc/passwd", "a/../../b", "C:/x", "a\\b", "", "./x"],
)
def test_index_weight_maps_name_only_relative_files(tmp_path: Path, filename: str) -> None:
    index = {"weight_map": {"good": "model-00001.safetensors", "evil": filename}}
    name = "model.safetensors.index.json"
    report = check_json(write(tmp_path, json.dumps(index).encode(), name))
    expected = f"weight_map entry 'evil': {filename!r} is not a safe relative path"
    assert report.problems == (expected,)


def test_index_weight_map_shapes(tmp_path: Path) -> None:
    name = "diffusion_pytorch_model.safetensors.index.json"
    ok = {"metadata": {"total_size": 4}, "weight_map": {"a": "sub/shard-1.safetensors"}}
    assert check_json(write(tmp_path, json.dumps(ok).encode(), name)).ok
    no_map = check_json(write(tmp_path, b'{"metadata": {}}', name))
    assert no_map.problems == ("index has no weight_map object",)
    not_names = check_json(write(tmp_path, b'{"weight_map": {"a": 3}}', name))
    assert not_names.problems == ("weight_map entry 'a': 3 is not a file name",)
    # The same content under a plain config name is just JSON.
    assert check_json(write(tmp_path, b'{"weight_map": {"a": 3}}', "config.json")).ok


# --- dispatch -------------------------------------------------------------------------------


def test_dispatch_uses_the_repository_path_not_the_blob_name(tmp_path: Path) -> None:
    blob = write(tmp_path, b"not safetensors at all", "0123abcd" * 8)
    assert not check_structure(blob, "unet/model.safetensors").ok
    assert not check_structure(blob, "unet/CONFIG.JSON").ok
    assert check_structure(blob, "README.md").ok


@pytest.mark.parametrize(
    "relpath", ["model.bin", "vae/model.pt", "m.pth", "sd.ckpt", "a.pkl", "tokenizer.model"]
)
def test_pickles_and_other_files_are_never_opened(tmp_path: Path, relpath: str) -> None:
    """Nothing is read at all: a path that does not even exist is reported sound."""
    assert check_structure(tmp_path / "does-not-exist", relpath).ok
