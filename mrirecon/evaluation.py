"""Batch evaluation: every fastMRI file x mask x acceleration x method, resumable.

A run is a grid of work items ``(file, mask, acceleration, method)``. For each item the volume
is retrospectively undersampled with a mask that depends only on the file name, the mask kind,
the acceleration and the user seed (so every method sees the *same* mask, on every rank, in
every rerun), coil maps are estimated once from that mask's calibration lines and shared by
all methods, the volume is reconstructed, and compared with the file's reference
(``reconstruction_rss``)
using :func:`mrirecon.metrics.evaluate` (fastMRI volume conventions, explicit intensity
normalisation). One CSV row per finished item holds the volume metrics and, as a JSON column,
the per-slice values.

Outputs in ``out_dir``:

* ``metrics.csv``: one row per volume x setting (columns :data:`COLUMNS`).
* ``metrics_per_slice.csv``: the same numbers in long form, one row per slice (derived).
* ``summary.md`` / ``summary.csv``: mean +- std over volumes per (mask, acceleration, method).
* ``plot_<mask>_<metric>.png``: PSNR, SSIM, NRMSE against acceleration, one line per method.
* ``run.json``: the settings that must not change when a run is resumed.
* ``partial/``: the finished slices of the diffusion reconstruction in progress
  (:mod:`mrirecon.recon.resume`), so that an interrupted volume resumes mid-way.

Resumability. Rows are appended one complete line at a time (``O_APPEND`` + ``fsync``), so a
killed run loses at most the item it was working on. On restart the finished keys are read
back and skipped; a torn last line (the process died inside ``write``) is cut off before
anything is appended. The item in progress keeps its finished slices in ``partial/`` and
continues from them. Under ``torchrun`` every rank appends to its own part file
``metrics.rank<r>.csv``; after a barrier rank 0 merges main file and parts (deduplicated,
sorted in grid order) into ``metrics.csv`` with a write to a temporary file and
``os.replace``, then deletes the parts. Parts left by a killed distributed run (of any world
size) are read as finished work and merged by the next run.

Mask seeds. ``mask_seed(file, seed) = (crc32(file name) + seed) mod 2**31``: deterministic
across processes and Python versions (unlike ``hash()``), different per volume, identical for
all slices of a volume (fastMRI's ``seed = tuple(map(ord, fname))`` idea), shifted by ``--seed``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrirecon.errors import MrireconError, require
from mrirecon.recon.api import CLASSICAL_METHODS

__all__ = [
    "CLASSICAL",
    "COLUMNS",
    "METHODS",
    "EvalConfig",
    "EvalReport",
    "ResultsTable",
    "WorkItem",
    "find_scans",
    "make_grid",
    "mask_seed",
    "merge_tables",
    "parse_slices",
    "plot_summary",
    "resolve_prior",
    "run_evaluation",
    "summarize",
    "summary_markdown",
]

# --------------------------------------------------------------------------------------------
# the grid

#: Methods of ``evaluate``. ``aid`` and ``unet`` run the priors named by
#: :attr:`EvalConfig.aid_prior` / :attr:`EvalConfig.unet_prior`; the others are the classical
#: reconstructions of :mod:`mrirecon.recon.classical`.
METHODS = ("aid", "unet", "l1-wavelet", "sense", "zero-filled")
CLASSICAL = CLASSICAL_METHODS


@dataclass(frozen=True, order=True)
class WorkItem:
    """One cell of the evaluation grid: reconstruct ``file`` under one setting with one method."""

    file: str
    mask: str
    acceleration: float
    method: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity used for resuming; the acceleration as text so CSV values compare equal."""
        return (self.file, self.mask, _fmt_r(self.acceleration), self.method)


def _fmt_r(r: float) -> str:
    return f"{float(r):g}"


def mask_seed(file_name: str, seed: int = 0) -> int:
    """Seed of the mask for one volume: ``(crc32(basename) + seed) mod 2**31``.

    Depends on the file's base name only (not its folder), so copying the data elsewhere or
    running on another rank gives the same masks.
    """
    return (zlib.crc32(Path(file_name).name.encode("utf-8")) + int(seed)) % (2**31)


def make_grid(
    files: Sequence[str], masks: Sequence[str], accelerations: Sequence[float], methods: Sequence[str]
) -> list[WorkItem]:
    """All work items, file-major (then mask, acceleration, method): the order of the CSV."""
    return [
        WorkItem(f, m, float(r), meth)
        for f in files
        for m in masks
        for r in accelerations
        for meth in methods
    ]


def find_scans(data_dir: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """The ``*.h5`` files directly inside ``data_dir``, sorted by name, at most ``limit``."""
    d = Path(data_dir)
    require(d.exists(), f"DATA_DIR '{d}' does not exist")
    require(d.is_dir(), f"DATA_DIR '{d}' is not a directory (expected a folder of fastMRI .h5 files)")
    files = sorted(p for p in d.iterdir() if p.suffix == ".h5" and p.is_file())
    require(len(files) > 0, f"DATA_DIR '{d}' holds no .h5 files")
    if limit is not None:
        require(limit >= 1, f"--limit must be >= 1, got {limit}")
        files = files[:limit]
    return files


def parse_slices(spec: str | None, n_slices: int) -> list[int]:
    """Slice indices selected by ``spec`` in a volume of ``n_slices`` slices.

    ``None``/``"all"``: every slice; ``"I"``: one slice; ``"I,J,K"``: a list; ``"A:B"``: the
    range ``A <= s < B`` (Python semantics, negative indices allowed); ``"center:N"``: the N
    central slices (the edge slices of fastMRI volumes are mostly noise).
    """
    if spec is None or spec.strip().lower() in ("", "all"):
        return list(range(n_slices))
    s = spec.strip().lower()
    try:
        if s.startswith("center:"):
            n = int(s.split(":", 1)[1])
            require(n >= 1, f"--slices {spec!r}: N must be >= 1")
            n = min(n, n_slices)
            start = (n_slices - n) // 2
            return list(range(start, start + n))
        if ":" in s:
            a, b = s.split(":", 1)
            idx = list(range(n_slices))[slice(int(a) if a else None, int(b) if b else None)]
        else:
            idx = [int(v) for v in s.split(",")]
    except ValueError:
        raise MrireconError(
            f"--slices must be 'all', 'I', 'I,J,K', 'A:B' or 'center:N', got {spec!r}"
        ) from None
    for i in idx:
        require(-n_slices <= i < n_slices, f"--slices {spec!r}: slice {i} is outside 0..{n_slices - 1}")
    idx = sorted({i % n_slices for i in idx})
    require(len(idx) > 0, f"--slices {spec!r} selects no slice of a {n_slices}-slice volume")
    return idx


# --------------------------------------------------------------------------------------------
# the resumable table

#: Columns of ``metrics.csv`` with their types (values are parsed back with these).
COLUMNS: dict[str, type] = {
    "file": str,
    "mask": str,
    "acceleration": float,
    "method": str,
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
    "per_slice": str,
}


def _row_key(row: dict) -> tuple[str, str, str, str]:
    return (str(row["file"]), str(row["mask"]), _fmt_r(float(row["acceleration"])), str(row["method"]))


def _encode_line(values: Iterable[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(
        [repr(v) if isinstance(v, float) else v for v in values]
    )
    return buf.getvalue().encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResultsTable:
    """An append-only CSV of finished rows that survives being killed at any instant.

    * :meth:`append` writes one complete line (header first if the file is new) with a single
      ``O_APPEND`` write followed by ``fsync``: after a crash every earlier row is intact.
    * :meth:`rows` ignores a torn last line (no trailing newline) and lines whose field count
      is wrong; the first :meth:`append` of a process cuts such a tail off so the file stays
      well-formed.
    * A file whose header differs from ``columns`` is refused (a results folder of another
      version or another table) rather than silently mixed.

    Parameters
    ----------
    path : path
        The CSV file (created on first append).
    columns : dict[str, type]
        Column names and the types used to parse values back.
    """

    def __init__(self, path: str | os.PathLike, columns: dict[str, type] = COLUMNS):
        self.path = Path(path)
        self.columns = dict(columns)
        self._repaired = False

    # reading ------------------------------------------------------------------------------

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
            f"results file '{self.path}' has columns {header}, expected {names}; "
            "use a new output folder",
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
        return {_row_key(r) for r in self.rows()}

    # writing ------------------------------------------------------------------------------

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
        """Atomically rewrite the file with ``rows`` (temporary file + ``os.replace``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        data = _encode_line(self.columns) + b"".join(
            _encode_line(r[c] for c in self.columns) for r in rows
        )
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
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
    given order), sorted by their position in ``order`` (rows of keys outside it go last, in
    key order), written with :meth:`ResultsTable.replace_all`. The parts are removed only
    after the rename, so a crash at any point loses nothing (leftover parts merely duplicate
    rows that the next merge drops).

    Returns
    -------
    list of dict
        The merged rows.
    """
    table = ResultsTable(main, columns)
    seen: dict[tuple, dict] = {}
    for src in [table, *(ResultsTable(p, columns) for p in parts)]:
        for row in src.rows():
            seen.setdefault(_row_key(row), row)
    rank = {it.key: i for i, it in enumerate(order or [])}
    rows = sorted(seen.values(), key=lambda r: (rank.get(_row_key(r), len(rank)), _row_key(r)))
    table.replace_all(rows)
    for p in parts:
        Path(p).unlink(missing_ok=True)
    return rows


# --------------------------------------------------------------------------------------------
# summary and plots


@dataclass
class SummaryRow:
    """Mean and sample standard deviation over volumes of one (mask, acceleration, method)."""

    mask: str
    acceleration: float
    method: str
    n: int
    effective_acceleration: float
    psnr: float
    psnr_std: float
    ssim: float
    ssim_std: float
    nrmse: float
    nrmse_std: float
    seconds: float


def _mean_std(v: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def summarize(rows: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """Group rows by (mask, acceleration, method), in the order settings first appear."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["mask"], float(r["acceleration"]), r["method"]), []).append(r)
    out = []
    for (mask, acc, method), rs in groups.items():
        p, ps = _mean_std([r["psnr"] for r in rs])
        s, ss = _mean_std([r["ssim"] for r in rs])
        e, es = _mean_std([r["nrmse"] for r in rs])
        out.append(
            SummaryRow(
                mask=mask,
                acceleration=acc,
                method=method,
                n=len(rs),
                effective_acceleration=float(np.mean([r["effective_acceleration"] for r in rs])),
                psnr=p,
                psnr_std=ps,
                ssim=s,
                ssim_std=ss,
                nrmse=e,
                nrmse_std=es,
                seconds=float(np.mean([r["seconds"] for r in rs])),
            )
        )
    out.sort(key=lambda r: (r.mask, r.acceleration))
    return out


SUMMARY_HEADER = ("mask", "R", "R eff.", "method", "volumes", "PSNR (dB)", "SSIM", "NRMSE", "s/volume")


def summary_cells(r: SummaryRow) -> tuple[str, ...]:
    """One summary row as the display strings of :data:`SUMMARY_HEADER`."""
    return (
        r.mask,
        _fmt_r(r.acceleration),
        f"{r.effective_acceleration:.2f}",
        r.method,
        str(r.n),
        f"{r.psnr:.2f} ± {r.psnr_std:.2f}",
        f"{r.ssim:.4f} ± {r.ssim_std:.4f}",
        f"{r.nrmse:.4f} ± {r.nrmse_std:.4f}",
        f"{r.seconds:.1f}",
    )


def summary_markdown(summary: Sequence[SummaryRow], title: str | None = None) -> str:
    """A Markdown table of the summary (mean ± sample std over volumes)."""
    lines = [f"# {title}", ""] if title else []
    lines += [
        "| " + " | ".join(SUMMARY_HEADER) + " |",
        "|" + "|".join("---" if i in (0, 3) else "---:" for i in range(len(SUMMARY_HEADER))) + "|",
    ]
    lines += ["| " + " | ".join(summary_cells(r)) + " |" for r in summary]
    lines += [
        "",
        "Mean ± sample standard deviation over volumes. PSNR/SSIM/NRMSE per volume with fastMRI "
        "conventions (data range = reference volume max; SSIM = mean over slices) after "
        "least-squares intensity normalisation (`mrirecon.metrics.evaluate`).",
        "",
    ]
    return "\n".join(lines)


_PLOT_METRICS = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("nrmse", "NRMSE"))


def plot_summary(summary: Sequence[SummaryRow], out_dir: str | os.PathLike) -> list[Path]:
    """PNGs ``plot_<mask>_<metric>.png``: PSNR, SSIM, NRMSE against nominal acceleration.

    One line per method with error bars of ± one std over volumes
    (:func:`mrirecon.viz.save_plot`). A plot shows the accelerations every method of that mask
    has results for (rows of earlier runs may cover more). Returns the written paths.
    """
    from mrirecon.viz import save_plot

    out = []
    for mask in dict.fromkeys(r.mask for r in summary):
        rows = [r for r in summary if r.mask == mask]
        methods = list(dict.fromkeys(r.method for r in rows))
        common = sorted(set.intersection(*({r.acceleration for r in rows if r.method == m} for m in methods)))
        if not common:
            continue
        at = {(r.method, r.acceleration): r for r in rows}
        for metric, label in _PLOT_METRICS:
            path = Path(out_dir) / f"plot_{mask}_{metric}.png"
            save_plot(
                path,
                common,
                {m: [getattr(at[m, a], metric) for a in common] for m in methods},
                errors={m: [getattr(at[m, a], metric + "_std") for a in common] for m in methods},
                ylabel=label,
                title=f"{mask} mask: {label} (mean ± std over volumes)",
            )
            out.append(path)
    return out


def write_per_slice_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Long-form per-slice table derived from the ``per_slice`` JSON column (atomic write)."""
    path = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "mask", "acceleration", "method", "slice", "psnr", "ssim", "nmse", "nrmse"])
    for r in rows:
        ps = json.loads(r["per_slice"])
        for i, s in enumerate(ps["slice"]):
            w.writerow(
                [r["file"], r["mask"], _fmt_r(r["acceleration"]), r["method"], s]
                + [repr(float(ps[m][i])) for m in ("psnr", "ssim", "nmse", "nrmse")]
            )
    _atomic_write_text(path, buf.getvalue())
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class EvalConfig:
    """Settings of a batch evaluation (what ``mrirecon evaluate`` parses).

    Attributes
    ----------
    data_dir, out_dir : str
        Folder of fully sampled fastMRI ``.h5`` files (with ``reconstruction_rss``); results.
    masks, accelerations, methods : sequences
        The grid (see :data:`METHODS` and :data:`mrirecon.physics.masks.KINDS`).
    limit : int or None
        Use only the first ``limit`` files (sorted by name).
    slices : str or None
        Slice selection per volume, see :func:`parse_slices`.
    steps, n_samples, seed : int
        Sampler steps, posterior samples per slice, seed of the sampler; masks use
        :func:`mask_seed` of the file name and ``seed``.
    center_fraction : float or None
        Fully sampled centre of the masks (None: the mask kind's default).
    sens : str
        Coil-map estimator, ``"espirit"`` or ``"direct"`` (from each mask's calibration lines).
    aid_prior, unet_prior : str
        Priors of the ``aid`` and ``unet`` methods (registry name or ``CONFIG:WEIGHTS``).
    normalize : str
        Intensity normalisation of :func:`mrirecon.metrics.evaluate`.
    device : str
        ``"cpu"``, ``"cuda"`` (each torchrun rank takes ``cuda:<LOCAL_RANK>``) or ``"cuda:k"``.
    sampler : dict
        Further :func:`mrirecon.recon.reconstruct` keywords of the diffusion methods (``update``,
        ``eta``, ``dc``, ``dc_steps``, ...); empty = its defaults.
    save_recons : bool
        Also write each reconstruction to ``out_dir/recons/<mask>_R<R>/<method>/<file>``.
    plots : bool
        Write the PNG plots at the end.
    """

    data_dir: str
    out_dir: str
    masks: Sequence[str] = ("random", "equispaced", "poisson")
    accelerations: Sequence[float] = (4.0, 8.0, 12.0)
    methods: Sequence[str] = ("aid", "unet", "l1-wavelet", "zero-filled")
    limit: int | None = None
    slices: str | None = None
    steps: int = 100
    n_samples: int = 1
    seed: int = 0
    center_fraction: float | None = None
    sens: str = "espirit"
    aid_prior: str = "default"
    unet_prior: str = "default-unet"
    normalize: str = "lstsq"
    device: str = "cpu"
    sampler: dict[str, Any] = field(default_factory=dict)
    save_recons: bool = False
    plots: bool = True

    #: Fields that change the numbers: a resumed run must use the same values.
    RESUME_FIELDS = (
        "slices", "steps", "n_samples", "seed", "center_fraction", "sens",
        "aid_prior", "unet_prior", "normalize", "sampler",
    )

    def validate(self) -> None:
        """Check the grid before any work starts (one line naming the bad value)."""
        from mrirecon.physics.masks import KINDS

        for m in self.masks:
            require(m in KINDS, f"--masks: unknown mask kind {m!r}; expected one of {', '.join(KINDS)}")
        for meth in self.methods:
            require(meth in METHODS, f"--methods: unknown method {meth!r}; expected one of {', '.join(METHODS)}")
        for r in self.accelerations:
            require(
                math.isfinite(r) and r > 1.0,
                f"--accelerations: acceleration must be a number > 1, got {r:g}",
            )
        for name in ("masks", "accelerations", "methods"):
            values = list(getattr(self, name))
            require(values, f"--{name} must list at least one value")
            require(len(set(values)) == len(values), f"--{name} lists a value twice: {values}")
        require(self.steps >= 1, f"--steps must be >= 1, got {self.steps}")
        require(self.n_samples >= 1, f"--samples must be >= 1, got {self.n_samples}")
        require(self.sens in ("espirit", "direct"), f"--sens must be espirit or direct, got {self.sens!r}")

    def resume_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.RESUME_FIELDS}


@dataclass
class EvalReport:
    """What a run produced.

    Attributes
    ----------
    rows : list of dict
        Every finished row of ``metrics.csv`` (this run's and earlier runs'), grid order.
        Empty on ranks other than 0 of a distributed run.
    summary : list of SummaryRow
    done, skipped : int
        Items computed by this process / found finished and skipped (all ranks).
    paths : dict[str, Path]
        ``metrics``, ``per_slice``, ``summary_md``, ``summary_csv``, ``plot_<mask>_<metric>``, ``run``.
    rank, world_size : int
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    done: int = 0
    skipped: int = 0
    paths: dict[str, Path] = field(default_factory=dict)
    rank: int = 0
    world_size: int = 1


def _check_run_file(path: Path, config: EvalConfig, write: bool) -> None:
    """Refuse to resume a run whose number-changing settings differ; record them otherwise."""
    want = config.resume_settings()
    if path.exists():
        try:
            have = json.loads(path.read_text())["settings"]
        except (ValueError, KeyError, TypeError):
            raise MrireconError(f"{path} is not a mrirecon run file; use a new output folder") from None
        diff = [k for k in want if have.get(k) != want[k]]
        require(
            not diff,
            f"{path.parent} holds results computed with "
            + ", ".join(f"{k}={have.get(k)!r}" for k in diff)
            + "; this run asks for "
            + ", ".join(f"{k}={want[k]!r}" for k in diff)
            + ": use the same settings to resume, or a new output folder",
        )
    elif write:
        _atomic_write_text(path, json.dumps({"settings": want, "version": _version()}, indent=2) + "\n")


def _version() -> str:
    from mrirecon import __version__

    return __version__


Progress = Callable[[str, dict[str, Any]], None]


def run_evaluation(config: EvalConfig, progress: Progress | None = None) -> EvalReport:
    """Run (or resume) a batch evaluation; see the module docstring for the outputs.

    Parameters
    ----------
    config : EvalConfig
    progress : callable(event, info), optional
        Called with ``("start", {"total", "todo", "mine", "rank", "world_size"})`` once
        (``mine``: this rank's share of ``todo``),
        ``("row", row)`` after each row is on disk (``row`` as in ``metrics.csv``) and, on
        rank 0, ``("merged", {"rows"})`` at the end. An exception raised by it (e.g.
        ``KeyboardInterrupt``) stops the run; every row written before stays.

    Returns
    -------
    EvalReport
    """
    from mrirecon.distributed import barrier, distributed_session, gather_objects, resolve_device, shard

    config.validate()
    notify = progress or (lambda event, info: None)
    files = find_scans(config.data_dir, config.limit)
    out = Path(config.out_dir)
    main = out / "metrics.csv"
    grid = make_grid([f.name for f in files], config.masks, config.accelerations, config.methods)
    by_name = {f.name: f for f in files}

    with distributed_session(config.device) as ctx:
        device = resolve_device(config.device, ctx.local_rank)
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            _check_run_file(out / "run.json", config, write=True)
        barrier()
        if not ctx.is_main:
            _check_run_file(out / "run.json", config, write=False)
        done_keys = ResultsTable(main).keys()
        for p in part_files(main):
            done_keys |= ResultsTable(p).keys()
        todo = [it for it in grid if it.key not in done_keys]
        barrier()  # every rank has read the same finished set before anyone appends
        mine = shard(todo, ctx.rank, ctx.world_size, key=lambda it: it.file)
        for name in dict.fromkeys(it.file for it in mine):  # fail now, not hours into the run
            check_scan(by_name[name])
        table = ResultsTable(main if not ctx.distributed else part_path(main, ctx.rank))
        notify(
            "start",
            {"total": len(grid), "todo": len(todo), "mine": len(mine), "rank": ctx.rank, "world_size": ctx.world_size},
        )

        runner = _Runner(config, device)
        n_done = 0
        for item in mine:
            row = runner.run(by_name[item.file], item)
            table.append(row)
            n_done += 1
            notify("row", row)
        runner.close()

        counts = gather_objects(n_done)
        barrier()
        report = EvalReport(
            done=n_done, skipped=len(grid) - len(todo), rank=ctx.rank, world_size=ctx.world_size
        )
        if ctx.is_main:
            report.rows = merge_tables(main, part_files(main), order=grid)
            report.done = int(sum(counts))
            notify("merged", {"rows": len(report.rows)})
            report.paths = write_reports(report.rows, out, plots=config.plots)
            report.summary = summarize(report.rows)
        barrier()
    return report


def write_reports(rows: Sequence[dict[str, Any]], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """Summary (Markdown + CSV), long per-slice CSV and plots derived from ``rows``."""
    paths: dict[str, Path] = {"metrics": out_dir / "metrics.csv", "run": out_dir / "run.json"}
    if not rows:
        return paths
    summary = summarize(rows)
    paths["summary_md"] = out_dir / "summary.md"
    _atomic_write_text(paths["summary_md"], summary_markdown(summary, title="mrirecon evaluate"))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = list(asdict(summary[0]))
    w.writerow(names)
    for r in summary:
        w.writerow([repr(v) if isinstance(v, float) else v for v in asdict(r).values()])
    paths["summary_csv"] = out_dir / "summary.csv"
    _atomic_write_text(paths["summary_csv"], buf.getvalue())
    paths["per_slice"] = write_per_slice_csv(rows, out_dir / "metrics_per_slice.csv")
    if plots:
        for p in plot_summary(summary, out_dir):
            paths[p.stem] = p
    return paths


def resolve_prior(spec: str, device: str = "cpu"):
    """A ``--prior`` value -> what :func:`mrirecon.recon.reconstruct` takes as ``prior``.

    ``zero-filled`` / ``sense`` / ``l1-wavelet`` stay strings; ``CONFIG.yaml:WEIGHTS.pt``
    (e.g. the official ``fastmri_320_cplx.yaml:fastmri_320_cplx.pt``) loads that checkpoint;
    anything else (a registry name, a weights file with its ``.yaml`` beside it) goes to
    :func:`mrirecon.prior.load_prior`.
    """
    if spec in CLASSICAL:
        return spec
    from mrirecon.prior import load_prior

    if ":" in spec and not Path(spec).exists():
        config, weights = spec.split(":", 1)
        require(Path(config).is_file(), f"--prior {spec}: config file '{config}' does not exist")
        require(Path(weights).is_file(), f"--prior {spec}: weights file '{weights}' does not exist")
        return load_prior(config=config, weights=weights, device=device)
    return load_prior(spec, device=device)


def check_scan(path: Path):
    """Open a file and check that it can be evaluated: fully sampled, with a reference.

    Returns the :class:`~mrirecon.data.fastmri.Scan`.
    """
    from mrirecon.data.fastmri import open_scan

    scan = open_scan(path)
    require(
        scan.reference_key is not None,
        f"{path}: no reference image (reconstruction_rss); evaluate needs fully sampled training/"
        "validation files, not test/challenge files",
    )
    require(
        scan.mask is None,
        f"{path}: k-space is already undersampled (it has a 'mask' dataset); evaluate needs fully "
        "sampled files",
    )
    return scan


class _Runner:
    """Computes rows, keeping the current volume, its coil maps per mask and the priors.

    Items arrive file-major (the shard keeps a file on one rank), so one volume is read once
    and each (mask, acceleration) estimates coil maps once, shared by every method: all
    methods are compared with the same maps, estimated from that mask's calibration lines.
    """

    def __init__(self, config: EvalConfig, device):
        self.config = config
        self.device = device
        self._file: Path | None = None
        self._data: tuple[np.ndarray, np.ndarray, list[int]] | None = None
        self._maps: dict[tuple[str, float], tuple[Any, np.ndarray]] = {}
        self._priors: dict[str, Any] = {}

    def close(self) -> None:
        self._data, self._maps, self._priors = None, {}, {}
        partial = Path(self.config.out_dir) / "partial"
        if partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()

    def _volume(self, path: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """k-space with the readout oversampling removed (S, C, H, W), reference, slices."""
        if self._file == path and self._data is not None:
            return self._data
        from mrirecon.physics.fft import center_crop, fft2c, ifft2c

        scan = check_scan(path)
        idx = parse_slices(self.config.slices, scan.num_slices)
        with scan:
            kspace = scan.load_kspace(idx)
            ref = scan.load_reference(idx)
        h = scan.recon_size[0]
        if h < kspace.shape[-2]:
            kspace = fft2c(center_crop(ifft2c(kspace), (h, kspace.shape[-1]))).astype(np.complex64)
        self._file, self._data, self._maps = path, (kspace, ref, idx), {}
        return self._data

    def _mask_and_maps(self, path: Path, kspace: np.ndarray, item: WorkItem) -> tuple[Any, np.ndarray]:
        key = (item.mask, item.acceleration)
        if key not in self._maps:
            from mrirecon.physics.coils import estimate_sens
            from mrirecon.physics.masks import make_mask

            mask = make_mask(
                item.mask,
                tuple(kspace.shape[-2:]),
                item.acceleration,
                seed=mask_seed(path.name, self.config.seed),
                center_fraction=self.config.center_fraction,
            )
            maps = estimate_sens(kspace * mask.mask, mask=mask.mask, method=self.config.sens)
            self._maps = {key: (mask, np.asarray(maps))}  # one setting at a time: bounded memory
        return self._maps[key]

    def _prior(self, method: str):
        if method in CLASSICAL:
            return method
        spec = self.config.aid_prior if method == "aid" else self.config.unet_prior
        if spec not in self._priors:
            self._priors[spec] = resolve_prior(spec, str(self.device))
        return self._priors[spec]

    def _diffusion_options(self, path: Path, item: WorkItem) -> dict[str, Any]:
        """Sampler settings, and a slice checkpoint so that an interrupted volume resumes mid-way."""
        name = f"{path.stem}_{item.mask}_R{item.acceleration:g}_{item.method}.h5"
        return {**self.config.sampler, "checkpoint": Path(self.config.out_dir) / "partial" / name}

    def run(self, path: Path, item: WorkItem) -> dict[str, Any]:
        from mrirecon.metrics import evaluate
        from mrirecon.physics.fft import center_crop
        from mrirecon.recon import reconstruct

        kspace, ref, idx = self._volume(path)
        mask, maps = self._mask_and_maps(path, kspace, item)
        prior = self._prior(item.method)
        tic = time.perf_counter()
        res = reconstruct(
            kspace,
            mask,
            prior,
            sens=maps,
            steps=self.config.steps,
            n_samples=self.config.n_samples,
            seed=self.config.seed,
            progress=False,
            **(self._diffusion_options(path, item) if item.method in ("aid", "unet") else {}),
        )
        seconds = time.perf_counter() - tic
        image = center_crop(res.image, ref.shape[-2:])  # fastMRI: compare on the reference's grid
        m = evaluate(ref, image, normalize=self.config.normalize)
        if self.config.save_recons:
            from mrirecon.data.fastmri import write_reconstruction

            setting = f"{item.mask}_R{_fmt_r(item.acceleration)}"
            write_reconstruction(
                Path(self.config.out_dir) / "recons" / setting / item.method / path.name,
                image,
                attrs={"method": item.method, "mask": item.mask, "acceleration": item.acceleration,
                       "mask_seed": mask_seed(path.name, self.config.seed), "slices": json.dumps(idx)},
            )
        per = {"slice": idx, **{k: [float(v) for v in m.per_slice[k]] for k in ("psnr", "ssim", "nmse", "nrmse")}}
        return {
            "file": item.file,
            "mask": item.mask,
            "acceleration": float(item.acceleration),
            "method": item.method,
            "effective_acceleration": float(mask.acceleration),
            "mask_seed": mask_seed(path.name, self.config.seed),
            "slices": _span(idx),
            "n_slices": len(idx),
            "psnr": m.psnr,
            "ssim": m.ssim,
            "nmse": m.nmse,
            "nrmse": m.nrmse,
            "normalization": m.normalization,
            "scale": m.scale,
            "seconds": seconds,
            "device": str(self.device),
            "per_slice": json.dumps(per, separators=(",", ":")),
        }


def _span(idx: Sequence[int]) -> str:
    """Compact text of a slice list: ``"4:12"`` for a contiguous range, else ``"1,5,9"``."""
    if len(idx) > 1 and list(idx) == list(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}:{idx[-1] + 1}"
    return ",".join(map(str, idx))
