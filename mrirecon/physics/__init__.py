"""MRI physics: FFTs, the multi-coil operator, coil sensitivities and sampling masks.

* :mod:`.fft`: centred orthonormal FFTs, crop/pad, complex <-> (real, imag) channels.
* :mod:`.operators`: :class:`SenseOp`, ``A x = M ⊙ F(S ⊙ x)`` with adjoint and normal operator.
* :mod:`.coils`: ESPIRiT (SigPy) and direct (BART ``caldir``-like) sensitivities, RSS and
  SENSE-1 coil combination.
* :mod:`.masks`: random / equispaced (fastMRI or AID conventions), Poisson-disc and Gaussian masks.

Nothing here knows about diffusion models. SigPy and fastMRI are imported only by the
functions that use them.
"""

from mrirecon.physics.coils import (
    acs_width,
    calib_region,
    direct_maps,
    espirit_maps,
    estimate_sens,
    rss,
    sense_combine,
)
from mrirecon.physics.fft import (
    center_crop,
    center_pad,
    channels_to_complex,
    complex_to_channels,
    fft2c,
    ifft2c,
)
from mrirecon.physics.masks import (
    KINDS as MASK_KINDS,
    Mask,
    equispaced_mask,
    gaussian_mask,
    make_mask,
    poisson_mask,
    random_mask,
)
from mrirecon.physics.operators import SenseOp

__all__ = [
    "MASK_KINDS",
    "Mask",
    "SenseOp",
    "acs_width",
    "calib_region",
    "center_crop",
    "center_pad",
    "channels_to_complex",
    "complex_to_channels",
    "direct_maps",
    "equispaced_mask",
    "espirit_maps",
    "estimate_sens",
    "fft2c",
    "gaussian_mask",
    "ifft2c",
    "make_mask",
    "poisson_mask",
    "random_mask",
    "rss",
    "sense_combine",
]
