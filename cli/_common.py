"""Shared pieces of the command line: the Typer app, error handling, argument parsers.

Error policy (every command): bad input raises :class:`~mrirecon.errors.MrireconError` in the
Python API (or here, for CLI-only syntax); :func:`command` catches it and prints one red line
``Error: ...`` on stderr, exit status 2. Ctrl-C prints the files already written (commands
record them with :func:`saved`) and exits with 130.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import typer
from rich.console import Console
from rich.markup import escape

from mrirecon.errors import MrireconError, require

app = typer.Typer(
    name="mrirecon",
    rich_markup_mode="markdown",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

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


def command(name: str, *, epilog: str | None = None, **kwargs: Any) -> Callable:
    """Register a Typer command whose errors become ``Error: ...`` + exit code 2."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            _saved.clear()
            try:
                return fn(*args, **kw)
            except MrireconError as exc:
                err_console.print(f"[bold red]Error:[/bold red] {escape(str(exc))}")
                raise typer.Exit(EXIT_USAGE) from None
            except KeyboardInterrupt:
                _report_interrupt()
                raise typer.Exit(EXIT_INTERRUPTED) from None
            except (MemoryError, torch.cuda.OutOfMemoryError):
                err_console.print(
                    "[bold red]Error:[/bold red] out of memory; try fewer --slices or --samples, or another --device"
                )
                raise typer.Exit(1) from None

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
    """Check a user-given input file exists (a one-line error otherwise)."""
    require(path.exists(), f"{what} '{path}' does not exist")
    require(path.is_file(), f"{what} '{path}' is not a file")
    return path


def output_path(path: Path, suffixes: tuple[str, ...], option: str) -> Path:
    """Check an output path's suffix and that its folder can be created."""
    require(
        path.suffix.lower() in suffixes,
        f"{option} must end with {' or '.join(suffixes)}, got '{path}'",
    )
    require(not path.is_dir(), f"{option} '{path}' is a directory; give a file name")
    return path


def check_device(device: str) -> str:
    """Fail early (before loading data) if ``--device`` cannot be used."""
    from mrirecon.distributed import resolve_device

    return str(resolve_device(device))


# -- sampler options shared by recon, demo and evaluate (None = the Python API's default) ----------

UPDATE_OPTION = typer.Option(
    None, "--update", help="Re-noising rule: reference (the AID code: fresh noise) or ddim (with --eta)."
)
ETA_OPTION = typer.Option(None, "--eta", help="DDIM eta in [0, 1] (--update ddim; 0 = deterministic).")
DC_OPTION = typer.Option(
    None, "--dc", help="Data consistency: gradient (the AID code's steps) or cg (conjugate gradients, as DDS)."
)
DC_STEPS_OPTION = typer.Option(None, "--dc-steps", help="Data-consistency iterations per diffusion step.")


def sampler_options(update: str | None, eta: float | None, dc: str | None, dc_steps: int | None) -> dict[str, Any]:
    """The sampler keywords the user set, for :func:`mrirecon.recon.reconstruct`."""
    given = {"update": update, "eta": eta, "dc": dc, "dc_steps": dc_steps}
    return {k: v for k, v in given.items() if v is not None}
