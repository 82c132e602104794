"""Turn magnitude image volumes into realistic multi-coil fastMRI-style scans.

No raw k-space can be downloaded here, so tests, examples and the bundled prior's
evaluation data are simulated. The forward model, per slice ``s`` and coil ``c``::

    x_s       = m_s * exp(i phi_s)                       true complex image, (H, W)
    y_{s,c}   = F( P( S_c * x_s ) ) + n_{s,c}            k-space, (oversample*H, W)

* ``m_s``: the given magnitude slice (H = readout, W = phase encode).
* ``phi_s``: a smooth synthetic phase, a seeded random low-order polynomial in (x, y) whose
  coefficients drift linearly across slices (B0/receive phase varies slowly in reality, and a
  magnitude-only object would let reconstructions cheat with real-valued priors).
* ``S_c``: birdcage coil sensitivities (``sigpy.mri.birdcage_maps``, coils on a circle of
  relative radius ``coil_radius`` around the FOV). SigPy normalises them so that
  ``sum_c |S_c|^2 = 1`` at every pixel: the convention of ``mrirecon.physics`` and what ESPIRiT
  estimates, so the noise-free RSS equals ``|x_s|``. Other maps can be passed in.
* ``P``: zero-padding of the readout to ``oversample * H`` (the object fills the central H
  rows of a 2x wider readout FOV, as in fastMRI where a 640 readout is cropped to 320).
* ``F``: centred orthonormal 2-D FFT (:func:`mrirecon.physics.fft.fft2c`).
* ``n``: circular complex Gaussian noise, ``E|n|^2 = sigma^2``, with
  ``snr_db = 10 log10(P_signal / sigma^2)`` where ``P_signal`` is the mean power of the
  noise-free coil images over the reconstructed FOV (all slices, coils, H x W pixels; by
  Parseval ``sum |F(.)|^2 / (S C H W)``). The FFT is orthonormal, so image-domain noise has
  the same sigma: ``snr_db`` is the per-coil image SNR (power) over the FOV.

The reference is computed exactly as fastMRI computes ``reconstruction_rss``: ``ifft2c`` of
each coil's (noisy, fully sampled) k-space, centre crop to (H, W), root-sum-of-squares.

Inverse crime. Simulating with the same discrete model a reconstruction inverts flatters
every method. With ``fine_grid=True`` the given images are taken to sample the object on a
2x finer grid than the scan: phase and coil maps are evaluated on that grid, the coil images
are transformed there, and only the central k-space block is kept (an ideal low-pass and
downsample by 2 in both directions). The scan then has image size (H/2, W/2), its data hold
the truncation and coil/phase products a discrete reconstruction cannot invert exactly, and
``image`` is the band-limited truth at the scan's resolution. Interpolating a given image
up instead would blur the truth by the interpolation kernel, so that is not done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.data.fastmri import make_ismrmrd_header, write_fastmri_scan
from mrirecon.errors import as_numeric_array, require
from mrirecon.physics.fft import center_crop, center_pad, fft2c, ifft2c

__all__ = ["SimulatedScan", "phantom_volume", "rss_reference", "simulate_scan", "write_simulated"]

_PHASES = ("smooth", "none")


@dataclass
class SimulatedScan:
    """A simulated fully sampled multi-coil acquisition.

    (H, W) below is the scan's image size: that of the input images, or half of it with
    ``fine_grid``.

    Attributes
    ----------
    kspace : ndarray (S, C, oversample*H, W) complex64
        Noisy fully sampled k-space (readout oversampled).
    reference_rss : ndarray (S, H, W) float32
        fastMRI-style RSS reference computed from ``kspace``.
    image : ndarray (S, H, W) complex64
        The true complex image ``m * exp(i phi)`` (band-limited truth with ``fine_grid``).
    maps : ndarray (S, C, H, W) complex64
        Coil sensitivities on the reconstructed (H, W) grid.
    phase : ndarray (S, H, W) float32
        The synthetic phase in radians (zeros for ``phase="none"``).
    noise_std : float
        Standard deviation of the complex k-space noise, ``E|n|^2 = noise_std^2``.
    snr_db : float or None
        Requested SNR (None: noise-free).
    oversample : int
    seed : int
    fine_grid : bool
    header_xml : str
        ismrmrd-style header (encoded (oversample*H, W), recon (H, W)).
    """

    kspace: np.ndarray
    reference_rss: np.ndarray
    image: np.ndarray
    maps: np.ndarray
    phase: np.ndarray
    noise_std: float
    snr_db: float | None
    oversample: int
    seed: int
    fine_grid: bool
    header_xml: str

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """k-space shape ``(S, C, oversample*H, W)``."""
        return tuple(self.kspace.shape)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# helpers


def rss_reference(kspace: np.ndarray, recon_size: tuple[int, int]) -> np.ndarray:
    """fastMRI's ``reconstruction_rss``: per-coil ``ifft2c``, centre crop, root-sum-of-squares.

    Parameters
    ----------
    kspace : ndarray (S, C, Hk, Wk) complex
        Fully sampled multi-coil k-space.
    recon_size : (H, W)
        Crop size (removes the readout oversampling).

    Returns
    -------
    ndarray (S, H, W) float32
    """
    require(kspace.ndim == 4, f"kspace must be (slices, coils, kx, ky), got shape {kspace.shape}")
    coil_images = center_crop(ifft2c(np.asarray(kspace, dtype=np.complex64)), tuple(recon_size))
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=1)).astype(np.float32)


def _grid(n: int) -> np.ndarray:
    """Pixel coordinates ``(i - n/2) / (n/2)`` in [-1, 1), as SigPy's birdcage maps use.

    For even n the centre pixel (index n//2) is at 0, and pixel 2i of a 2n grid sits at pixel
    i of the n grid, so fields sampled on the fine grid subsample exactly.
    """
    return (np.arange(n) - n / 2.0) / (n / 2.0)


def _phase_coefficients(rng: np.random.Generator, slices: int) -> np.ndarray:
    """Coefficients (S, 6) of a random low-order polynomial phase drifting across slices.

    ``phi(z, y, x) = sum_{i+j<=2} (a_ij + z b_ij) x^i y^j`` with a uniform constant offset,
    linear terms of about pi/2 and quadratic terms of about pi/4 across the FOV, and a drift of
    about 0.2 rad per term from the first to the last slice (z in [-1/2, 1/2]).
    """
    std = np.array([0.0, np.pi / 2, np.pi / 2, np.pi / 4, np.pi / 4, np.pi / 4])
    a = rng.normal(0.0, 1.0, std.size) * std
    a[0] = rng.uniform(-np.pi, np.pi)
    b = rng.normal(0.0, 0.2, std.size)
    z = np.linspace(-0.5, 0.5, slices) if slices > 1 else np.zeros(1)
    return a[None, :] + z[:, None] * b[None, :]


def _phase_map(coef: np.ndarray, h: int, w: int) -> np.ndarray:
    """Evaluate the polynomial phase (S, h, w) in radians."""
    y, x = np.meshgrid(_grid(h), _grid(w), indexing="ij")
    basis = np.stack([np.ones_like(x), x, y, x**2, x * y, y**2])  # order of _phase_coefficients
    return np.einsum("sk,khw->shw", coef, basis)


def _positive_int(value, name: str) -> int:
    require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
        f"{name} must be a positive integer, got {value!r}",
    )
    return int(value)


# --------------------------------------------------------------------------------------------
# simulation


def simulate_scan(
    images,
    *,
    coils: int | None = None,
    snr_db: float | None = 30.0,
    oversample: int = 2,
    phase: str = "smooth",
    seed: int = 0,
    coil_maps=None,
    coil_radius: float = 1.5,
    fine_grid: bool = False,
) -> SimulatedScan:
    """Simulate a fully sampled multi-coil scan of a magnitude image volume.

    Parameters
    ----------
    images : array (S, H, W)
        Non-negative magnitude volume, H = readout, W = phase encode (numpy or torch).
        A complex volume is accepted as the true image (``phase`` is then added to its own).
    coils : int, optional
        Number of birdcage coils (default 8). With ``coil_maps`` it is inferred from them.
    snr_db : float or None
        Per-coil image SNR over the FOV in dB (module docstring); None gives noise-free data.
    oversample : int
        Readout oversampling factor: k-space has ``oversample * h`` readout samples.
    phase : {"smooth", "none"}
        Synthetic smooth phase or none.
    seed : int
        Seeds the phase and the noise (independent streams: changing ``snr_db`` keeps the
        phase). Equal arguments reproduce the scan bit for bit.
    coil_maps : array (C, H, W) or (S, C, H, W) complex, optional
        Sensitivities to use instead of birdcage maps, on the grid of ``images``.
    coil_radius : float
        Birdcage radius relative to the FOV half-width (SigPy's ``r``).
    fine_grid : bool
        Treat ``images`` as a 2x finer grid than the scan and crop k-space (avoids the inverse
        crime; needs even H and W). The scan's image size (h, w) is then (H/2, W/2), else (H, W).

    Returns
    -------
    SimulatedScan
        ``kspace`` (S, C, oversample*h, w) complex64, ``reference_rss`` (S, h, w) float32,
        ``image`` (S, h, w) complex64, ``maps`` (S, C, h, w) complex64, ...
    """
    img = as_numeric_array(images, "images")
    require(
        img.ndim == 3,
        f"images must be a volume (slices, H, W), got shape {img.shape} (use x[None] for one slice)",
    )
    require(min(img.shape) > 0, f"images is empty, shape {img.shape}")
    if img.dtype.kind != "c":
        require(float(img.min()) >= 0, "images must be a non-negative magnitude volume (got negative values)")
    require(phase in _PHASES, f"phase must be one of {', '.join(_PHASES)}, got {phase!r}")
    oversample = _positive_int(oversample, "oversample")
    require(
        isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0,
        f"seed must be a non-negative integer, got {seed!r}",
    )
    if snr_db is not None:
        require(
            isinstance(snr_db, (int, float, np.floating, np.integer)) and bool(np.isfinite(snr_db)),
            f"snr_db must be a finite number or None, got {snr_db!r}",
        )
    require(
        isinstance(coil_radius, (int, float)) and coil_radius > 1.0,
        f"coil_radius must be > 1 (coils outside the FOV), got {coil_radius!r}",
    )
    S, H, W = img.shape
    if fine_grid:
        require(H % 2 == 0 and W % 2 == 0, f"fine_grid needs even image sizes, got (H, W) = ({H}, {W})")
        h, w = H // 2, W // 2
    else:
        h, w = H, W
    Hk = oversample * h

    phase_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))

    # coil maps on the grid of `images` (sim) and on the scan's grid (native)
    if coil_maps is None:
        import sigpy.mri  # imported here: sigpy (numba) costs ~1 s, readers should not pay it

        ncoil = 8 if coils is None else _positive_int(coils, "coils")
        maps_sim = sigpy.mri.birdcage_maps((ncoil, H, W), r=coil_radius, dtype=np.complex128)[None]
    else:
        cm = as_numeric_array(coil_maps, "coil_maps")
        require(
            cm.ndim in (3, 4) and cm.shape[-2:] == (H, W) and (cm.ndim == 3 or cm.shape[0] == S),
            f"coil_maps must be (coils, {H}, {W}) or ({S}, coils, {H}, {W}), got shape {cm.shape}",
        )
        maps_sim = (cm[None] if cm.ndim == 3 else cm).astype(np.complex128)
        ncoil = maps_sim.shape[1]
        require(
            coils is None or coils == ncoil,
            f"coils={coils} disagrees with coil_maps, which has {ncoil} coils",
        )
    maps_native = maps_sim[..., ::2, ::2] if fine_grid else maps_sim

    if phase == "smooth":
        phi_sim = _phase_map(_phase_coefficients(phase_rng, S), H, W)
    else:
        phi_sim = np.zeros((S, H, W))
    phi_native = phi_sim[..., ::2, ::2] if fine_grid else phi_sim
    obj = img.astype(np.complex128) * np.exp(1j * phi_sim)  # (S, H, W)
    # complex64 from here on: a 16-slice, 16-coil 640x320 scan is 0.4 GB per copy
    coil_images = torch.from_numpy(maps_sim.astype(np.complex64) * obj.astype(np.complex64)[:, None])

    if fine_grid:
        # Transform on the fine grid (readout padded to the oversampled FOV) and keep the
        # central (Hk, w) block. With orthonormal FFTs, going from N' = 4N to N samples
        # rescales by sqrt(N / N') = 1/2.
        def to_scan_kspace(x: torch.Tensor) -> torch.Tensor:
            return center_crop(fft2c(center_pad(x, (2 * Hk, W))), (Hk, w)) * 0.5

        kspace = to_scan_kspace(coil_images).numpy()
        image = center_crop(ifft2c(to_scan_kspace(torch.from_numpy(obj.astype(np.complex64)))), (h, w)).numpy()
    else:
        kspace = fft2c(center_pad(coil_images, (Hk, w))).numpy()
        image = obj

    noise_std = 0.0
    if snr_db is not None:
        signal_power = float(np.vdot(kspace, kspace).real) / (S * ncoil * h * w)
        require(signal_power > 0, "images is all zero: an SNR cannot be set")
        noise_std = float(np.sqrt(signal_power / 10 ** (float(snr_db) / 10)))
        noise = noise_rng.standard_normal((2,) + kspace.shape, dtype=np.float32)
        kspace += np.float32(noise_std / np.sqrt(2)) * (noise[0] + 1j * noise[1])
        del noise
    kspace = kspace.astype(np.complex64, copy=False)

    return SimulatedScan(
        kspace=kspace,
        reference_rss=rss_reference(kspace, (h, w)),
        image=np.asarray(image).astype(np.complex64),
        maps=np.broadcast_to(maps_native, (S, ncoil, h, w)).astype(np.complex64),
        phase=np.asarray(phi_native, dtype=np.float32),
        noise_std=noise_std,
        snr_db=None if snr_db is None else float(snr_db),
        oversample=oversample,
        seed=int(seed),
        fine_grid=bool(fine_grid),
        header_xml=make_ismrmrd_header((Hk, w), (h, w), coils=ncoil, slices=S),
    )


def write_simulated(
    path: str | os.PathLike,
    sim: SimulatedScan,
    acquisition: str = "AXT1",
    patient_id: str | None = None,
    attrs: dict | None = None,
):
    """Write a :class:`SimulatedScan` as a fastMRI multi-coil file.

    Datasets ``kspace``, ``reconstruction_rss``, ``ismrmrd_header``; attrs ``acquisition``,
    ``max``, ``norm``, ``patient_id`` (default ``"sim-seed<seed>"``), plus the simulation
    settings (``simulated``, ``snr_db``, ``noise_std``, ``seed``, ``fine_grid``) so a file
    says where it came from. Returns the path.
    """
    require(isinstance(sim, SimulatedScan), f"sim must be a SimulatedScan, got {type(sim).__name__}")
    meta = {
        "acquisition": str(acquisition),
        "patient_id": patient_id if patient_id is not None else f"sim-seed{sim.seed}",
        "simulated": True,
        "snr_db": float("inf") if sim.snr_db is None else sim.snr_db,
        "noise_std": sim.noise_std,
        "seed": sim.seed,
        "fine_grid": sim.fine_grid,
    }
    meta.update(attrs or {})
    return write_fastmri_scan(path, sim.kspace, sim.reference_rss, sim.header_xml, meta)


# --------------------------------------------------------------------------------------------
# phantom


def phantom_volume(slices: int = 4, H: int = 64, W: int = 64, seed: int = 0) -> np.ndarray:
    """A small Shepp-Logan volume with slice-to-slice variation, for tests and examples.

    Each slice is SigPy's 2-D Shepp-Logan drawn at a smaller size and zero-padded to (H, W):
    the in-plane scale follows an ellipsoidal profile (largest in the middle slice, 70 % at
    the ends, like axial slices through a head), with a seeded shift of up to 2 pixels and a
    seeded intensity factor in [0.85, 1] per slice.

    Returns
    -------
    ndarray (slices, H, W) float32, values in [0, 1]
    """
    slices = _positive_int(slices, "slices")
    H = _positive_int(H, "H")
    W = _positive_int(W, "W")
    require(H >= 8 and W >= 8, f"phantom_volume needs H, W >= 8, got ({H}, {W})")
    import sigpy  # see simulate_scan

    rng = np.random.default_rng(seed)
    z = np.linspace(-1.0, 1.0, slices) if slices > 1 else np.zeros(1)
    out = np.zeros((slices, H, W), dtype=np.float32)
    for s in range(slices):
        f = np.sqrt(1.0 - 0.51 * z[s] ** 2)  # 1 at the centre, 0.7 at the ends
        h, w = max(4, int(round(f * H))), max(4, int(round(f * W)))
        sl = np.abs(sigpy.shepp_logan((h, w), dtype=np.complex64)).astype(np.float32)
        sl = center_pad(sl, (H, W))
        dy, dx = rng.integers(-2, 3, size=2)
        sl = np.roll(sl, (int(dy), int(dx)), axis=(0, 1))
        out[s] = sl * rng.uniform(0.85, 1.0)
    return np.clip(out, 0.0, 1.0)

