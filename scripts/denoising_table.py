"""Held-out one-step denoising error by timestep for several priors on the same windows.

    python scripts/denoising_table.py build/v3/data/heldout.npz default default-unet CAND.yaml:CAND.safetensors

The windows are the held-out slabs written by ``build_default_prior.py --anatomy ... --stages
data`` (subjects the v3 priors never saw), cut into runs of ``seq_length + 1`` slices; every
prior sees the same noise (:func:`mrirecon.prior.losses.denoising_error`). Prints a markdown table
(ε-MSE, and PSNR of x̂0 clipped to [−1, 1]) and writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

TIMESTEPS = (50, 200, 500, 800)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("windows", type=Path, help="held-out volumes (.npz of complex (S, H, W) arrays)")
    ap.add_argument("priors", nargs="+", help="prior specs (registry name or CONFIG.yaml:WEIGHTS)")
    ap.add_argument("--length", type=int, default=5, help="slices per window (seq_length + 1)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from mrirecon.prior import load_prior
    from mrirecon.prior.datasets import SliceWindows, to_volume
    from mrirecon.prior.losses import denoising_error

    with np.load(args.windows) as f:
        vols = [to_volume(f[k], k) for k in sorted(f.files)]
    ds = SliceWindows(vols, args.length, augment=False)
    windows = torch.stack([ds[i] for i in range(len(ds))])
    results = {}
    for spec in args.priors:
        prior = load_prior(spec, device="cpu")
        results[spec] = denoising_error(prior.network.float(), prior.schedule, windows, list(TIMESTEPS),
                                        causal=prior.sequential, seed=0)  # fmt: skip
    names = {s: Path(s.split(":")[-1]).stem for s in args.priors}
    print(f"{len(windows)} held-out windows of {args.length} slices, {tuple(windows.shape[-2:])} pixels")
    print("| t | " + " | ".join(f"{names[s]} ε-MSE" for s in args.priors) + " | "
          + " | ".join(f"{names[s]} x̂0 PSNR" for s in args.priors) + " |")  # fmt: skip
    print("|---" * (1 + 2 * len(args.priors)) + "|")
    for t in TIMESTEPS:
        mse = " | ".join(f"{results[s][t]['eps_mse']:.4f}" for s in args.priors)
        psnr = " | ".join(f"{results[s][t]['x0_psnr']:.2f}" for s in args.priors)
        print(f"| {t} | {mse} | {psnr} |")
    if args.json:
        args.json.write_text(json.dumps({names[s]: {str(t): v for t, v in r.items()} for s, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
