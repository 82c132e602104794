"""Data: fastMRI files, their preparation for reconstruction, coil-map files, simulation, phantoms.

* :mod:`mrirecon.data.fastmri`: :func:`open_scan` (lazy per-slice reading into a :class:`Scan`),
  :func:`write_reconstruction` (fastMRI submission layout), :func:`write_fastmri_scan`.
* :mod:`mrirecon.data.scan`: :func:`prepare_scan` (one readout-crop rule, acquired or
  retrospective mask, reference, pixel size) used by recon, evaluate, ``sens`` and training.
* :mod:`mrirecon.data.volumes`: image volumes (fastMRI coil-combined, ``.npy``, NIfTI) for
  training and ``mrirecon sample``.
* :mod:`mrirecon.data.maps`: coil maps from files (``mrirecon sens``, ``.npy``, BART).
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
from mrirecon.data.maps import read_maps
from mrirecon.data.scan import (
    PreparedScan,
    crop_readout,
    detect_mask,
    mask_seed,
    parse_slices,
    prepare_scan,
    retrospective_mask,
)
from mrirecon.data.simulate import (
    SimulatedScan,
    phantom_volume,
    rss_reference,
    simulate_scan,
    write_simulated,
)

__all__ = [
    "PreparedScan",
    "Scan",
    "ScanHeader",
    "SimulatedScan",
    "crop_readout",
    "detect_mask",
    "make_ismrmrd_header",
    "mask_seed",
    "open_scan",
    "parse_ismrmrd_header",
    "parse_slices",
    "phantom_volume",
    "prepare_scan",
    "read_cfl",
    "read_maps",
    "retrospective_mask",
    "rss_reference",
    "simulate_scan",
    "write_cfl",
    "write_fastmri_scan",
    "write_reconstruction",
    "write_simulated",
]
