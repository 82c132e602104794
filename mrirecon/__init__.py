"""mrirecon: accelerated MRI reconstruction with autoregressive image diffusion (AID) priors.

The most used entry points are re-exported here (imported lazily, so ``import mrirecon``
stays cheap)::

    import mrirecon
    res = mrirecon.reconstruct(kspace, mask, prior="default", seed=0)
    prior = mrirecon.load_prior("default")
    mask = mrirecon.make_mask("equispaced", (320, 320), 4, seed=0)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "reconstruct": "mrirecon.recon",
    "reconstruct_file": "mrirecon.recon",
    "ReconResult": "mrirecon.recon",
    "generate_sequence": "mrirecon.recon",
    "load_prior": "mrirecon.prior",
    "make_mask": "mrirecon.physics.masks",
    "estimate_sens": "mrirecon.physics.coils",
    "SenseOp": "mrirecon.physics.operators",
    "open_scan": "mrirecon.data.fastmri",
    "evaluate": "mrirecon.metrics",
    "MrireconError": "mrirecon.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mrirecon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
