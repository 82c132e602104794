"""Data I/O and simulation: fastMRI HDF5 files, BART cfl files, simulated multi-coil scans.

* :mod:`mrirecon.data.fastmri`: :func:`open_scan` (lazy per-slice reading into a :class:`Scan`),
  :func:`write_reconstruction` (fastMRI submission layout), :func:`write_fastmri_scan`.
* :mod:`mrirecon.data.cfl`: :func:`read_cfl` / :func:`write_cfl` (BART).
* :mod:`mrirecon.data.simulate`: :func:`simulate_scan` turns a magnitude volume into a
  realistic multi-coil scan; :func:`phantom_volume` is a tiny test volume.
"""

from mrirecon.data.cfl import read_cfl, write_cfl
from mrirecon.data.fastmri import (
    Scan,
    ScanHeader,
    make_ismrmrd_header,
    open_scan,
    parse_ismrmrd_header,
    write_fastmri_scan,
    write_reconstruction,
)
from mrirecon.data.simulate import (
    SimulatedScan,
    phantom_volume,
    rss_reference,
    simulate_scan,
    write_simulated,
)

__all__ = [
    "Scan",
    "ScanHeader",
    "SimulatedScan",
    "make_ismrmrd_header",
    "open_scan",
    "parse_ismrmrd_header",
    "phantom_volume",
    "read_cfl",
    "rss_reference",
    "simulate_scan",
    "write_cfl",
    "write_fastmri_scan",
    "write_reconstruction",
    "write_simulated",
]
