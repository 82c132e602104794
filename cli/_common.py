"""Shared pieces of the command line: the Typer app, error handling, options used by several commands.

Error policy (every command): bad input raises :class:`~mrirecon.errors.MrireconError` in the
Python API (or here, for CLI-only syntax); :func:`command` catches it and prints one red line
``Error: ...`` on stderr, exit status 2. Ctrl-C prints the files already written (commands
record them with :func:`saved`) and exits with 130. Warnings of the API are printed as one
yellow line each.

Start-up: nothing here imports torch, sigpy or matplotlib (``mrirecon --help`` starts in a
fraction of a second); commands import what they need when they run.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mrirecon.errors import MrireconError, require
from mrirecon.recon.settings import DEFAULTS

app = typer.Typer(
    name="mrirecon",
    rich_markup_mode="markdown",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _flags_without_a_type_column() -> None:
    """Typer 0.2x prints ``<bool>`` beside on/off flags (``--resume <bool>``), which reads as if the flag
    took a value; flags show no type instead. A no-op where Typer's internals differ."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - other Typer versions
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_mrirecon", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich._mrirecon = True
    TyperOption.display_type_rich = display_type_rich


_flags_without_a_type_column()

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_saved: list[str] = []


def saved(what: str | os.PathLike) -> None:
    """Record a finished output so that an interrupt can say what was kept."""
    _saved.append(str(what))


def info(message: str) -> None:
    """Progress/status line on stderr (stdout stays for tables and results)."""
    err_console.print(message)


def fail(message: str) -> None:
    """Raise the one-line user error for CLI-level checks."""
    raise MrireconError(message)


def _report_interrupt() -> None:
    err_console.print("[yellow]Interrupted.[/yellow]")
    if _saved:
        err_console.print("Saved before the interrupt:")
        for item in _saved:
            err_console.print(f"  {escape(item)}")
    else:
        err_console.print("Nothing was saved.")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]Warning:[/yellow] {escape(str(message))}")


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def command(name: str, *, epilog: str | None = None, **kwargs: Any) -> Callable:
    """Register a Typer command whose errors become ``Error: ...`` + exit code 2."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            _saved.clear()
            previous = warnings.showwarning
            warnings.showwarning = _show_warning
            try:
                return fn(*args, **kw)
            except MrireconError as exc:
                err_console.print(f"[bold red]Error:[/bold red] {escape(str(exc))}")
                raise typer.Exit(EXIT_USAGE) from None
            except KeyboardInterrupt:
                _report_interrupt()
                raise typer.Exit(EXIT_INTERRUPTED) from None
            except Exception as exc:
                if not _out_of_memory(exc):
                    raise
                err_console.print(
                    "[bold red]Error:[/bold red] out of memory; try fewer --slices or --samples, or another --device"
                )
                raise typer.Exit(1) from None
            finally:
                warnings.showwarning = previous

        return app.command(name, epilog=epilog, **kwargs)(run)

    return decorate


def examples(*lines: str) -> str:
    """Format an epilog (Markdown): an 'Examples' title and the commands in a code block."""
    body = "\n\n".join(f"$ {line}" for line in lines)
    return f"**Examples**\n\n```\n{body}\n```"


# --------------------------------------------------------------------------------------------
# argument parsing (syntax only; meaning is checked by the API)


def parse_shape(text: str, option: str = "--shape") -> tuple[int, int]:
    """``"320x320"`` / ``"640,320"`` -> (H, W)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise MrireconError(f"{option} must be HxW with positive integers, e.g. 320x320, got {text!r}") from None
    require(h > 0 and w > 0, f"{option} must be HxW with positive integers, got {text!r}")
    return h, w


def parse_list(text: str, option: str, kind: type = str) -> list:
    """Comma-separated list (``"4,8,12"``), converted with ``kind``; empty items dropped."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    require(items, f"{option} must list at least one value, got {text!r}")
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise MrireconError(f"{option} must be a comma-separated list of {kind.__name__}s, got {text!r}") from None


def existing_file(path: Path, what: str = "INPUT") -> Path:
    """Check a user-given input file exists (a one-line error otherwise); ``sample`` is the bundled scan."""
    if str(path) == "sample" and not path.exists():
        from mrirecon.assets import sample_scan_path

        return sample_scan_path()
    require(path.exists(), f"{what} '{path}' does not exist")
    require(path.is_file(), f"{what} '{path}' is not a file")
    return path


def output_path(path: Path, suffixes: tuple[str, ...], option: str, inputs=()) -> Path:
    """Check an output path before computing: suffix, writable folder, not one of ``inputs``."""
    from mrirecon.files import check_output

    return check_output(path, option, suffixes, inputs)


def start(device: str, threads: int | None) -> str:
    """Resolve ``--device`` (failing early), size the CPU thread pool, say both on stderr."""
    from mrirecon.devices import configure_threads, resolve_device

    dev = resolve_device(device)
    n = configure_threads(threads)
    info(f"[dim]device {dev}" + (f" ({device})" if device == "auto" else "") + f", {n} CPU thread(s)[/dim]")
    return str(dev)


# -- options shared by several commands --------------------------------------------------------

DEVICE_OPTION = typer.Option("auto", "--device", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")
THREADS_OPTION = typer.Option(
    None, "--threads", help="CPU threads (default: the free cores, at most 8; OMP_NUM_THREADS is honoured)."
)
SENS_OPTION = typer.Option(
    "auto",
    "--sens",
    help="Coil maps: auto (ESPIRiT adapted to the calibration lines, JSENSE below 5; direct maps instead when they predict held-out k-space lines better), espirit, direct, jsense, "
    "espirit-sigpy, or a maps file (.h5 from mrirecon sens, .npy, BART .cfl).",
)
CALIB_OPTION = typer.Option(None, "--calib", help="Coil-map calibration region HxW (default: the ACS, at most 32x24).")
KERNEL_OPTION = typer.Option(None, "--kernel", help="ESPIRiT kernel HxW (default: about half the region, at most 6).")
CROP_OPTION = typer.Option(
    None, "--crop", help="ESPIRiT eigenvalue crop of the map support, in [0, 1] (default 0.95; 0.8 with --maps 2)."
)
MAPS_OPTION = typer.Option(
    1, "--maps", min=1, max=2,
    help="Sets of ESPIRiT maps: 2 = soft-SENSE for an object larger than the field of view (classical methods; "
         "the priors use the first set).",
)  # fmt: skip
THRESHOLD_OPTION = typer.Option(None, "--threshold", help="ESPIRiT singular-value threshold, relative (default 0.02).")

# Defaults of the reconstruction options come from ReconSettings (written once, there).
STEPS_OPTION = typer.Option(DEFAULTS.steps, "--steps", help="Diffusion steps (network calls) per slice.")
SAMPLES_OPTION = typer.Option(
    DEFAULTS.n_samples, "--samples", help="Posterior samples per slice (> 1: their mean, and an uncertainty map)."
)
UPDATE_OPTION = typer.Option(
    DEFAULTS.update, "--update", help="Re-noising rule: reference (the AID code: fresh noise) or ddim (with --eta)."
)
ETA_OPTION = typer.Option(DEFAULTS.eta, "--eta", help="DDIM eta in [0, 1] (--update ddim; 0 = deterministic).")
DC_OPTION = typer.Option(DEFAULTS.dc, "--dc", help="Data consistency: cg (conjugate gradients, as DDS) or gradient (the AID code).")
DC_STEPS_OPTION = typer.Option(DEFAULTS.dc_steps, "--dc-steps", help="Data-consistency iterations per diffusion step (>= 1).")
FIRST_SLICE_OPTION = typer.Option(
    DEFAULTS.first_slice, "--first-slice",
    help="Slice 0 of an AID prior: auto (the UNet twin when known, else cold), twin, cold, or given (fully sampled).",
)  # fmt: skip
SPACING_OPTION = typer.Option(
    DEFAULTS.spacing, "--spacing", help="Timesteps of the --steps: skip (the AID code's), even, or quad (more near the clean end)."
)
SCHEDULE_OPTION = typer.Option(
    DEFAULTS.schedule, "--schedule",
    help="AID slices: sequential, or pipelined (a wavefront of slices --lag steps apart, batched network calls).",
)  # fmt: skip
LAG_OPTION = typer.Option(DEFAULTS.lag, "--lag", help="Steps between slice starts with --schedule pipelined (default: steps/4).")
METHOD_OPTION = typer.Option(
    None, "--method", help="Run a classical method instead of a prior: zero-filled, sense (CG-SENSE) or l1-wavelet."
)
LAM_OPTION = typer.Option(
    None, "--lam", help="sense: Tikhonov weight; l1-wavelet: weight relative to max|A^H y| (default: chosen per scan by k-space hold-out, see docs/user_guide.md)."
)
ITERS_OPTION = typer.Option(None, "--iters", help="sense / l1-wavelet iterations (default 50 / 100).")


def sens_options(calib: str | None, kernel: str | None, threshold: float | None, crop: float | None, maps: int = 1) -> dict[str, Any]:
    """The coil-map estimator options the user set, for :func:`mrirecon.recon.reconstruct` (the rest: its defaults)."""
    out: dict[str, Any] = {}
    if threshold is not None:
        out["threshold"] = threshold
    if crop is not None:
        out["crop"] = crop
    if maps != 1:
        out["sets"] = maps
    if calib is not None:
        out["calib"] = parse_shape(calib, "--calib")
    if kernel is not None:
        out["kernel"] = parse_shape(kernel, "--kernel")
    return out


def sens_source(sens: str, inputs=()) -> str:
    """A ``--sens`` value: a method name as is, or an existing maps file (checked)."""
    from mrirecon.physics.coils import SENS_METHODS

    if sens in SENS_METHODS:
        return sens
    path = Path(sens)
    require(
        path.exists() or path.with_suffix(".cfl").exists(),
        f"--sens must be one of {', '.join(SENS_METHODS)} or an existing maps file, got {sens!r}",
    )
    return str(path)


def recon_settings(**options: Any):
    """The :class:`~mrirecon.recon.ReconSettings` of a command's options (checked once, before any work)."""
    from mrirecon.recon.settings import ReconSettings

    if options.get("schedule") != "pipelined" and options.get("lag") is not None:
        raise MrireconError("--lag is the pipelined schedule's: add --schedule pipelined")
    return ReconSettings(**options)


def method_and_prior(method: str | None, prior: str) -> tuple[str | None, str | None]:
    """``--method`` / ``--prior`` -> (classical method or None, prior spec or None); ``--prior sense`` still works."""
    from mrirecon.recon import CLASSICAL_METHODS

    if method is not None:
        require(method in CLASSICAL_METHODS, f"--method must be one of {', '.join(CLASSICAL_METHODS)}, got {method!r}")
        return method, None
    if prior in CLASSICAL_METHODS:
        warnings.warn(f"--prior {prior} is deprecated for classical methods: use --method {prior}", FutureWarning, stacklevel=2)
        return prior, None
    return None, prior


def read_mask_file(path: Path, shape: tuple[int, int] | None = None):
    """A ``--mask-file`` (.npy, real 0/1, (W,) or (H, W)) as float32, with one-line errors."""
    import numpy as np

    existing_file(path, "--mask-file")
    require(path.suffix.lower() == ".npy", f"--mask-file must be a .npy file (from mrirecon mask), got '{path}'")
    from mrirecon.files import read_npy

    m = read_npy(path, f"--mask-file '{path}'")
    require(m.dtype.kind in "biuf", f"--mask-file '{path}' must be real 0/1 values, got dtype {m.dtype}")
    require(m.ndim in (1, 2) and m.size > 0, f"--mask-file '{path}' must be (W,) or (H, W), got shape {m.shape}")
    require(bool(np.isin(m, (0, 1)).all()), f"--mask-file '{path}' must hold only 0 and 1 values")
    if shape is not None:
        require(
            m.shape[-1] == shape[1] and (m.ndim == 1 or m.shape[0] in (shape[0],) or bool(np.all(m == m[:1]))),
            f"--mask-file '{path}' has shape {m.shape}; this scan needs (W,) = ({shape[1]},) or (H, W) = {shape}",
        )
    return m.astype(np.float32)
