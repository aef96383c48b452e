"""Structural checks of model files: is a file well-formed, judged without running anything.

What each kind of file gets (:func:`check_structure` dispatches on the file name):

* ``*.safetensors`` (:func:`check_safetensors`): the 8-byte little-endian header length and
  the header alone are read, never the tensor data, so memory stays bounded by
  :data:`MAX_HEADER_BYTES` whatever the file claims. The header is checked against the rules
  of the reference implementation (huggingface/safetensors ``read_metadata`` and
  ``Metadata::validate``): UTF-8 JSON object without duplicate keys, NaN or Infinity; an
  optional ``__metadata__`` map of strings; every tensor with a known dtype, a shape of
  non-negative integers and ``data_offsets`` ``[begin, end]`` inside the data area, whose
  length is exactly the shape's element count times the dtype's width (sub-byte dtypes:
  ``elements * bits`` must be a multiple of 8); tensors sorted by offset must cover the data
  area exactly, with no overlap, gap or trailing bytes.
* ``*.json`` (:func:`check_json`): configs and shard indexes parse (at most
  :data:`MAX_JSON_BYTES`); an ``*.index.json`` ``weight_map`` names only relative files,
  never ``..``, absolute, drive or backslash paths.
* everything else, notably pickle-based ``.bin``, ``.pt``, ``.pth``, ``.ckpt`` and ``.pkl``:
  reported sound without being opened. Unpickling runs arbitrary code (RELIABILITY.md item
  37), so nothing here unpickles, imports torch or loads a model; those files are proven
  right only by their hash, in :mod:`modeldepot.health.integrity`.

Every check returns a :class:`StructureReport` and never raises, however hostile the file
(a header claiming 1 GB, negative or astronomically large offsets, non-integer values,
deep nesting, NaN, over-long integers): an unreadable file is the problem ``"unreadable:
..."``. Each problem names the tensor or key concerned and what is wrong with it.
"""

from __future__ import annotations

import io
import json
import os
import reprlib
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple, NoReturn, TypeGuard

from modeldepot.errors import UnsafePath
from modeldepot.ids import validate_relative_path

MAX_HEADER_BYTES = 100 * 1000**2
"""100 MB in decimal units (100,000,000 bytes): the reference's ``MAX_HEADER_SIZE``."""
MAX_JSON_BYTES = 64 * 1024**2
"""64 MiB: far above any real config or shard index, small enough to parse safely."""
MAX_PROBLEMS = 20
"""Problems kept per report; a hostile header could otherwise produce millions."""

DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
"""Every dtype of the safetensors format (``Dtype`` in safetensors 0.6) and its width in
bits."""

NEVER_OPENED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Pickle-based formats: hashed elsewhere, never opened here (listed for documentation)."""

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80


@dataclass(frozen=True)
class StructureReport:
    """The verdict on one file's structure: ``ok`` exactly when ``problems`` is empty."""

    ok: bool
    problems: tuple[str, ...] = ()

    @classmethod
    def from_problems(cls, problems: Sequence[str]) -> StructureReport:
        """A report keeping the first :data:`MAX_PROBLEMS` problems and a count of the rest."""
        kept = tuple(problems[:MAX_PROBLEMS])
        if len(problems) > MAX_PROBLEMS:
            kept += (f"... and {len(problems) - MAX_PROBLEMS} more problems",)
        return cls(ok=not problems, problems=kept)


SOUND = StructureReport(ok=True)


class _Span(NamedTuple):
    begin: int
    end: int
    name: str


def check_structure(path: Path, relpath: str) -> StructureReport:
    """Check the file at ``path`` by the kind its repository path ``relpath`` names.

    ``relpath`` decides, not ``path``: in the hub cache the bytes live in a blob named by
    its hash. Files other than safetensors and JSON (pickles included) are reported sound
    without being opened.

    Raises:
        nothing: problems, including unreadable files, are part of the report.
    """
    name = relpath.rsplit("/", 1)[-1].lower()
    if name.endswith(".safetensors"):
        return check_safetensors(path)
    if name.endswith(".json"):
        return check_json(path, relpath)
    return SOUND


def check_safetensors(path: Path) -> StructureReport:
    """Check a safetensors file's header against the format, reading only the header.

    Raises:
        nothing: malformed content and OSError (as ``"unreadable: ..."``) are reported.
    """
    try:
        with _open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            problems = _safetensors_problems(handle, size)
    except OSError as exc:
        problems = [_unreadable(exc)]
    return StructureReport.from_problems(problems)


def check_json(path: Path, relpath: str | None = None) -> StructureReport:
    """Check that a JSON config or index parses; for ``*.index.json`` that its
    ``weight_map`` names only safe relative files. ``relpath`` (default: ``path``'s name)
    decides whether the file is an index.

    NaN, Infinity and duplicate keys are accepted here: Python's ``json``, which
    transformers and diffusers use to read configs, accepts them too.

    Raises:
        nothing: malformed content and OSError (as ``"unreadable: ..."``) are reported.
    """
    name = (relpath or path.name).rsplit("/", 1)[-1].lower()
    try:
        with _open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_JSON_BYTES:
                too_big = f"{size} bytes is more than the {MAX_JSON_BYTES} bytes allowed for JSON"
                return StructureReport.from_problems([too_big])
            raw = _read_exactly(handle, size)
    except OSError as exc:
        return StructureReport.from_problems([_unreadable(exc)])
    value, problems = _parse_json(raw, what="file", strict=False)
    if value is not None and name.endswith(".index.json"):
        problems += _index_problems(value)
    return StructureReport.from_problems(problems)


# --- safetensors -----------------------------------------------------------------------


def _safetensors_problems(handle: io.FileIO, size: int) -> list[str]:
    if size < 8:
        return [f"file is {size} bytes, too short for the 8-byte header length"]
    (length,) = struct.unpack("<Q", _read_exactly(handle, 8))
    problem = _header_length_problem(length, size)
    if problem is not None:
        return [problem]
    raw = _read_exactly(handle, length)
    if len(raw) < length:
        return [f"file ended inside the {length}-byte header"]
    header, problems = _parse_json(raw, what="header", strict=True)
    if header is None:
        return problems
    if not isinstance(header, dict):
        return [*problems, f"header is a JSON {type(header).__name__}, not an object"]
    return problems + _header_problems(header, data_size=size - 8 - length)


def _header_length_problem(length: int, size: int) -> str | None:
    if length < 2:
        return f"header length {length} is below the minimum of 2 bytes ('{{}}')"
    if length > MAX_HEADER_BYTES:
        return f"header length {length} exceeds the limit of {MAX_HEADER_BYTES} bytes (100 MB)"
    if length > size - 8:
        return f"header length {length} runs past the end of the {size}-byte file"
    return None


def _header_problems(header: dict[str, object], *, data_size: int) -> list[str]:
    problems: list[str] = []
    spans: list[_Span] = []
    for name, entry in header.items():
        if name == "__metadata__":
            problems.extend(_metadata_problems(entry))
            continue
        span, entry_problems = _tensor_problems(name, entry, data_size=data_size)
        problems.extend(entry_problems)
        if span is not None:
            spans.append(span)
    return problems + _coverage_problems(spans, data_size=data_size)


def _metadata_problems(value: object) -> list[str]:
    if not isinstance(value, dict):
        return [f"__metadata__ is {_REPR.repr(value)}, not a map of strings"]
    for key, item in value.items():
        if not isinstance(item, str):
            return [f"__metadata__ value of {_REPR.repr(key)} is {_REPR.repr(item)}, not a string"]
    return []


def _tensor_problems(name: str, entry: object, *, data_size: int) -> tuple[_Span | None, list[str]]:
    label = f"tensor {_REPR.repr(name)}"
    if not isinstance(entry, dict):
        return None, [f"{label}: entry is {_REPR.repr(entry)}, not an object"]
    problems: list[str] = []
    dtype, shape = entry.get("dtype"), entry.get("shape")
    if not (isinstance(dtype, str) and dtype in DTYPE_BITS):
        problems.append(f"{label}: unknown dtype {_REPR.repr(dtype)}")
    if not _is_shape(shape):
        problems.append(
            f"{label}: shape {_REPR.repr(shape)} is not a list of non-negative integers"
        )
    span, offsets_problem = _span(label, name, entry.get("data_offsets"), data_size=data_size)
    if offsets_problem is not None:
        problems.append(offsets_problem)
    elif span is not None and isinstance(dtype, str) and not problems and _is_shape(shape):
        size_problem = _size_problem(label, dtype, shape, span.end - span.begin)
        if size_problem is not None:
            problems.append(size_problem)
    return span, problems


def _is_shape(shape: object) -> TypeGuard[list[int]]:
    return isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)


def _span(
    label: str, name: str, offsets: object, *, data_size: int
) -> tuple[_Span | None, str | None]:
    """The tensor's byte range (clipped to the data area, for the coverage check)."""
    if not (isinstance(offsets, list) and len(offsets) == 2):
        return None, f"{label}: data_offsets {_REPR.repr(offsets)} is not a pair of integers"
    begin, end = offsets
    if not (_is_int(begin) and _is_int(end)):
        return None, f"{label}: data_offsets {_REPR.repr(offsets)} is not a pair of integers"
    if not 0 <= begin <= end:
        return None, f"{label}: data_offsets [{begin}, {end}] do not satisfy 0 <= begin <= end"
    span = _Span(min(begin, data_size), min(end, data_size), name)
    if end > data_size:
        return span, f"{label}: data_offsets end {end} is past the {data_size}-byte data area"
    return span, None


def _size_problem(label: str, dtype: str, shape: list[int], nbytes: int) -> str | None:
    bits = DTYPE_BITS[dtype]
    # Any count above 8 * nbytes is wrong whatever the dtype; stopping there keeps a hostile
    # shape like [2**62] * 10**6 from building an enormous integer.
    count = _element_count(shape, limit=8 * nbytes)
    if count is None:
        return f"{label}: shape {_REPR.repr(shape)} of {dtype} needs more than {nbytes} bytes"
    if count * bits % 8:
        return f"{label}: {count} elements of {dtype} ({bits} bits) do not fill whole bytes"
    needed = count * bits // 8
    if needed != nbytes:
        return (
            f"{label}: data_offsets span {nbytes} bytes but shape {_REPR.repr(shape)} "
            f"of {dtype} needs {needed}"
        )
    return None


def _element_count(shape: list[int], *, limit: int) -> int | None:
    """The product of ``shape``, or None once it exceeds ``limit``."""
    if 0 in shape:
        return 0
    count = 1
    for dim in shape:
        count *= dim
        if count > limit:
            return None
    return count


def _coverage_problems(spans: list[_Span], *, data_size: int) -> list[str]:
    """Tensors sorted by offset must tile the data area: no overlap, gap or trailing bytes."""
    problems: list[str] = []
    cursor, previous = 0, ""
    for span in sorted(spans):
        if span.begin < cursor:
            problems.append(
                f"tensor {_REPR.repr(span.name)} overlaps tensor {_REPR.repr(previous)} "
                f"(bytes {span.begin}..{min(span.end, cursor)} of the data area)"
            )
        elif span.begin > cursor:
            problems.append(
                f"gap: bytes {cursor}..{span.begin} of the data area, before tensor "
                f"{_REPR.repr(span.name)}, belong to no tensor"
            )
        if span.end > cursor:
            cursor, previous = span.end, span.name
    if cursor < data_size:
        problems.append(
            f"trailing bytes: the last {data_size - cursor} bytes of the data area "
            "belong to no tensor"
        )
    return problems


# --- JSON --------------------------------------------------------------------------------


def _parse_json(raw: bytes, *, what: str, strict: bool) -> tuple[object | None, list[str]]:
    """Parse UTF-8 JSON; ``strict`` also refuses NaN/Infinity and duplicate keys.

    Returns (value, problems); value is None when nothing usable was parsed.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"{what} is not valid UTF-8 (byte {exc.start})"]
    duplicates: list[str] = []
    try:
        if strict:
            value = json.loads(
                text,
                object_pairs_hook=partial(_dict_noting_duplicates, duplicates),
                parse_constant=_refuse_constant,
            )
        else:
            value = json.loads(text)
    except RecursionError:
        return None, [f"{what} JSON is nested too deeply"]
    except ValueError as exc:  # JSONDecodeError, NaN refused, integers over 4300 digits
        return None, [f"{what} is not valid JSON: {_REPR.repr(str(exc))}"]
    problems = [f"duplicate key {_REPR.repr(key)} in {what}" for key in duplicates]
    return value, problems


def _dict_noting_duplicates(found: list[str], pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            found.append(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _index_problems(index: object) -> list[str]:
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        return ["index has no weight_map object"]
    problems = []
    for tensor, filename in weight_map.items():
        label = f"weight_map entry {_REPR.repr(tensor)}"
        if not isinstance(filename, str):
            problems.append(f"{label}: {_REPR.repr(filename)} is not a file name")
            continue
        try:
            validate_relative_path(filename)
        except UnsafePath:
            problems.append(f"{label}: {_REPR.repr(filename)} is not a safe relative path")
    return problems


# --- IO ----------------------------------------------------------------------------------


def _open_regular(path: Path) -> io.FileIO:
    """Open a regular file for reading; never blocks on a FIFO, refuses devices/dirs.

    Raises:
        OSError: the file cannot be opened or is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _read_exactly(handle: io.FileIO, size: int) -> bytes:
    """Up to ``size`` bytes from the current position; fewer only at end of file.

    Raises:
        OSError: from the read.
    """
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = handle.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _unreadable(exc: OSError) -> str:
    return f"unreadable: {exc.strerror or exc}"


def _is_int(value: object) -> TypeGuard[int]:
    # JSON true/false arrive as bool, a subclass of int: they are not dimensions or offsets.
    return isinstance(value, int) and not isinstance(value, bool)
