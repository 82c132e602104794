"""Running a batch evaluation: every fastMRI file x mask x acceleration x method, resumable.

For each item the volume is read through :func:`mrirecon.data.prepare_scan`, retrospectively
undersampled with the volume's mask (:func:`mrirecon.data.scan.mask_seed`), coil maps are
estimated once from that mask's calibration lines and shared by all methods, the volume is
reconstructed and compared with the file's reference (``reconstruction_rss``) with
:func:`mrirecon.metrics.evaluate` (fastMRI volume conventions: the whole reference volume's max
as data range, slices copied from fully sampled data excluded, explicit intensity
normalisation). A cell that cannot be computed (a mask with no calibration data for any coil
estimate, an acceleration the mask kind cannot reach) becomes a ``skipped`` row with the reason;
the rest of the grid goes on.

Outputs in ``out_dir``: ``metrics.csv`` (:mod:`.store`), the reports of :mod:`.report`,
``run.json`` (the settings a resumed run must share; written with the first finished row, so a
run that produced nothing does not lock the folder) and ``partial/`` (the finished slices of
the diffusion reconstruction in progress, :mod:`mrirecon.recon.resume`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrirecon.errors import MrireconError, check_choice, positive_int, require
from mrirecon.evaluation.grid import CLASSICAL, METHODS, SLICE_TUNED, TUNED, WorkItem, find_scans, fmt_r, make_grid
from mrirecon.evaluation.report import SummaryRow, summarize, write_reports
from mrirecon.evaluation.store import ResultsTable, merge_tables, part_files, part_path
from mrirecon.files import atomic_write_text
from mrirecon.recon.settings import ReconSettings

__all__ = ["EvalConfig", "EvalReport", "check_scan", "run_evaluation", "LAMBDA_SWEEP"]

#: λ grid of the ``-tuned`` and ``-tuned-slice`` methods, by classical method, relative (L1: to
#: max|Aᴴy|; SENSE: Tikhonov weight on AᴴA).
LAMBDA_SWEEP = {
    "l1-wavelet": tuple(float(v) for v in np.logspace(-4, -0.5, 11)),
    "sense": tuple(float(v) for v in np.logspace(-4, 0, 9)),
}


@dataclass
class EvalConfig:
    """Settings of a batch evaluation (what ``mrirecon evaluate`` parses).

    Attributes
    ----------
    data_dir, out_dir : str
        Folder of fully sampled fastMRI ``.h5`` files (with ``reconstruction_rss``); results.
    masks, accelerations, methods : sequences
        The grid (see :data:`~mrirecon.evaluation.grid.METHODS` and
        :data:`mrirecon.physics.masks.KINDS`).
    limit : int or None
        Use only the first ``limit`` files (sorted by name).
    slices : str or None
        Slice selection per volume (:func:`mrirecon.data.parse_slices`).
    settings : ReconSettings
        How every method reconstructs (steps, samples, sampler options, ...); its ``seed`` also
        seeds the masks.
    center_fraction : float or None
        Fully sampled centre of the masks; None: fastMRI's per-acceleration default (0.08 at
        4x, 0.04 at 8x).
    sens : str
        Coil-map estimator (:func:`mrirecon.physics.coils.calibrate`), default ``auto``.
    aid_prior, unet_prior : str
        Priors of the ``aid`` and ``unet`` methods (registry name or ``CONFIG:WEIGHTS``).
    normalize : str
        Intensity normalisation of :func:`mrirecon.metrics.evaluate`.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` (each torchrun rank takes ``cuda:<LOCAL_RANK>``) or ``"cuda:k"``.
    save_recons : bool
        Also write each reconstruction to ``out_dir/recons/<mask>_R<R>/<method>/<file>``.
    plots : bool
        Write the PNG plots at the end.
    progress : bool
        Show the diffusion reconstructions' step bars (inside the caller's display).
    """

    data_dir: str
    out_dir: str
    masks: Sequence[str] = ("random", "equispaced", "poisson")
    accelerations: Sequence[float] = (4.0, 8.0, 12.0)
    methods: Sequence[str] = ("aid", "unet", "l1-wavelet", "zero-filled")
    limit: int | None = None
    slices: str | None = None
    settings: ReconSettings = field(default_factory=ReconSettings)
    center_fraction: float | None = None
    sens: str = "auto"
    aid_prior: str = "default"
    strict: bool = False
    unet_prior: str = "default-unet"
    normalize: str = "lstsq"
    device: str = "auto"
    save_recons: bool = False
    plots: bool = True
    progress: bool = False

    #: Fields that change the numbers: a resumed run must use the same values.
    RESUME_FIELDS = ("slices", "center_fraction", "sens", "aid_prior", "unet_prior", "normalize")

    def validate(self) -> None:
        """Check the grid before any work starts (one line naming the bad value)."""
        from mrirecon.physics.coils import SENS_METHODS
        from mrirecon.physics.masks import KINDS

        out = Path(self.out_dir)
        require(not out.exists() or out.is_dir(), f"--out {out}: exists and is not a folder; give a results folder")
        parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
        require(os.access(parent, os.W_OK), f"--out {out}: {parent} is not writable")
        for m in self.masks:
            require(m in KINDS, f"--masks: unknown mask kind {m!r}; expected one of {', '.join(KINDS)}")
        for meth in self.methods:
            require(meth in METHODS, f"--methods: unknown method {meth!r}; expected one of {', '.join(METHODS)}")
        for r in self.accelerations:
            require(math.isfinite(r) and r > 1.0, f"--accelerations: acceleration must be a number > 1, got {r:g}")
        for name in ("masks", "accelerations", "methods"):
            values = list(getattr(self, name))
            require(values, f"--{name} must list at least one value")
            require(len(set(values)) == len(values), f"--{name} lists a value twice: {values}")
        require(isinstance(self.settings, ReconSettings), f"settings must be a ReconSettings, got {type(self.settings).__name__}")
        check_choice(self.sens, SENS_METHODS, "--sens")
        if self.center_fraction is not None:
            require(0 < self.center_fraction < 1, f"--center-fraction must be in (0, 1), got {self.center_fraction}")

    def resume_settings(self) -> dict[str, Any]:
        """What a resumed run must share with the first (the layout of the run files before ReconSettings)."""
        s = self.settings
        sampler = {k: getattr(s, k) for k in ("update", "eta", "dc", "dc_steps", "first_slice")}
        default = ReconSettings().fingerprint()
        sampler.update({k: v for k, v in s.fingerprint().items()
                        if k not in ("steps", "n_samples", "seed") and v != default.get(k)})  # fmt: skip
        return {k: getattr(self, k) for k in self.RESUME_FIELDS} | dict(steps=s.steps, n_samples=s.n_samples, seed=s.seed, sampler=sampler)


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
    bad_files: dict[str, str] = field(default_factory=dict)


def _check_run_file(path: Path, config: EvalConfig) -> bool:
    """Refuse to resume a run whose number-changing settings differ; True if the file exists."""
    if not path.exists():
        return False
    want = config.resume_settings()
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
    return True


def _write_run_file(path: Path, config: EvalConfig) -> None:
    from mrirecon import __version__

    atomic_write_text(path, json.dumps({"settings": config.resume_settings(), "version": __version__}, indent=2) + "\n")


Progress = Callable[[str, dict[str, Any]], None]


def run_evaluation(config: EvalConfig, progress: Progress | None = None) -> EvalReport:
    """Run (or resume) a batch evaluation; see the module docstring for the outputs.

    Parameters
    ----------
    config : EvalConfig
    progress : callable(event, info), optional
        Called with ``("start", {"total", "todo", "mine", "rank", "world_size"})`` once
        (``mine``: this rank's share of ``todo``), ``("item", {"file", "mask", "acceleration",
        "method"})`` when an item starts, ``("row", row)`` after each row is on disk (``row``
        as in ``metrics.csv``) and, on rank 0, ``("merged", {"rows"})`` at the end. An
        exception raised by it (e.g. ``KeyboardInterrupt``) stops the run; every row written
        before stays.

    Returns
    -------
    EvalReport
    """
    from mrirecon.devices import resolve_device
    from mrirecon.distributed import barrier, distributed_session, gather_objects, shard

    config.validate()
    notify = progress or (lambda event, info: None)
    files = find_scans(config.data_dir, config.limit)
    out = Path(config.out_dir)
    main = out / "metrics.csv"
    run_file = out / "run.json"
    grid = make_grid([f.name for f in files], config.masks, config.accelerations, config.methods)
    by_name = {f.name: f for f in files}

    with distributed_session(config.device) as ctx:
        device = resolve_device(config.device, ctx.local_rank)
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
        barrier()
        has_run_file = _check_run_file(run_file, config)
        done_keys = ResultsTable(main).keys()
        for p in part_files(main):
            done_keys |= ResultsTable(p).keys()
        todo = [it for it in grid if it.key not in done_keys]
        barrier()  # every rank has read the same finished set before anyone appends
        mine = shard(todo, ctx.rank, ctx.world_size, key=lambda it: it.file)
        bad: dict[str, str] = {}
        for name in dict.fromkeys(it.file for it in mine):  # find bad files now, not hours into the run
            reason = _unreadable(by_name[name], config.strict)
            if reason:
                bad[name] = reason
        table = ResultsTable(main if not ctx.distributed else part_path(main, ctx.rank))
        notify("start", {"total": len(grid), "todo": len(todo), "mine": len(mine), "rank": ctx.rank,
                         "world_size": ctx.world_size})  # fmt: skip

        runner = _Runner(config, device)
        n_done = 0
        try:
            for item in mine:
                notify("item", {"file": item.file, "mask": item.mask, "acceleration": item.acceleration,
                                "method": item.method})  # fmt: skip
                if item.file not in bad:
                    try:
                        row = runner.run(by_name[item.file], item)
                    except (MrireconError, OSError, KeyError) as e:
                        if config.strict:
                            raise
                        bad[item.file] = _one_line(by_name[item.file], e)
                if item.file in bad:  # one skipped row per cell, so a rerun does not retry the file
                    row = _row(item, config, str(device), status="skipped", note=f"bad file: {bad[item.file]}")
                if not has_run_file and ctx.is_main:
                    _write_run_file(run_file, config)  # the folder is now this run's
                    has_run_file = True
                table.append(row)
                n_done += 1
                notify("row", row)
        finally:
            runner.close()

        counts = gather_objects(n_done)
        barrier()
        report = EvalReport(done=n_done, skipped=len(grid) - len(todo), rank=ctx.rank, world_size=ctx.world_size,
                            bad_files=bad)  # fmt: skip
        if ctx.is_main:
            if any(ResultsTable(p).rows() for p in part_files(main)) and not run_file.exists():
                _write_run_file(run_file, config)
            report.rows = merge_tables(main, part_files(main), order=grid) if (main.exists() or part_files(main)) else []
            report.done = int(sum(counts))
            notify("merged", {"rows": len(report.rows)})
            report.paths = write_reports(report.rows, out, plots=config.plots)
            report.summary = summarize(report.rows)
        barrier()
    return report


def _one_line(path: Path, exc: BaseException) -> str:
    """An error of a bad file as one line naming it (h5py's and torch's messages are multi-line or bare)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError):
        text = f"dataset {text} cannot be read (missing, or a dangling external link)"
    return text if str(path) in text or path.name in text else f"{path}: {text}"


def _unreadable(path: Path, strict: bool) -> str | None:
    """Why ``path`` cannot be evaluated (one line), or None; ``strict`` raises instead."""
    try:
        check_scan(path)
    except (MrireconError, OSError, KeyError) as e:
        if strict:
            raise MrireconError(_one_line(path, e)) from None
        return _one_line(path, e)
    return None


def _row(item: WorkItem, config: EvalConfig, device: str, **fields: Any) -> dict[str, Any]:
    """A ``metrics.csv`` row of ``item`` with every column, not yet computed ones as NaN/empty."""
    row: dict[str, Any] = {
        "file": item.file, "mask": item.mask, "acceleration": float(item.acceleration), "method": item.method,
        "status": "ok", "effective_acceleration": math.nan, "mask_seed": 0, "slices": "", "n_slices": 0,
        "psnr": math.nan, "ssim": math.nan, "nmse": math.nan, "nrmse": math.nan, "normalization": config.normalize,
        "scale": math.nan, "seconds": 0.0, "device": device, "sens": "", "note": "", "per_slice": "{}",
    }  # fmt: skip
    row.update(fields)
    return row


def check_scan(path: Path):
    """Open a file and check that it can be evaluated: fully sampled, with a reference."""
    from mrirecon.data.fastmri import open_scan
    from mrirecon.data.scan import detect_mask

    scan = open_scan(path)
    require(
        scan.reference_key is not None,
        f"{path}: no reference image (reconstruction_rss); evaluate needs fully sampled training/"
        "validation files, not test/challenge files",
    )
    require(
        detect_mask(scan) is None,
        f"{path}: k-space is already undersampled; evaluate needs fully sampled files",
    )
    return scan


class _Runner:
    """Computes rows, keeping the current volume, its coil maps per mask and the priors.

    Items arrive file-major (the shard keeps a file on one rank), so one volume is read once
    and each (mask, acceleration) estimates coil maps once, shared by every method.
    """

    def __init__(self, config: EvalConfig, device):
        self.config = config
        self.device = device
        self._file: Path | None = None
        self._scan = None
        self._cell: dict[tuple[str, float], Any] = {}
        self._priors: dict[str, Any] = {}

    def close(self) -> None:
        self._scan, self._cell, self._priors = None, {}, {}
        partial = Path(self.config.out_dir) / "partial"
        if partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()

    def _volume(self, path: Path):
        if self._file != path or self._scan is None:
            from mrirecon.data.scan import prepare_scan

            check_scan(path)
            self._file, self._scan, self._cell = path, prepare_scan(path, self.config.slices), {}
        return self._scan

    def _mask_and_maps(self, scan, item: WorkItem):
        """(mask, calibration) of the item's cell, or the MrireconError that makes it impossible."""
        key = (item.mask, item.acceleration)
        if key not in self._cell:
            from mrirecon.physics.coils import calibrate

            try:
                mask = scan.retrospective_mask(item.mask, item.acceleration, self.config.settings.seed, self.config.center_fraction)
                cal = calibrate(scan.kspace * mask.mask, mask.mask, self.config.sens, device=self.device)  # once per cell
                self._cell = {key: (mask, cal)}  # one setting at a time: bounded memory
            except MrireconError as e:
                self._cell = {key: e}
        return self._cell[key]

    def _prior(self, method: str):
        spec = self.config.aid_prior if method == "aid" else self.config.unet_prior
        if spec not in self._priors:
            from mrirecon.prior import load_prior

            self._priors[spec] = load_prior(spec, device=str(self.device))
        return self._priors[spec]

    def _reconstruct(self, scan, mask, maps, item: WorkItem):
        """(image (S, H, W), info, note) of one item."""
        from mrirecon.recon import reconstruct

        base = dict(sens=maps, settings=self.config.settings, device=str(self.device), pixel_size_mm=scan.pixel_size_mm)
        if item.method in CLASSICAL:
            res = reconstruct(scan.kspace, mask, method=item.method, progress=False, **base)
            note = f"lam {res.info['lam']:g} ({res.info['lam_source'].split(' ')[0]})" if "lam" in res.info else ""
            if res.info.get("lam_l2"):
                note += f", l2 {res.info['lam_l2']:g}"
            return res.image, res.info, note
        method = _base_method(item.method)
        if item.method in TUNED:
            lam, _, res = self._sweep(scan, mask, method, base)
            return res.image, res.info, f"best lam {lam:.3g} of {len(LAMBDA_SWEEP[method])} (oracle sweep)"
        if item.method in SLICE_TUNED:
            other = _tuning_slice(scan.slices, scan.num_slices)
            from mrirecon.data.scan import prepare_scan
            from mrirecon.physics.coils import calibrate

            tune = prepare_scan(scan.path, [other])
            tmaps = calibrate(tune.kspace * mask.mask, mask.mask, self.config.sens, device=self.device).maps
            lam, score, _ = self._sweep(tune, mask, method, {**base, "sens": tmaps})
            res = reconstruct(scan.kspace, mask, method=method, lam=lam, progress=False, **base)
            return res.image, res.info, f"lam {lam:.3g}: best of {len(LAMBDA_SWEEP[method])} on slice {other} ({score:.2f} dB)"
        name = f"{scan.path.stem}_{item.mask}_R{fmt_r(item.acceleration)}_{item.method}.h5"
        res = reconstruct(
            scan.kspace, mask, self._prior(item.method), progress=self.config.progress,
            checkpoint=Path(self.config.out_dir) / "partial" / name, **base,
        )  # fmt: skip
        return res.image, res.info, f"first slice {res.info.get('first_slice')}"

    def _sweep(self, scan, mask, method: str, base: dict):
        """(λ, PSNR, result) of the λ of :data:`LAMBDA_SWEEP` with the best PSNR on ``scan``'s reference."""
        from mrirecon.metrics import evaluate
        from mrirecon.physics.fft import center_crop
        from mrirecon.recon import reconstruct_sweep

        best = None
        kw = {k: v for k, v in base.items() if k in ("sens", "settings", "device")}  # one preparation for all λ
        for lam, res in zip(LAMBDA_SWEEP[method], reconstruct_sweep(scan.kspace, mask, method, LAMBDA_SWEEP[method], **kw)):
            score = evaluate(scan.reference, center_crop(res.image, scan.reference.shape[-2:]),
                             normalize=self.config.normalize, data_range=scan.reference_max).psnr  # fmt: skip
            if best is None or score > best[1]:
                best = (lam, score, res)
        return best

    def run(self, path: Path, item: WorkItem) -> dict[str, Any]:
        from mrirecon.data.scan import mask_seed
        from mrirecon.metrics import evaluate
        from mrirecon.physics.fft import center_crop

        scan = self._volume(path)
        row = _row(item, self.config, str(self.device), mask_seed=mask_seed(path.name, self.config.settings.seed),
                   slices=_span(scan.slices), n_slices=len(scan.slices))  # fmt: skip
        cell = self._mask_and_maps(scan, item)
        if isinstance(cell, MrireconError):
            row.update(status="skipped", note=str(cell))
            return row
        mask, cal = cell
        row.update(effective_acceleration=float(mask.acceleration), sens=cal.describe())
        if item.method in SLICE_TUNED and _tuning_slice(scan.slices, scan.num_slices) is None:
            row.update(status="skipped", note="its λ sweep needs a slice outside the evaluated ones (see --slices)")
            return row
        tic = time.perf_counter()
        image, info, note = self._reconstruct(scan, mask, cal.maps, item)
        seconds = time.perf_counter() - tic
        image = center_crop(image, scan.reference.shape[-2:])  # fastMRI: compare on the reference's grid
        given = list(info.get("given_slices", []))
        m = evaluate(scan.reference, image, normalize=self.config.normalize, data_range=scan.reference_max, exclude=given)
        evaluated = [s for i, s in enumerate(scan.slices) if i not in set(given)]
        if self.config.save_recons:
            from mrirecon.data.fastmri import write_reconstruction

            setting = f"{item.mask}_R{fmt_r(item.acceleration)}"
            write_reconstruction(
                Path(self.config.out_dir) / "recons" / setting / item.method / path.name,
                image,
                attrs={"method": item.method, "mask": item.mask, "acceleration": item.acceleration,
                       "mask_seed": row["mask_seed"], "slices": json.dumps(scan.slices)},  # fmt: skip
            )
        per = {"slice": evaluated, **{k: [float(v) for v in m.per_slice[k]] for k in ("psnr", "ssim", "nmse", "nrmse")}}
        row.update(
            psnr=m.psnr, ssim=m.ssim, nmse=m.nmse, nrmse=m.nrmse, scale=m.scale, seconds=seconds, note=note,
            n_slices=len(evaluated), per_slice=json.dumps(per, separators=(",", ":")),
        )  # fmt: skip
        return row


def _base_method(method: str) -> str:
    """The classical method a ``-tuned`` / ``-tuned-slice`` method sweeps (others: itself)."""
    return method.removesuffix("-slice").removesuffix("-tuned")


def _tuning_slice(evaluated: Sequence[int], num_slices: int) -> int | None:
    """The slice a ``-tuned-slice`` method tunes on: next to the evaluated ones, never one of them."""
    below, above = min(evaluated) - 1, max(evaluated) + 1
    if below >= 0:
        return below
    if above < num_slices:
        return above
    return next((s for s in range(num_slices) if s not in set(evaluated)), None)


def _span(idx: Sequence[int]) -> str:
    """Compact text of a slice list: ``"4:12"`` for a contiguous range, else ``"1,5,9"``."""
    if len(idx) > 1 and list(idx) == list(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}:{idx[-1] + 1}"
    return ",".join(map(str, idx))
