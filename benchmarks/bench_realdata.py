"""Our L1-wavelet next to SigPy's ``L1WaveletRecon`` and BART ``pics -l1`` on real scans, at equal iterations.

Same k-space, mask and coil maps (``sens="auto"``, as a user gets them) for all three; each tool's
λ is swept (the oracle: best PSNR against the reference) so the comparison is of solvers and
wavelets, not of λ rules; our default (hold-out λ, no reference) is shown beside it.

    mrirecon convert ../shared/data/kspace/ugmpi_4h_GE.mat -o real/ge4.h5 --axes readout,phase,coil --image-domain
    python benchmarks/bench_realdata.py real/*.h5 --json realdata.json

BART is run when the ``bart`` executable is on the PATH (Debian: ``apt-get install bart``).
Prints a table and writes JSON (one row per file x mask x R x seed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mrirecon.data import prepare_scan, read_cfl, write_cfl
from mrirecon.metrics import evaluate
from mrirecon.physics.coils import calibrate, rss
from mrirecon.physics.fft import ifft2c
from mrirecon.physics.operators import SenseOp
from mrirecon.recon import classical, reconstruct

OURS_GRID = np.logspace(-4, -0.5, 8)  # relative to max|Aᴴy| (ours, SigPy)
BART_GRID = np.logspace(-4, -0.5, 8)  # BART's own data scaling


def _best(images: dict, ref) -> tuple[float, float]:
    scores = {lam: evaluate(ref, img).psnr for lam, img in images.items()}
    lam = max(scores, key=scores.get)
    return scores[lam], float(lam)


def _bart(k, maps, mask, iters, lam, folder: Path):
    """bart pics -l1 -r λ -i iters on one slice (BART dims: READ, PHS1, PHS2, COIL)."""
    write_cfl(folder / "k", np.transpose(k * mask, (1, 2, 0))[:, :, None, :])
    write_cfl(folder / "s", np.transpose(maps, (1, 2, 0))[:, :, None, :])
    subprocess.run(["bart", "pics", "-d0", "-l1", "-r", f"{lam:g}", "-i", str(iters), str(folder / "k"),
                    str(folder / "s"), str(folder / "x")], check=True, capture_output=True)  # fmt: skip
    return read_cfl(folder / "x").reshape(k.shape[-2:])


def run_case(scan, kind: str, R: float, seed: int, iters: int, use_bart: bool) -> dict:
    import sigpy.mri.app as app

    m = np.broadcast_to(scan.retrospective_mask(kind, R, seed).mask, scan.kspace.shape[-2:]).astype(np.float32)
    k = scan.kspace[0] * m
    ref = scan.reference[:1]
    cal = calibrate(k[None], m, "auto")
    maps = np.asarray(cal.maps)[0]
    A = SenseOp(torch.from_numpy(maps[None]), torch.from_numpy(m))
    y = torch.from_numpy(k[None])
    peak = float(A.adjoint(y).abs().max())
    row = {"maps": cal.method, "zero-filled": evaluate(ref, rss(ifft2c(k))[None]).psnr}
    tic = time.perf_counter()
    res = reconstruct(k[None], m, method="l1-wavelet", sens=maps[None], iters=iters, progress=False)
    row["ours default"], row["ours default lam"] = evaluate(ref, res.image).psnr, res.info["lam"]
    row["ours default s"] = time.perf_counter() - tic
    row["ours sense"] = evaluate(ref, reconstruct(k[None], m, method="sense", sens=maps[None], progress=False).image).psnr
    tic = time.perf_counter()
    ours = {r: classical.l1_wavelet(A, y, r * peak, iters).numpy() for r in OURS_GRID}
    row["ours s/run"] = (time.perf_counter() - tic) / len(OURS_GRID)
    row["ours oracle"], row["ours oracle lam"] = _best(ours, ref)
    db2 = {r: classical.l1_wavelet(A, y, r * peak, iters, wavelet="db2").numpy() for r in OURS_GRID}
    row["ours db2 oracle"], row["ours db2 oracle lam"] = _best(db2, ref)  # BART's default wavelet (dau2)
    tic = time.perf_counter()
    sp = {r: app.L1WaveletRecon(k, maps, r * peak, weights=m, max_iter=iters, show_pbar=False).run()[None]
          for r in OURS_GRID}  # fmt: skip
    row["sigpy s/run"] = (time.perf_counter() - tic) / len(OURS_GRID)
    row["sigpy oracle"], row["sigpy oracle lam"] = _best(sp, ref)
    if use_bart:
        with tempfile.TemporaryDirectory() as tmp:
            tic = time.perf_counter()
            bart = {lam: _bart(k, maps, m, iters, lam, Path(tmp))[None] for lam in BART_GRID}
            row["bart s/run"] = (time.perf_counter() - tic) / len(BART_GRID)
        row["bart oracle"], row["bart oracle lam"] = _best(bart, ref)
    return row


def run_maps(scan, kind: str, R: float, seed: int, cf: float | None) -> dict:
    """CG-SENSE (default hold-out λ) with each coil-map method, and zero filling, on one cell."""
    mask = scan.retrospective_mask(kind, R, seed, cf)
    m = np.broadcast_to(mask.mask, scan.kspace.shape[-2:]).astype(np.float32)
    k = scan.kspace[:1] * m
    row = {"acs": int(calibrate(k, m, "direct").acs[1]), "zero-filled": evaluate(scan.reference[:1], rss(ifft2c(k))).psnr}
    for method in ("auto", "espirit", "direct", "jsense"):
        try:
            res = reconstruct(k, m, method="sense", sens=method, progress=False)
        except Exception as e:  # noqa: BLE001  (a method that cannot run on this cell is a row entry)
            row[method] = f"({type(e).__name__})"
            continue
        row[method] = evaluate(scan.reference[:1], res.image).psnr
        if method == "auto":
            row["auto picks"] = res.info["sens"]["method"]
    return row


def run_soft(scan, kind: str, R: float, seed: int) -> dict:
    """CG-SENSE and L1-wavelet (hold-out λ) with auto maps, one set of ESPIRiT maps and two (soft-SENSE)."""
    mask = scan.retrospective_mask(kind, R, seed)
    m = np.broadcast_to(mask.mask, scan.kspace.shape[-2:]).astype(np.float32)
    k = scan.kspace[:1] * m
    row = {"zero-filled": evaluate(scan.reference[:1], rss(ifft2c(k))).psnr}
    for method in ("sense", "l1-wavelet"):
        for label, opts in (("auto", {}), ("espirit", {"sens": "espirit"}),
                            ("espirit x2", {"sens": "espirit", "sens_options": {"sets": 2}})):  # fmt: skip
            res = reconstruct(k, m, method, progress=False, **opts)
            row[f"{method} {label}"] = evaluate(scan.reference[:1], res.image).psnr
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="Converted fully sampled .h5 files (one slice is used).")
    ap.add_argument("--masks", default="equispaced,random")
    ap.add_argument("--accelerations", default="4,8")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--json", type=Path, default=Path("bench_realdata.json"))
    ap.add_argument("--maps", action="store_true", help="Instead: CG-SENSE with each coil-map method (auto, espirit, "
                    "direct, jsense), fastMRI centre fractions and 0.03 at 8x (5-8 lines).")  # fmt: skip
    ap.add_argument("--soft", action="store_true", help="Instead: auto maps vs one and two sets of ESPIRiT maps "
                    "(soft-SENSE, --maps 2) for CG-SENSE and L1-wavelet.")  # fmt: skip
    args = ap.parse_args()
    if args.soft:
        rows = []
        for f in args.files:
            scan = prepare_scan(f, slices="center:1")
            for kind in args.masks.split(","):
                for R in (float(r) for r in args.accelerations.split(",")):
                    for seed in (int(s) for s in args.seeds.split(",")):
                        rows.append({"file": f.name, "mask": kind, "R": R, "seed": seed, **run_soft(scan, kind, R, seed)})
                        print(f"{f.name:12s} {kind:10s} {R:3g} seed {seed}  "
                              + "  ".join(f"{k} {v:.2f}" for k, v in rows[-1].items() if isinstance(v, float)), flush=True)
        args.json.write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.json}")
        return
    if args.maps:
        rows = []
        for f in args.files:
            scan = prepare_scan(f, slices="center:1")
            for kind in args.masks.split(","):
                for R, cf in ((4.0, None), (8.0, None), (8.0, 0.03)):
                    for seed in (int(s) for s in args.seeds.split(",")):
                        row = {"file": f.name, "mask": kind, "R": R, "cf": cf, "seed": seed, **run_maps(scan, kind, R, seed, cf)}
                        rows.append(row)
                        vals = {k: row[k] for k in ("zero-filled", "auto", "espirit", "direct", "jsense")}
                        best = max(v for k, v in vals.items() if k != "zero-filled" and isinstance(v, float))
                        print(f"{f.name:12s} {kind:10s} {R:3g} cf {cf or 'fastMRI'} ({row['acs']} lines) seed {seed}  "
                              + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in vals.items())
                              + f"  auto={row.get('auto picks')}  auto-best {row['auto'] - best:+.2f}", flush=True)  # fmt: skip
        args.json.write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.json}")
        return
    torch.manual_seed(0)
    use_bart = shutil.which("bart") is not None
    rows = []
    for f in args.files:
        scan = prepare_scan(f, slices=f"center:1")
        for kind in args.masks.split(","):
            for R in (float(r) for r in args.accelerations.split(",")):
                for seed in (int(s) for s in args.seeds.split(",")):
                    row = {"file": f.name, "mask": kind, "R": R, "seed": seed, **run_case(scan, kind, R, seed, args.iters, use_bart)}
                    rows.append(row)
                    best_ref = max(row["sigpy oracle"], row.get("bart oracle", -np.inf))
                    print(f"{f.name:12s} {kind:10s} {R:3g} seed {seed}  maps {row['maps']:8s} zf {row['zero-filled']:6.2f}  "
                          f"sense {row['ours sense']:6.2f}  ours L1 default {row['ours default']:6.2f}  "
                          f"ours oracle {row['ours oracle']:6.2f} (db2 {row['ours db2 oracle']:6.2f})  sigpy {row['sigpy oracle']:6.2f}  "
                          f"bart {row.get('bart oracle', float('nan')):6.2f}  ours-best {row['ours oracle'] - best_ref:+.2f} dB",
                          flush=True)  # fmt: skip
    args.json.write_text(json.dumps(rows, indent=1))
    for key in ("ours oracle", "ours db2 oracle"):
        gaps = [r[key] - max(r["sigpy oracle"], r.get("bart oracle", -np.inf)) for r in rows]
        print(f"{key} - best of SigPy/BART oracle: mean {np.mean(gaps):+.2f} dB, min {np.min(gaps):+.2f}, max {np.max(gaps):+.2f}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
