"""The results table of an evaluation: an append-only CSV that survives being killed at any instant.

Rows are appended one complete line at a time (``O_APPEND`` + ``fsync``), so a killed run loses
at most the item it was working on. On restart the finished keys are read back and skipped; a
torn last line (the process died inside ``write``) is cut off before anything is appended.
Under ``torchrun`` every rank appends to its own part file ``metrics.rank<r>.csv``; rank 0
merges main file and parts (deduplicated, sorted in grid order) with an atomic rewrite, then
deletes the parts. Parts left by a killed distributed run (of any world size) are read as
finished work and merged by the next run.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mrirecon.errors import require
from mrirecon.evaluation.grid import WorkItem, fmt_r
from mrirecon.files import atomic_write_bytes

__all__ = ["COLUMNS", "ResultsTable", "merge_tables", "part_files", "part_path"]

#: Columns of ``metrics.csv`` with their types (values are parsed back with these). ``status``
#: is ``ok`` or ``skipped`` (a cell that cannot be computed, e.g. a mask with too few calibration
#: lines for any coil-map estimate); ``note`` says why, or how the method was set up.
COLUMNS: dict[str, type] = {
    "file": str,
    "mask": str,
    "acceleration": float,
    "method": str,
    "status": str,
    "effective_acceleration": float,
    "mask_seed": int,
    "slices": str,
    "n_slices": int,
    "psnr": float,
    "ssim": float,
    "nmse": float,
    "nrmse": float,
    "normalization": str,
    "scale": float,
    "seconds": float,
    "device": str,
    "sens": str,
    "note": str,
    "per_slice": str,
}


def row_key(row: dict) -> tuple[str, str, str, str]:
    return (str(row["file"]), str(row["mask"]), fmt_r(float(row["acceleration"])), str(row["method"]))


def _encode_line(values: Iterable[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([repr(v) if isinstance(v, float) else v for v in values])
    return buf.getvalue().encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class ResultsTable:
    """An append-only CSV of finished rows (module docstring).

    * :meth:`append` writes one complete line (header first if the file is new) with a single
      ``O_APPEND`` write followed by ``fsync``: after a crash every earlier row is intact.
    * :meth:`rows` ignores a torn last line (no trailing newline) and lines whose field count
      is wrong; the first :meth:`append` of a process cuts such a tail off.
    * A file whose header differs from ``columns`` is refused (a results folder of another
      version or another table) rather than silently mixed.
    """

    def __init__(self, path: str | os.PathLike, columns: dict[str, type] = COLUMNS):
        self.path = Path(path)
        self.columns = dict(columns)
        self._repaired = False

    def _complete_text(self) -> tuple[str, int]:
        """File text up to its last newline, and that length in bytes (0 if absent)."""
        if not self.path.exists():
            return "", 0
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        return data[:end].decode("utf-8", errors="replace"), end

    def rows(self) -> list[dict[str, Any]]:
        """Every complete, well-formed row as a dict of typed values (file order)."""
        text, _ = self._complete_text()
        if not text:
            return []
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        names = list(self.columns)
        require(
            header == names,
            f"results file '{self.path}' has columns {header}, expected {names}; use a new output folder",
        )
        out = []
        for fields in reader:
            if len(fields) != len(names):
                continue
            try:
                out.append({n: self.columns[n](v) for n, v in zip(names, fields)})
            except ValueError:
                continue
        return out

    def keys(self) -> set[tuple[str, str, str, str]]:
        """Keys ``(file, mask, acceleration, method)`` of the finished rows."""
        return {row_key(r) for r in self.rows()}

    def _repair(self) -> None:
        """Cut a torn tail (bytes after the last newline) before the first append."""
        if self._repaired:
            return
        if self.path.exists():
            _, end = self._complete_text()
            if end != self.path.stat().st_size:
                with open(self.path, "r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
            if end > 0:
                self.rows()  # validates the header
        self._repaired = True

    def append(self, row: dict[str, Any]) -> None:
        """Durably append one row (all of :attr:`columns` must be present)."""
        missing = [c for c in self.columns if c not in row]
        require(not missing, f"result row lacks columns {missing}")
        self._repair()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b""
        if not self.path.exists() or self.path.stat().st_size == 0:
            data += _encode_line(self.columns)
        data += _encode_line(row[c] for c in self.columns)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace_all(self, rows: Iterable[dict[str, Any]]) -> None:
        """Atomically rewrite the file with ``rows``."""
        data = _encode_line(self.columns) + b"".join(_encode_line(r[c] for c in self.columns) for r in rows)
        atomic_write_bytes(self.path, data)
        self._repaired = True


def part_path(main: Path, rank: int) -> Path:
    """Part file of ``rank`` beside ``main`` (``metrics.csv`` -> ``metrics.rank3.csv``)."""
    return main.with_name(f"{main.stem}.rank{rank}{main.suffix}")


def part_files(main: Path) -> list[Path]:
    """Part files beside ``main`` left by this or earlier (possibly killed) runs."""
    return sorted(main.parent.glob(f"{main.stem}.rank*{main.suffix}"))


def merge_tables(
    main: str | os.PathLike,
    parts: Sequence[str | os.PathLike],
    order: Sequence[WorkItem] | None = None,
    columns: dict[str, type] = COLUMNS,
) -> list[dict[str, Any]]:
    """Fold part files into ``main`` atomically, then delete the parts.

    Rows are deduplicated by key (the first occurrence wins: main file, then parts in the
    given order) and sorted by their position in ``order`` (rows of keys outside it go last,
    in key order). The parts are removed only after the rename, so a crash at any point loses
    nothing (leftover parts merely duplicate rows that the next merge drops).
    """
    table = ResultsTable(main, columns)
    seen: dict[tuple, dict] = {}
    for src in [table, *(ResultsTable(p, columns) for p in parts)]:
        for row in src.rows():
            seen.setdefault(row_key(row), row)
    rank = {it.key: i for i, it in enumerate(order or [])}
    rows = sorted(seen.values(), key=lambda r: (rank.get(row_key(r), len(rank)), row_key(r)))
    table.replace_all(rows)
    for p in parts:
        Path(p).unlink(missing_ok=True)
    return rows
