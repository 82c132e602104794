"""MRI physics: FFTs, the multi-coil operator, coil sensitivities and sampling masks.

* :mod:`.fft`: centred orthonormal FFTs, crop/pad, complex <-> (real, imag) channels.
* :mod:`.operators`: :class:`SenseOp`, ``A x = M ⊙ F(S ⊙ x)`` with adjoint and normal operator.
* :mod:`.linop`: linear operators with shapes, adjoint, normal operator, composition; Crop/Pad.
* :mod:`.coils`: the calibration policy (:func:`calibrate`), ESPIRiT (torch, :mod:`.espirit`;
  or SigPy), JSENSE and direct sensitivities, RSS and SENSE-1 coil combination.
* :mod:`.masks`: random / equispaced (fastMRI or AID conventions), Poisson-disc and Gaussian masks.

Nothing here knows about diffusion models. SigPy and fastMRI are imported only by the
functions that use them.
"""

from mrirecon.physics.coils import (
    Calibration,
    acs_width,
    calib_region,
    calibrate,
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
from mrirecon.physics.linop import Compose, Crop, Identity, LinearOperator, Pad
from mrirecon.physics.operators import SenseOp

__all__ = [
    "Calibration",
    "MASK_KINDS",
    "Mask",
    "Compose",
    "Crop",
    "Identity",
    "LinearOperator",
    "Pad",
    "SenseOp",
    "acs_width",
    "calib_region",
    "calibrate",
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
