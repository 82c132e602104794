"""The Python API end to end: prepare a fastMRI file, undersample it, reconstruct, measure, save.

    python examples/pipeline.py                       # the bundled sample scan, bundled priors
    python examples/pipeline.py --input file_brain_AXT1POST_200_6002026.h5 --steps 100 --device cuda
    python examples/pipeline.py --prior fastmri_320_cplx.yaml:fastmri_320_cplx.pt   # official AID weights

Each step is one call of the public API; the command ``mrirecon recon`` does the same.
Writes ``OUT/comparison.png`` and ``OUT/aid.h5`` (fastMRI layout, readable by fastmri.evaluate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mrirecon.data import prepare_scan, write_reconstruction
from mrirecon.metrics import evaluate
from mrirecon.physics.fft import center_crop
from mrirecon.prior import load_prior
from mrirecon.recon import reconstruct
from mrirecon.viz import save_comparison


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="fastMRI .h5 (default: the bundled sample scan)")
    parser.add_argument("--out", type=Path, default=Path("pipeline_out"))
    parser.add_argument("--mask", default="equispaced")
    parser.add_argument("--acceleration", type=float, default=4.0)
    parser.add_argument("--center-fraction", type=float, default=None, help="fully sampled centre (default: fastMRI's)")
    parser.add_argument("--sens", default="auto", help="coil maps: auto, espirit, direct, jsense, or a maps file")
    parser.add_argument("--prior", default="default", help="registry name or CONFIG.yaml:WEIGHTS.pt")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--slices", default="center:4", help="slices: all, I,J,K, A:B or center:N")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    # 1. The data, prepared as every command prepares it: readout oversampling removed, the
    #    reference, the whole reference volume's max, the header's pixel size.
    path = args.input
    if path is None:
        from mrirecon.assets import sample_scan_path

        path = sample_scan_path()
    scan = prepare_scan(path, args.slices)
    print(f"{path.name}: k-space {scan.kspace.shape} (S, C, H, W), volume slices {scan.slices}, "
          f"pixels {scan.pixel_size_mm} mm")  # fmt: skip

    # 2. A retrospective mask on the image grid, seeded by the file name like `mrirecon recon`.
    mask = scan.retrospective_mask(args.mask, args.acceleration, seed=0, center_fraction=args.center_fraction)
    print(f"{args.mask} mask: nominal R = {args.acceleration:g}, effective R = {mask.acceleration:.2f}")

    # 3. Reconstructions. The first call estimates coil maps from the mask's calibration
    #    lines; the others reuse them so every method sees the same coil model.
    common = dict(pixel_size_mm=scan.pixel_size_mm, device=args.device)
    zf = reconstruct(scan.kspace, mask, method="zero-filled", sens=args.sens, **common)
    print(f"coil maps: {zf.info['sens']['method']} ({zf.info['sens']['note']})")
    l1 = reconstruct(scan.kspace, mask, method="l1-wavelet", sens=zf.maps, **common)
    prior = load_prior(args.prior, device=args.device)  # a registry name or CONFIG.yaml:WEIGHTS.pt
    aid = reconstruct(scan.kspace, mask, prior, sens=zf.maps, steps=args.steps, n_samples=args.samples, seed=0,
                      progress=False, **common)  # fmt: skip
    print(f"AID: {aid.info['timings']['per_slice']:.2f} s per slice, {aid.info['network_evals']} network calls, "
          f"first slice {aid.info['first_slice']}")  # fmt: skip

    # 4. Metrics against the fully sampled reference (fastMRI volume conventions: the whole
    #    volume's max as data range, least-squares intensity), on the reference's grid.
    ref = scan.reference
    images = {name: center_crop(r.image, ref.shape[-2:]) for name, r in
              (("zero-filled", zf), ("L1-wavelet", l1), ("AID", aid))}  # fmt: skip
    results = {}
    for name, image in images.items():
        m = evaluate(ref, image, data_range=scan.reference_max)
        results[name] = m.psnr
        print(f"{name:12s} PSNR {m.psnr:6.2f} dB   SSIM {m.ssim:.4f}   NRMSE {m.nrmse:.4f}")

    # 5. Outputs: a figure and the reconstruction in the fastMRI submission layout.
    std = center_crop(aid.std, ref.shape[-2:]) if aid.std is not None else None
    save_comparison(
        args.out / "comparison.png", {"reference": ref, **images},
        uncertainty={"AID": std} if std is not None else None,
        title=f"{path.name}: {args.mask} R={args.acceleration:g}", slice_numbers=scan.slices,
    )  # fmt: skip
    extra = {"std": std.astype(np.float32)} if std is not None else None
    write_reconstruction(args.out / "aid.h5", images["AID"], attrs={"prior": args.prior}, extra=extra)
    print(f"wrote {args.out / 'comparison.png'} and {args.out / 'aid.h5'}")
    return results


if __name__ == "__main__":
    main()
