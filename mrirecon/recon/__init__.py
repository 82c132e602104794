"""Reconstruction: the diffusion posterior sampler, the ``reconstruct`` API, classical baselines.

* :func:`reconstruct` / :func:`reconstruct_file`: k-space (or a fastMRI file) -> :class:`ReconResult`,
  with the options of :class:`ReconSettings` (:mod:`.settings`, where every default is written).
* :class:`PosteriorSampler`: slice-by-slice, pipelined (AID) or batched (UNet) posterior sampling
  (:mod:`.sampler`).
* :mod:`.steps`: the update rules (reference "predict, project, re-noise" and DDIM).
* :mod:`.intensity`: the factor taking the data into the prior's range.
* :func:`generate_sequence`: prior-only sequence generation (``mrirecon sample``).
* :mod:`.classical`: zero-filled, CG-SENSE and L1-wavelet baselines on ``(A, y)``.
* :mod:`.methods`: the classical method names and display labels.

Names are imported on first use, so reading :data:`~mrirecon.recon.settings.DEFAULTS` (the CLI
does at start-up) does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ReconResult": "api", "reconstruct": "api", "reconstruct_file": "api", "reconstruct_sweep": "api",
    "generate_sequence": "generate",
    "CLASSICAL_METHODS": "methods", "method_label": "methods",
    "DataConsistency": "sampler", "PosteriorSampler": "sampler",
    "DEFAULTS": "settings", "ReconSettings": "settings",
    "DDIMUpdate": "steps", "ReferenceUpdate": "steps", "StepSchedule": "steps", "make_update": "steps",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mrirecon.recon' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mrirecon.recon.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
