"""The Python API end to end: open a fastMRI file, undersample it, reconstruct, measure, save.

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

import mrirecon
from mrirecon.data.fastmri import open_scan, write_reconstruction
from mrirecon.evaluation import mask_seed, resolve_prior
from mrirecon.metrics import evaluate
from mrirecon.physics.fft import center_crop
from mrirecon.recon import reconstruct_file
from mrirecon.viz import save_comparison


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None, help="fastMRI .h5 (default: the bundled sample scan)")
    parser.add_argument("--out", type=Path, default=Path("pipeline_out"))
    parser.add_argument("--mask", default="equispaced")
    parser.add_argument("--acceleration", type=float, default=4.0)
    parser.add_argument("--center-fraction", type=float, default=0.125,
                        help="fully sampled centre; 0.125 keeps 8 of the sample scan's 64 lines")
    parser.add_argument("--sens", default="direct", help="coil maps: direct or espirit (needs >= 12 ACS lines)")
    parser.add_argument("--prior", default="default", help="registry name or CONFIG.yaml:WEIGHTS.pt")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--slices", type=int, default=4, help="number of central slices")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    # 1. The data: a fastMRI file, opened lazily (k-space is read per slice when needed).
    path = args.input
    if path is None:
        from mrirecon.assets import sample_scan_path

        path = sample_scan_path()
    scan = open_scan(path)
    n = min(args.slices, scan.num_slices)
    first = (scan.num_slices - n) // 2
    slices = list(range(first, first + n))
    print(f"{path.name}: k-space {scan.kspace_shape} (S, C, H, W), image {scan.recon_size}, slices {slices}")

    # 2. A retrospective mask on the image grid (H = readout after removing the 2x oversampling,
    #    W = phase encode); seeded by the file name like `mrirecon recon` and `evaluate`.
    H, W = scan.recon_size[0], scan.kspace_shape[3]
    mask = mrirecon.make_mask(
        args.mask, (H, W), args.acceleration, seed=mask_seed(path.name), center_fraction=args.center_fraction
    )
    print(f"{args.mask} mask: nominal R = {args.acceleration:g}, effective R = {mask.acceleration:.2f}")

    # 3. Reconstructions. The first call estimates coil maps from the mask's calibration
    #    lines; the others reuse them so every method sees the same coil model.
    zf = reconstruct_file(path, mask, prior="zero-filled", slices=slices, sens=args.sens)
    l1 = reconstruct_file(path, mask, prior="l1-wavelet", slices=slices, sens=zf.maps)
    prior = resolve_prior(args.prior, args.device)  # a registry name or CONFIG.yaml:WEIGHTS.pt
    aid = reconstruct_file(
        path, mask, prior=prior, slices=slices, sens=zf.maps,
        steps=args.steps, n_samples=args.samples, seed=0, progress=False,
    )  # fmt: skip
    print(f"AID: {aid.info['timings']['per_slice']:.2f} s per slice, {aid.info['network_evals']} network calls")

    # 4. Metrics against the fully sampled reference (fastMRI volume conventions, least-squares
    #    intensity normalisation), on the reference's grid.
    ref = aid.reference
    images = {name: center_crop(r.image, ref.shape[-2:]) for name, r in
              (("zero-filled", zf), ("L1-wavelet", l1), ("AID", aid))}  # fmt: skip
    results = {}
    for name, image in images.items():
        m = evaluate(ref, image)
        results[name] = m.psnr
        print(f"{name:12s} PSNR {m.psnr:6.2f} dB   SSIM {m.ssim:.4f}   NRMSE {m.nrmse:.4f}")

    # 5. Outputs: a figure and the reconstruction in the fastMRI submission layout.
    args.out.mkdir(parents=True, exist_ok=True)
    std = center_crop(aid.std, ref.shape[-2:]) if aid.std is not None else None
    save_comparison(
        args.out / "comparison.png", {"reference": ref, **images},
        uncertainty={"AID": std} if std is not None else None,
        title=f"{path.name}: {args.mask} R={args.acceleration:g}",
    )  # fmt: skip
    extra = {"std": std.astype(np.float32)} if std is not None else None
    write_reconstruction(args.out / "aid.h5", images["AID"], attrs={"prior": args.prior}, extra=extra)
    print(f"wrote {args.out / 'comparison.png'} and {args.out / 'aid.h5'}")
    return results


if __name__ == "__main__":
    main()
