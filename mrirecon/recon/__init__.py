"""Reconstruction: the diffusion posterior sampler, the ``reconstruct`` API, classical baselines.

* :func:`reconstruct` / :func:`reconstruct_file`: k-space (or a fastMRI file) -> :class:`ReconResult`.
* :class:`AIDSampler`, :class:`UNetSampler`: slice-by-slice posterior sampling (:mod:`.sampler`).
* :mod:`.steps`: the update rules (reference "predict, project, re-noise" and DDIM).
* :func:`generate_sequence`: prior-only sequence generation (``mrirecon sample``).
* :mod:`.classical`: zero-filled, SENSE-CG and L1-wavelet baselines.
"""

from mrirecon.recon.api import CLASSICAL_METHODS, ReconResult, reconstruct, reconstruct_file
from mrirecon.recon.generate import generate_sequence
from mrirecon.recon.sampler import AIDSampler, DataConsistency, UNetSampler, VolumeData, make_sampler
from mrirecon.recon.steps import DDIMUpdate, ReferenceUpdate, StepSchedule, make_update

__all__ = [
    "AIDSampler",
    "CLASSICAL_METHODS",
    "DDIMUpdate",
    "DataConsistency",
    "ReconResult",
    "ReferenceUpdate",
    "StepSchedule",
    "UNetSampler",
    "VolumeData",
    "generate_sequence",
    "make_sampler",
    "make_update",
    "reconstruct",
    "reconstruct_file",
]
