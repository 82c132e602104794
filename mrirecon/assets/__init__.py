"""Files that ship inside the package: the default priors, their model card, the sample scan."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from mrirecon.errors import require

__all__ = ["sample_scan_path"]


def sample_scan_path() -> Path:
    """The bundled sample scan (``mrirecon/assets/sample_scan.h5``, fastMRI multi-coil layout)."""
    path = Path(str(files("mrirecon.assets") / "sample_scan.h5"))
    require(path.is_file(), f"the bundled sample scan {path} is missing; reinstall mrirecon")
    return path
