"""Batch evaluation from Python: a grid of masks x accelerations x methods over a data folder.

    python examples/batch_evaluate.py --data data/multicoil_val --out results/
    python examples/batch_evaluate.py --simulate 3 --out results/      # no data at hand

The same as ``mrirecon evaluate`` (which wraps :func:`mrirecon.evaluation.run_evaluation`).
The run is resumable: run the script twice and the second run reuses every finished row.
Under ``torchrun --nproc-per-node G examples/batch_evaluate.py ...`` the files are sharded
across the G processes and rank 0 merges the results.

``--simulate N`` first writes N small simulated fastMRI files (Shepp-Logan volumes, birdcage
coils, 2x readout oversampling, noise) into ``OUT/data``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrirecon.evaluation import EvalConfig, run_evaluation, summary_markdown
from mrirecon.recon import ReconSettings


def simulate_folder(folder: Path, n: int, size: int = 64, slices: int = 4, coils: int = 4) -> Path:
    """Write ``n`` simulated fully sampled fastMRI files into ``folder``."""
    from mrirecon.data.simulate import phantom_volume, simulate_scan, write_simulated

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"sim_{i:03d}.h5"
        if not path.exists():
            sim = simulate_scan(phantom_volume(slices, size, size, seed=i), coils=coils, snr_db=30, seed=i)
            write_simulated(path, sim)
    return folder


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder of fully sampled fastMRI .h5 files")
    parser.add_argument("--simulate", type=int, default=0, help="write N simulated files to OUT/data and use them")
    parser.add_argument("--size", type=int, default=128, help="image size (= phase-encode lines) of simulated files")
    parser.add_argument("--out", type=Path, default=Path("batch_results"))
    parser.add_argument("--masks", default="random,equispaced")
    parser.add_argument("--accelerations", default="4,8")
    parser.add_argument("--methods", default="zero-filled,l1-wavelet,aid")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--prior", default="default", help="prior of 'aid': registry name or CONFIG.yaml:WEIGHTS.pt")
    parser.add_argument("--sens", default="auto", help="coil maps: auto (ESPIRiT, JSENSE below 5 ACS lines), direct, ...")
    parser.add_argument("--center-fraction", type=float, default=None, help="fully sampled centre of the masks")
    parser.add_argument("--slices", default=None, help="e.g. center:8")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    data = args.data
    if args.simulate:
        data = simulate_folder(args.out / "data", args.simulate, size=args.size)
    if data is None:
        parser.error("give --data DIR or --simulate N")

    config = EvalConfig(
        data_dir=str(data),
        out_dir=str(args.out),
        masks=args.masks.split(","),
        accelerations=[float(r) for r in args.accelerations.split(",")],
        methods=args.methods.split(","),
        settings=ReconSettings(steps=args.steps),
        aid_prior=args.prior,
        sens=args.sens,
        center_fraction=args.center_fraction,
        slices=args.slices,
        device=args.device,
    )

    def progress(event: str, info: dict) -> None:
        if event == "start" and info["rank"] == 0:
            print(f"{info['total']} items, {info['total'] - info['todo']} already done")
        elif event == "row":
            print(f"  {info['file']} {info['mask']:>10} R={info['acceleration']:<3g} {info['method']:>12}: "
                  f"PSNR {info['psnr']:.2f} dB  SSIM {info['ssim']:.3f}  ({info['seconds']:.1f} s)")  # fmt: skip

    report = run_evaluation(config, progress=progress)
    if report.rank == 0:
        print(summary_markdown(report.summary))
        for name, path in report.paths.items():
            print(f"{name:>22}: {path}")
    return report


if __name__ == "__main__":
    main()
