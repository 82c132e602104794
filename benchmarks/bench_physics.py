"""Benchmark of the physics layer: SENSE forward+adjoint and coil calibration, SigPy vs torch.

Times (median of ``--repeats`` runs after one warm-up):

* SENSE ``Aᴴ(A x)`` on a volume (default 16 slices × 16 coils × 320 × 320, complex64):
  SigPy/NumPy (``sigpy.mri.linop.Sense`` per slice, its only mode) vs
  :class:`mrirecon.physics.operators.SenseOp` on the CPU (all coils, and ``coil_batch=4``)
  and on CUDA when present;
* coil calibration per slice, calib 24 x 24, kernel 6: ESPIRiT with SigPy
  (``sigpy.mri.app.EspiritCalib``, CPU; CuPy GPU when installed), with mrirecon's torch
  ESPIRiT (:mod:`mrirecon.physics.espirit`, batched over slices, CPU and CUDA) and with BART
  (``bart ecalib -m1 -r 24 -k 6``, when a ``bart`` executable is on the PATH; its time
  includes writing and reading the .cfl files, about 1 % of it), and the direct torch method
  (``direct_maps``, calib 30). For ESPIRiT the table also gives CG-SENSE's PSNR against the
  true image with those maps (R = 4), so speed is never bought with worse maps.

Usage::

    python benchmarks/bench_physics.py                 # full sizes
    python benchmarks/bench_physics.py --quick         # 2 slices, 1 repeat: a smoke run
    python benchmarks/bench_physics.py --out bench_physics.json --threads 1

Prints a rich table and writes the numbers (and the machine) as JSON. SigPy/NumPy runs on
one thread; on a busy or small machine ``--threads 1`` gives torch the same footing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: str = "cpu") -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def simulate(slices: int, coils: int, n: int, seed: int = 0):
    """Birdcage maps (Σ|S|² = 1), a Shepp–Logan volume with noise, its k-space, a fastMRI mask (R=4), the truth."""
    import sigpy as sp
    import sigpy.mri as mr

    from mrirecon.physics.fft import fft2c
    from mrirecon.physics.masks import make_mask

    maps = mr.birdcage_maps((coils, n, n)).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    maps = np.ascontiguousarray(np.broadcast_to(maps, (slices, coils, n, n)))
    image = sp.shepp_logan((n, n)).astype(np.complex64)
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 1.0, size=(slices, 1, 1)).astype(np.float32)
    truth = scale * image
    kspace = fft2c(maps * truth[:, None])
    # noise relative to the image, not to the DC sample: ~40 dB image SNR, so that map errors show in the PSNR
    sigma = 1e-2 * float(np.abs(truth).max())
    noise = sigma / np.sqrt(2) * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))
    kspace = (kspace + noise).astype(np.complex64)
    mask = make_mask("equispaced", (n, n), 4, seed=seed).mask
    return maps, kspace, mask, truth


def bench_sense(maps, mask, repeats: int, devices: list[str]) -> list[dict]:
    import sigpy.mri as mr

    from mrirecon.physics.operators import SenseOp

    S, C, H, W = maps.shape
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((S, H, W)) + 1j * rng.standard_normal((S, H, W))).astype(np.complex64)
    rows = []

    ops = [mr.linop.Sense(maps[s], weights=mask) for s in range(S)]

    def sigpy_run():
        for s in range(S):
            ops[s].H * (ops[s] * x[s])

    t = timed(sigpy_run, repeats)
    rows.append(dict(task="SENSE forward+adjoint", impl="sigpy/numpy (per slice)", device="cpu", seconds=t))

    for dev in devices:
        m, xt = torch.from_numpy(maps).to(dev), torch.from_numpy(x).to(dev)
        mk = torch.from_numpy(mask).to(dev)
        for cb in (None, 4):
            op = SenseOp(m, mk, coil_batch=cb)
            t = timed(lambda: op.adjoint(op.forward(xt)), repeats, dev)
            label = "torch SenseOp" + ("" if cb is None else f" (coil_batch={cb})")
            rows.append(dict(task="SENSE forward+adjoint", impl=label, device=dev, seconds=t))
        op = SenseOp(m, mk)
        t = timed(lambda: op.normal(xt), repeats, dev)
        rows.append(dict(task="SENSE normal (AᴴA)", impl="torch SenseOp.normal", device=dev, seconds=t))
    for r in rows:
        r.update(per_slice=r["seconds"] / S, shape=[S, C, H, W])
    return rows


def _bart_ecalib(kspace: np.ndarray) -> np.ndarray | None:
    """BART ``ecalib -m1`` maps (S, C, H, W) slice by slice, or None without a bart executable."""
    import shutil
    import subprocess
    import tempfile

    from mrirecon.data.cfl import read_cfl, write_cfl

    exe = shutil.which("bart")
    if exe is None:
        return None
    out = np.empty_like(kspace)
    with tempfile.TemporaryDirectory() as tmp:
        for s, k in enumerate(kspace):
            write_cfl(Path(tmp) / "k", np.transpose(k, (1, 2, 0))[:, :, None, :])  # (H, W, 1, C)
            subprocess.run([exe, "ecalib", "-m1", "-r", "24", "-k", "6", f"{tmp}/k", f"{tmp}/m"], check=True,
                           capture_output=True)  # fmt: skip
            out[s] = np.transpose(np.asarray(read_cfl(Path(tmp) / "m"))[:, :, 0, :], (2, 0, 1))
    return out


def _sense_psnr(kspace, mask, maps, truth) -> float:
    from mrirecon.metrics import evaluate
    from mrirecon.physics.operators import SenseOp
    from mrirecon.recon.classical import sense_cg

    A = SenseOp(torch.as_tensor(maps), torch.as_tensor(mask))
    x = sense_cg(A, torch.as_tensor(kspace * mask), iters=30)
    return evaluate(np.abs(truth), x.numpy()).psnr


def bench_calibration(kspace, truth, mask, true_maps, repeats: int, devices: list[str], espirit_slices: int):
    """Rows timing each coil-map method, and the CG-SENSE PSNR with the true maps."""
    import sigpy as sp

    from mrirecon.physics.coils import direct_maps, espirit_maps

    S, C, H, W = kspace.shape
    rows = []
    from mrirecon.physics.coils import calib_region

    n = min(espirit_slices, S)
    # calibrate on the 4x data's centre (26 of 320 lines); small --quick sizes lack 24 lines: full data
    ks = kspace[:n] * mask if calib_region(mask)[1] >= 24 else kspace[:n]
    reps = max(1, repeats // 2)

    def add(impl, device, fn, slices, maps=None):
        t = timed(fn, reps if slices == n else repeats, device)
        row = dict(task="coil maps", impl=impl, device=device, seconds=t, slices=slices)
        if maps is not None:
            row["cg_sense_psnr"] = _sense_psnr(ks, mask, np.asarray(maps), truth[:n])
        rows.append(row)

    add("ESPIRiT (sigpy, calib 24, kernel 6)", "cpu", lambda: espirit_maps(ks, 24, 6, backend="sigpy"), n,
        espirit_maps(ks, 24, 6, backend="sigpy"))  # fmt: skip
    if sp.config.cupy_enabled and any(d.startswith("cuda") for d in devices):
        add("ESPIRiT (sigpy+cupy)", "cuda", lambda: espirit_maps(ks, 24, 6, backend="sigpy", device="cuda"), n)
    bart = _bart_ecalib(ks)
    if bart is not None:
        add("BART ecalib -m1 -r 24 -k 6", "cpu", lambda: _bart_ecalib(ks), n, bart)
    for dev in devices:
        k = torch.from_numpy(ks).to(dev)
        add("ESPIRiT (mrirecon torch, batched)", dev, lambda: espirit_maps(k, 24, 6), n, espirit_maps(k, 24, 6).cpu())
    for dev in devices:
        k = torch.from_numpy(kspace).to(dev)
        add("direct (torch, calib 30, batched)", dev, lambda: direct_maps(k, calib=30), S,
            direct_maps(torch.from_numpy(ks).to(dev), calib=30).cpu() if dev == devices[0] else None)  # fmt: skip
    for r in rows:
        r.update(per_slice=r["seconds"] / r["slices"], shape=[r.pop("slices"), C, H, W])
    # the ceiling the estimated maps are measured against (no support mask: background noise stays in)
    oracle = _sense_psnr(ks, mask, true_maps[:n], truth[:n])
    return rows, oracle


# -- L1-wavelet: torch FISTA (any device) against its PyWavelets predecessor and SigPy -----------


def l1_wavelet_pywt(A, y, lam, iters: int, shifts: bool = True):
    """mrirecon's L1-wavelet before the torch transform (v0.x): PyWavelets on the CPU every iteration.

    Kept here, and only here, as the speed and equality baseline of :func:`mrirecon.recon.classical.l1_wavelet`.
    """
    import math

    import pywt

    from mrirecon.physics.wavelet import Wavelet2D

    geometry = Wavelet2D(tuple(y.shape[-2:]))  # the same levels and padding
    levels, (Hp, Wp), (H, W) = geometry.levels, geometry.padded, geometry.shape
    rhs = A.adjoint(y)
    L = A.lipschitz()
    tau = (torch.as_tensor(lam, dtype=torch.float32).expand(rhs.shape[:-2]) / L).numpy().astype(np.float64)

    def shrink(v: np.ndarray) -> np.ndarray:
        v = np.pad(v, [(0, 0)] * (v.ndim - 2) + [(0, Hp - H), (0, Wp - W)])
        arr, sl = pywt.coeffs_to_array(pywt.wavedec2(v, "db4", mode="periodization", level=levels, axes=(-2, -1)), axes=(-2, -1))
        keep = arr[(..., *sl[0])].copy()
        arr = arr * np.maximum(1.0 - tau[..., None, None] / np.maximum(np.abs(arr), 1e-30), 0.0)
        arr[(..., *sl[0])] = keep
        out = pywt.waverec2(pywt.array_to_coeffs(arr, sl, output_format="wavedec2"), "db4", mode="periodization", axes=(-2, -1))
        return out[..., :H, :W]

    x = torch.zeros_like(rhs)
    z, t = x.clone(), 1.0
    offsets = np.random.default_rng(0).integers(0, 2**levels, size=(iters, 2)) if shifts else np.zeros((iters, 2), int)
    for it in range(iters):
        v = z - (A.normal(z) - rhs) / L
        dy, dx = (int(o) for o in offsets[it])
        shrunk = shrink(np.roll(v.numpy(), (dy, dx), axis=(-2, -1)))
        x_new = torch.from_numpy(np.roll(shrunk, (-dy, -dx), axis=(-2, -1)).astype(np.complex64))
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = x_new + ((t - 1.0) / t_new) * (x_new - x)
        x, t = x_new, t_new
    return x


def _psnr(x: np.ndarray, truth: np.ndarray) -> float:
    from mrirecon.metrics import psnr

    return float(psnr(np.abs(truth), np.abs(x)))


def bench_l1(maps, kspace, mask, truth, repeats: int, devices: list[str], iters: int = 100) -> list[dict]:
    """Seconds per slice and PSNR of L1-wavelet (FISTA, ``iters``, db4) at the default relative λ."""
    import sigpy.mri as mr

    from mrirecon.physics.operators import SenseOp
    from mrirecon.recon.classical import DEFAULT_LAMBDA, l1_wavelet

    S = maps.shape[0]
    y = (kspace * mask).astype(np.complex64)
    peak = np.abs(SenseOp(torch.from_numpy(maps), torch.from_numpy(mask)).adjoint(torch.from_numpy(y))).amax(dim=(-2, -1))
    lam = DEFAULT_LAMBDA["l1-wavelet"] * peak  # (S,) absolute, the same for every implementation
    rows, results = [], {}

    def add(impl, device, fn):
        last = []
        t = timed(lambda: last.append(fn()), repeats, device)
        out = last[-1]
        results[(impl, device)] = out.cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        rows.append(dict(task=f"L1-wavelet ({iters} FISTA it.)", impl=impl, device=device, seconds=t,
                         psnr=_psnr(results[(impl, device)], truth)))  # fmt: skip

    A_cpu = SenseOp(torch.from_numpy(maps), torch.from_numpy(mask))
    y_cpu = torch.from_numpy(y)
    add("mrirecon before (PyWavelets)", "cpu", lambda: l1_wavelet_pywt(A_cpu, y_cpu, lam, iters))
    for dev in devices:
        A = SenseOp(torch.from_numpy(maps).to(dev), torch.from_numpy(mask).to(dev))
        yd, ld = y_cpu.to(dev), lam.to(dev)
        add("mrirecon torch", dev, lambda A=A, yd=yd, ld=ld: l1_wavelet(A, yd, ld, iters))

    def sigpy_run():
        return np.stack([mr.app.L1WaveletRecon(y[s], maps[s], float(lam[s]), weights=mask, wave_name="db4",
                                               max_iter=iters, show_pbar=False).run() for s in range(S)])  # fmt: skip

    add("sigpy L1WaveletRecon", "cpu", sigpy_run)
    before = results[("mrirecon before (PyWavelets)", "cpu")]
    for r in rows:
        r["per_slice"] = r["seconds"] / S
        if r["impl"] == "mrirecon torch":
            x = results[(r["impl"], r["device"])]
            r["rel_diff_vs_before"] = float(np.linalg.norm(x - before) / np.linalg.norm(before))
    return rows


def machine() -> dict:
    info = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        numpy=np.__version__,
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    )
    try:
        import sigpy

        info["sigpy"] = sigpy.__version__
    except Exception:  # pragma: no cover - sigpy is a dependency
        pass
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 slices, 1 repeat, 1 ESPIRiT slice (smoke run)")
    p.add_argument("--slices", type=int, default=None, help="slices (default 16; 2 with --quick)")
    p.add_argument("--coils", type=int, default=16)
    p.add_argument("--size", type=int, default=320, help="H = W")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 3; 1 with --quick)")
    p.add_argument("--espirit-slices", type=int, default=None, help="slices timed for ESPIRiT (default 2; 1 quick)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--l1-slices", type=int, default=None, help="slices of the L1-wavelet rows (default 4; 1 quick)")
    p.add_argument("--l1-iters", type=int, default=100, help="FISTA iterations of the L1-wavelet rows")
    p.add_argument("--no-l1", action="store_true", help="skip the L1-wavelet rows")
    p.add_argument("--cpu-only", action="store_true", help="skip CUDA even when present")
    p.add_argument("--out", type=Path, default=Path("bench_physics.json"), help="JSON output")
    a = p.parse_args(argv)
    slices = a.slices or (2 if a.quick else 16)
    repeats = a.repeats or (1 if a.quick else 3)
    esp = a.espirit_slices or (1 if a.quick else 2)
    for name, v in (("--slices", slices), ("--coils", a.coils), ("--size", a.size), ("--repeats", repeats)):
        if v < 1:
            p.error(f"{name} must be >= 1")
    if a.threads is not None:
        if a.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(a.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not a.cpu_only else [])

    maps, kspace, mask, truth = simulate(slices, a.coils, a.size)
    calibration, oracle_psnr = bench_calibration(kspace, truth, mask, maps, repeats, devices, esp)
    rows = bench_sense(maps, mask, repeats, devices) + calibration
    if not a.no_l1:
        n = min(slices, a.l1_slices or (1 if a.quick else 4))
        rows += bench_l1(maps[:n], kspace[:n], mask, truth[:n], repeats, devices, iters=a.l1_iters)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mrirecon physics ({slices} slices x {a.coils} coils x {a.size}^2, complex64)")
    for col in ("task", "implementation", "device", "total (s)", "per slice (ms)", "speed-up", "PSNR dB", "rel. diff"):
        table.add_column(col, justify="left" if col in ("task", "implementation", "device") else "right")
    baselines = {r["task"]: r["per_slice"] for r in rows if r["impl"].startswith(("sigpy", "ESPIRiT (sigpy,"))}
    # L1-wavelet: speed-ups against mrirecon's PyWavelets version (SigPy solves a slightly different problem)
    baselines.update({r["task"]: r["per_slice"] for r in rows if r["impl"].startswith("mrirecon before")})
    baselines.setdefault("SENSE normal (AᴴA)", baselines.get("SENSE forward+adjoint"))
    for r in rows:
        base = baselines.get(r["task"])
        r["speedup_vs_sigpy"] = base / r["per_slice"] if base else None
        table.add_row(
            r["task"],
            r["impl"],
            r["device"],
            f"{r['seconds']:.3f}",
            f"{1e3 * r['per_slice']:.1f}",
            f"{r['speedup_vs_sigpy']:.1f}x" if r["speedup_vs_sigpy"] else "",
            f"{r['cg_sense_psnr']:.2f}" if "cg_sense_psnr" in r else f"{r['psnr']:.2f}" if "psnr" in r else "",
            f"{r['rel_diff_vs_before']:.1e}" if "rel_diff_vs_before" in r else "",
        )
    console = Console(width=max(110, Console().width))
    console.print(table)
    console.print(f"CG-SENSE with the true (simulated) maps: {oracle_psnr:.2f} dB")
    result = dict(
        cg_sense_psnr_true_maps=oracle_psnr,
        config=dict(slices=slices, coils=a.coils, size=a.size, repeats=repeats, espirit_slices=esp, quick=a.quick),
        machine=machine(),
        results=rows,
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
