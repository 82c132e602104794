"""Coil-map quality on real calibration regions: CG-SENSE PSNR with each estimator, and its time.

    python scripts/make_heldout.py --out heldout/                  # the held-out scans (once)
    python benchmarks/bench_maps.py heldout/*.h5 --accelerations 4,8 --out bench_maps.json

For every file and acceleration (fastMRI equispaced masks with fastMRI's centre fractions:
10 lines at 128² and 4x, 5 at 8x) the maps come from the mask's calibration lines only, except
the oracle (ESPIRiT on the fully sampled data, the ceiling):

* ``auto``: mrirecon's default (torch ESPIRiT adapted to the region, JSENSE below 5 lines);
* ``bart``: BART ``ecalib -m1 -r <ACS>``, with its defaults (kernel 6) and with the kernel of
  mrirecon's rule (``-k 6:<w>``), when ``bart`` is on the PATH;
* ``espirit-sigpy``: SigPy's ``EspiritCalib`` (square region, kernel 6) where the ACS allows;
* ``direct``: low-resolution maps (BART ``caldir``-like).

Each set of maps is scored by CG-SENSE (the default λ) against ``reconstruction_rss``
(fastMRI volume metrics, least-squares intensity). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch


def bart_maps(y: np.ndarray, acs: int, kernel: int | None = None) -> np.ndarray:
    """BART ``ecalib -m1 -r acs [-k 6:kernel]`` per slice: (S, C, H, W)."""
    import subprocess
    import tempfile

    from mrirecon.data.cfl import read_cfl, write_cfl

    out = np.empty_like(y)
    with tempfile.TemporaryDirectory() as tmp:
        for s, k in enumerate(y):
            write_cfl(Path(tmp) / "k", np.transpose(k, (1, 2, 0))[:, :, None, :])
            extra = [] if kernel is None else ["-k", f"6:{kernel}:1"]
            try:
                subprocess.run(["bart", "ecalib", "-m1", "-r", str(acs), *extra, f"{tmp}/k", f"{tmp}/m"], check=True,
                               capture_output=True)  # fmt: skip
            except subprocess.CalledProcessError as e:
                from mrirecon.errors import MrireconError

                raise MrireconError(f"bart ecalib failed ({e.returncode})") from None
            out[s] = np.transpose(np.asarray(read_cfl(Path(tmp) / "m"))[:, :, 0, :], (2, 0, 1))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--accelerations", default="4,8")
    p.add_argument("--slices", default="center:4")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("bench_maps.json"))
    a = p.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from mrirecon.data import prepare_scan
    from mrirecon.devices import configure_threads
    from mrirecon.errors import MrireconError
    from mrirecon.metrics import evaluate
    from mrirecon.physics.coils import calib_region, estimate_sens
    from mrirecon.physics.fft import center_crop
    from mrirecon.physics.operators import SenseOp
    from mrirecon.recon.classical import sense_cg

    threads = configure_threads(a.threads)
    rows = []
    for path in a.files:
        scan = prepare_scan(path, a.slices)
        for R in (float(r) for r in a.accelerations.split(",")):
            mask = scan.retrospective_mask("equispaced", R, 0).mask
            y = scan.kspace * mask
            acs = calib_region(mask)[1]

            def score(maps) -> float:
                A = SenseOp(torch.as_tensor(np.ascontiguousarray(maps)), torch.from_numpy(mask))
                x = sense_cg(A, torch.from_numpy(y)).numpy()
                return evaluate(scan.reference, center_crop(x, scan.reference.shape[-2:]), data_range=scan.reference_max).psnr

            methods = {
                "oracle (ESPIRiT, full data)": lambda: estimate_sens(scan.kspace, None, "espirit"),
                "auto": lambda: estimate_sens(y, mask, "auto"),
                "espirit-sigpy": lambda: estimate_sens(y, mask, "espirit-sigpy"),
                "direct": lambda: estimate_sens(y, mask, "direct"),
            }
            if shutil.which("bart"):
                kw = min(6, -(-acs // 2), acs - 2)  # the kernel rule of mrirecon's auto
                methods["bart ecalib -m1 (defaults)"] = lambda: bart_maps(y, acs)
                methods[f"bart ecalib -m1 -k 6:{kw}"] = lambda: bart_maps(y, acs, kw)
            for name, fn in methods.items():
                tic = time.perf_counter()
                try:
                    maps = np.asarray(fn())
                except MrireconError as e:  # e.g. SigPy's kernel 6 needs 12 lines
                    rows.append(dict(file=path.name, R=R, acs=acs, method=name, psnr=None, note=str(e)[:60]))
                    continue
                seconds = (time.perf_counter() - tic) / len(scan.slices)
                rows.append(dict(file=path.name, R=R, acs=acs, method=name, psnr=score(maps), s_per_slice=seconds,
                                 shape=list(scan.kspace.shape[1:])))  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    table = Table(title=f"CG-SENSE PSNR (dB) with coil maps from the calibration lines ({threads} CPU threads)")
    for col in ("file", "R", "ACS", "method", "PSNR", "s/slice"):
        table.add_column(col, justify="left" if col in ("file", "method") else "right")
    for r in rows:
        table.add_row(r["file"], f"{r['R']:g}", str(r["acs"]), r["method"],
                      "-" if r["psnr"] is None else f"{r['psnr']:.2f}",
                      f"{r['s_per_slice']:.3f}" if "s_per_slice" in r else r.get("note", ""))  # fmt: skip
    Console(width=140).print(table)
    a.out.write_text(json.dumps({"threads": threads, "rows": rows}, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
