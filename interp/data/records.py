"""Rows of benchmark files and hub datasets that remember where they came from.

A :class:`Record` carries its location (file and row, or hub dataset, split and row), so every loader
error can name the file, the row and the problem. :func:`records` reads CSV, JSON, JSONL (optionally
gzipped) or, when the source is not an existing path, a Hugging Face dataset name
(``owner/name[#config][@split]``) through ``datasets.load_dataset``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from interp.errors import DataFormatError

Source = str | os.PathLike
"""A file path, or a Hugging Face dataset name (``owner/name[#config][@split]``)."""

_FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".gz", ".parquet", ".txt", ".tsv")


@dataclass(frozen=True)
class Record:
    """One row of a data source, with its location for error messages."""

    data: Mapping[str, Any]
    """The row's fields (CSV columns or JSON keys)."""
    where: str
    """Human-readable location, e.g. ``harmful_behaviors.csv, row 3 (line 4)``."""

    def fail(self, problem: str) -> DataFormatError:
        return DataFormatError(f"{self.where}: {problem}")

    def get(self, *names: str, default: Any = ...) -> Any:
        """The first of ``names`` (aliases) present; missing and no default -> DataFormatError."""
        for n in names:
            if n in self.data:
                return self.data[n]
        if default is not ...:
            return default
        have = ", ".join(repr(k) for k in self.data if k is not None) or "none"
        raise self.fail(f"missing column {names[0]!r} (has {have})")

    def text(self, *names: str) -> str:
        """A required, non-empty string field (surrounding whitespace removed)."""
        value = self.get(*names)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{names[0]!r} must be a string, got {type(value).__name__}")
        if not value or not value.strip():
            raise self.fail(f"empty {names[0]!r}")
        return value.strip()

    def optional_text(self, *names: str) -> str | None:
        value = self.get(*names, default=None)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{names[0]!r} must be a string, got {type(value).__name__}")
        return value.strip() or None

    def choice(self, allowed: Sequence[str], *names: str) -> str:
        value = self.text(*names)
        if value not in allowed:
            raise self.fail(f"bad label {value!r} in {names[0]!r}; expected one of {list(allowed)}")
        return value


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: TruthfulQA.csv starts with a byte-order mark that would otherwise prefix "Type".
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _csv_records(path: Path) -> Iterator[Record]:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames
            if not header:
                raise DataFormatError(f"{path}: empty file (expected a CSV header)")
            start, row_no = reader.line_num + 1, 0
            for row in reader:
                row_no += 1
                where = f"{path}, row {row_no} (line {start})"
                if None in row:
                    raise DataFormatError(f"{where}: {len(header) + len(row[None])} fields, header has "
                                          f"{len(header)} (unquoted comma?)")
                if any(v is None for v in row.values()):
                    n = sum(v is not None for v in row.values())
                    raise DataFormatError(f"{where}: {n} fields, header has {len(header)}")
                yield Record(row, where)
                start = reader.line_num + 1
        except csv.Error as e:
            raise DataFormatError(f"{path}, line {reader.line_num}: bad CSV ({e})") from e


def _json_error(path: Path, e: json.JSONDecodeError, line: int | None = None) -> DataFormatError:
    return DataFormatError(f"{path}, line {line or e.lineno}: bad JSON ({e.msg} at column {e.colno})")


def _json_records(path: Path) -> Iterator[Record]:
    """A JSON array of objects, or JSON Lines (one object per line; HaluEval's ``.json`` is JSONL)."""
    with _open_text(path) as fh:
        text = fh.read()
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise _json_error(path, e) from e
        for i, item in enumerate(items, 1):
            yield _object_record(item, f"{path}, record {i}")
        return
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise _json_error(path, e, line_no) from e
        yield _object_record(item, f"{path}, line {line_no}")


def _object_record(item: Any, where: str) -> Record:
    if not isinstance(item, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return Record(item, where)


def read_json(path: Path) -> Any:
    """A whole JSON document, with a DataFormatError naming file and line on bad JSON."""
    with _open_text(path) as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as e:
            raise _json_error(path, e) from e


# --------------------------------------------------------------------------------------------------
# Sources: a local file, or a Hugging Face dataset name when no such file exists.


def _looks_like_path(s: str) -> bool:
    return (
        s.startswith(("/", ".", "~")) or s.endswith(_FILE_SUFFIXES) or s.count("/") > 1 or "\\" in s
    )


def local_path(source: Source) -> Path | None:
    """The file ``source`` names, ``None`` if it should be read from the hub, or DataFormatError."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise DataFormatError(f"{path} is a directory; expected a benchmark file (see find_benchmark)")
    if isinstance(source, os.PathLike) or _looks_like_path(str(source)):
        raise DataFormatError(f"{path}: no such file")
    return None


def _parse_hub_ref(ref: str) -> tuple[str, str | None, str | None]:
    name, _, split = ref.partition("@")
    name, _, config = name.partition("#")
    return name, config or None, split or None


def hub_records(ref: str, prefer_split: Sequence[str] = ("test", "train")) -> Iterator[Record]:
    """Rows of a Hugging Face dataset; an unreachable hub fails with a message saying so."""
    name, config, split = _parse_hub_ref(ref)
    try:
        import datasets

        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # network, missing dataset, missing config: all mean "cannot load"
        raise DataFormatError(
            f"{ref!r} is not an existing path, and loading it as a Hugging Face dataset failed "
            f"({type(e).__name__}: {str(e)[:300]}); the hub may be unreachable — pass a local file"
        ) from e
    if split is None and hasattr(ds, "keys"):
        splits = list(ds.keys())
        chosen = next((s for s in prefer_split if s in splits), splits[0] if len(splits) == 1 else None)
        if chosen is None:
            raise DataFormatError(f"{ref!r} has splits {splits}; name one as {name}@<split>")
        ds, split = ds[chosen], chosen
    for i, row in enumerate(ds, 1):
        yield Record(dict(row), f"hf:{name}[{split}], record {i}")


def records(source: Source, kind: Literal["csv", "json"]) -> list[Record]:
    """All rows of a CSV or JSON/JSONL file, or of a hub dataset."""
    path = local_path(source)
    if path is None:
        return list(hub_records(str(source)))
    return list(_csv_records(path) if kind == "csv" else _json_records(path))
