"""Reconstruction: the diffusion posterior sampler, the ``reconstruct`` API, classical baselines.

* :func:`reconstruct` / :func:`reconstruct_file`: k-space (or a fastMRI file) -> :class:`ReconResult`,
  with the options of :class:`ReconSettings`.
* :class:`PosteriorSampler`: slice-by-slice (AID) or batched (UNet) posterior sampling (:mod:`.sampler`).
* :mod:`.steps`: the update rules (reference "predict, project, re-noise" and DDIM).
* :mod:`.intensity`: the factor taking the data into the prior's range.
* :func:`generate_sequence`: prior-only sequence generation (``mrirecon sample``).
* :mod:`.classical`: zero-filled, CG-SENSE and L1-wavelet baselines on ``(A, y)``.
* :mod:`.methods`: method names and how a ``--prior`` spec resolves.
"""

from mrirecon.recon.api import ReconResult, reconstruct, reconstruct_file
from mrirecon.recon.generate import generate_sequence
from mrirecon.recon.methods import CLASSICAL_METHODS, method_label, resolve_method
from mrirecon.recon.sampler import DataConsistency, PosteriorSampler
from mrirecon.recon.settings import ReconSettings
from mrirecon.recon.steps import DDIMUpdate, ReferenceUpdate, StepSchedule, make_update

__all__ = [
    "CLASSICAL_METHODS",
    "DDIMUpdate",
    "DataConsistency",
    "PosteriorSampler",
    "ReconResult",
    "ReconSettings",
    "ReferenceUpdate",
    "StepSchedule",
    "generate_sequence",
    "make_update",
    "method_label",
    "reconstruct",
    "reconstruct_file",
    "resolve_method",
]
