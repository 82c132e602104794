"""Typer application behind the ``mrirecon`` command.

Each command lives in a module of this package (``data``: convert/info/mask/sens, ``recon``:
recon/demo, ``evaluate``, ``prior``: priors/train/sample); importing them registers them on
:data:`app` in the order they appear in ``mrirecon --help``.
"""

from __future__ import annotations

import typer

from mrirecon.cli._common import app, console
from mrirecon.cli import recon as _recon  # noqa: F401  (registers demo, recon)
from mrirecon.cli import evaluate as _evaluate  # noqa: F401  (registers evaluate)
from mrirecon.cli import data as _data  # noqa: F401  (registers convert, info, mask, sens)
from mrirecon.cli import prior as _prior  # noqa: F401  (registers priors, train, sample)

__all__ = ["app"]


def _print_version(value: bool) -> None:
    if value:
        from mrirecon import __version__

        console.print(f"mrirecon {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Accelerated MRI reconstruction with autoregressive image diffusion (AID) priors.

    Start with **mrirecon demo**. Every command has --help with examples.
    """


if __name__ == "__main__":
    app(prog_name="mrirecon")
