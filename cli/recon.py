"""Reconstruction commands: ``demo`` (the bundled example end to end) and ``recon`` (one file)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import typer

from mrirecon.recon.settings import DEFAULTS
from mrirecon.cli._common import (
    CALIB_OPTION,
    CROP_OPTION,
    DC_OPTION,
    DC_STEPS_OPTION,
    DEVICE_OPTION,
    ETA_OPTION,
    FIRST_SLICE_OPTION,
    ITERS_OPTION,
    KERNEL_OPTION,
    LAG_OPTION,
    LAM_OPTION,
    MAPS_OPTION,
    METHOD_OPTION,
    SAMPLES_OPTION,
    SCHEDULE_OPTION,
    SENS_OPTION,
    SPACING_OPTION,
    STEPS_OPTION,
    THREADS_OPTION,
    THRESHOLD_OPTION,
    UPDATE_OPTION,
    command,
    console,
    examples,
    existing_file,
    fail,
    info,
    method_and_prior,
    output_path,
    read_mask_file,
    recon_settings,
    saved,
    sens_options,
    sens_source,
    start,
)


def _metrics_table(title: str, rows: dict, caption: str):
    from rich.table import Table

    t = Table(title=title, caption=caption)
    for h in ("method", "PSNR (dB)", "SSIM", "NRMSE", "time (s)"):
        t.add_column(h, justify="left" if h == "method" else "right")
    for name, (m, seconds) in rows.items():
        t.add_row(name, f"{m.psnr:.2f}", f"{m.ssim:.4f}", f"{m.nrmse:.4f}", f"{seconds:.1f}")
    return t


def _caption(scan, given: list[int]) -> str:
    """What the metrics refer to."""
    n = len(scan.slices) - len(given)
    part = "all slices" if len(scan.slices) == scan.num_slices else f"{n} of {scan.num_slices} slices"
    excluded = f", slice {scan.slices[0]} (given fully sampled) excluded" if given else ""
    return (
        f"fastMRI volume metrics vs reconstruction_rss over {part}{excluded}; data range = the whole "
        "reference volume's max; least-squares intensity"
    )


# --------------------------------------------------------------------------------------------
# recon


@command(
    "recon",
    epilog=examples(
        "mrirecon recon file_brain_AXT1POST_200_6002026.h5 -o recon.h5 --mask equispaced -R 4 --png recon.png",
        "mrirecon recon scan.h5 -o recon.h5 --mask-file mask.npy --prior default --steps 100 --samples 4",
        "mrirecon recon scan.h5 -o recon.h5 --prior fastmri_320_cplx.yaml:fastmri_320_cplx.pt --device cuda",
        "mrirecon recon scan.h5 -o recon.h5 --sens maps.h5        # coil maps from mrirecon sens or BART ecalib",
        "mrirecon recon file_brain_test.h5 -o recon.h5   # test/challenge file: its own mask is used",
        "mrirecon recon scan.h5 -o cs.h5 --method l1-wavelet --lam 0.005",
        "mrirecon recon scan.h5 -o recon.h5 --prior anatomy --schedule pipelined --device cuda",
    ),
)
def recon_cmd(
    input: Path = typer.Argument(..., help="fastMRI .h5 file (fully sampled, or undersampled test/challenge data); 'sample': the bundled scan."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .h5 (dataset 'reconstruction', fastMRI layout)."),
    mask: str = typer.Option(
        None, "--mask", help="Retrospective mask kind: random, equispaced, poisson, gaussian (default for fully "
        "sampled files: equispaced)."
    ),
    acceleration: float = typer.Option(4.0, "--acceleration", "-R", help="Nominal acceleration of --mask."),
    center_fraction: float = typer.Option(
        None, "--center-fraction", help="Fully sampled centre (default: fastMRI's, 0.08 at 4x, 0.04 at 8x)."
    ),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seed: mask seed = crc32(file name) + seed (as evaluate); sampler seed."),
    mask_file: Path = typer.Option(None, "--mask-file", help="Mask (W,) or (H, W) as .npy (from mrirecon mask)."),
    prior: str = typer.Option("default", "--prior", help="Diffusion prior: registry name, weights file or CONFIG.yaml:WEIGHTS.pt."),
    method: str = METHOD_OPTION,
    sens: str = SENS_OPTION,
    calib: str = CALIB_OPTION,
    kernel: str = KERNEL_OPTION,
    crop: float = CROP_OPTION,
    threshold: float = THRESHOLD_OPTION,
    maps: int = MAPS_OPTION,
    steps: int = STEPS_OPTION,
    samples: int = SAMPLES_OPTION,
    slices: str = typer.Option("all", "--slices", help="Slices: all, I, I,J,K, A:B or center:N."),
    update: str = UPDATE_OPTION,
    eta: float = ETA_OPTION,
    dc: str = DC_OPTION,
    dc_steps: int = DC_STEPS_OPTION,
    first_slice: str = FIRST_SLICE_OPTION,
    spacing: str = SPACING_OPTION,
    schedule: str = SCHEDULE_OPTION,
    lag: int = LAG_OPTION,
    lam: float = LAM_OPTION,
    iters: int = ITERS_OPTION,
    device: str = DEVICE_OPTION,
    threads: int = THREADS_OPTION,
    png: Path = typer.Option(None, "--png", help="Comparison figure (reference, zero-filled, result, error, std)."),
) -> None:
    """Reconstruct one fastMRI file (retrospectively or prospectively undersampled).

    With a diffusion prior, finished slices are kept in OUT.partial.h5 while the job runs:
    after Ctrl-C or a crash, the same command resumes from there (and gives the same result
    as an uninterrupted run); the file is removed when the reconstruction completes.
    """
    import numpy as np

    from mrirecon.data.fastmri import write_reconstruction
    from mrirecon.data.scan import prepare_scan
    from mrirecon.files import same_file
    from mrirecon.metrics import evaluate
    from mrirecon.physics.fft import center_crop
    from mrirecon.prior import load_prior
    from mrirecon.recon import method_label, reconstruct, reconstruct_file

    input = existing_file(input)
    sens = sens_source(sens)
    inputs = [input, mask_file, sens if Path(sens).exists() else None]
    output_path(out, (".h5",), "--out", inputs)
    partial = out.with_name(out.stem + ".partial.h5")  # finished slices of an interrupted run
    for src in inputs:
        if src is not None and Path(src).exists() and same_file(partial, src):
            fail(f"--out {out} keeps its checkpoint in {partial}, which is the input '{src}': choose another --out")
    if png is not None:
        output_path(png, (".png",), "--png", inputs)
    if mask is not None and mask_file is not None:
        fail("give either --mask or --mask-file, not both")
    method, prior_spec = method_and_prior(method, prior)
    settings = recon_settings(steps=steps, n_samples=samples, seed=seed, update=update, eta=eta, dc=dc, dc_steps=dc_steps,
                              first_slice=first_slice, spacing=spacing, schedule=schedule, lag=lag, lam=lam, iters=iters)  # fmt: skip
    device = start(device, threads)
    scan = prepare_scan(input, slices)
    H, W = scan.shape
    if mask_file is not None:
        m, how = read_mask_file(mask_file, (H, W)), f"from {mask_file}"
    elif mask is not None or scan.acquired_mask is None:  # (a mask for undersampled data is refused below)
        kind = mask or "equispaced"
        m = scan.retrospective_mask(kind, acceleration, seed, center_fraction)
        how = f"{kind}, R = {acceleration:g} (effective {m.acceleration:.2f})"
    else:
        m, how = None, f"as acquired ({int(scan.acquired_mask.sum())}/{W} lines)"
    loaded = None if method is not None else load_prior(prior_spec, device=device)
    label = method_label(prior_spec, method or loaded)
    info(f"{input.name}: {len(scan.slices)} of {scan.num_slices} slices, mask {how}, {label}")
    kwargs = dict(sens=sens, sens_options=sens_options(calib, kernel, threshold, crop, maps) if not Path(sens).exists() else None)
    if loaded is not None:
        kwargs.update(prior=loaded, checkpoint=partial)
        if partial.exists():
            info(f"Resuming from {partial} (finished slices of an earlier run).")
    try:
        res = reconstruct_file(scan, m, method=method, settings=settings, device=device, **kwargs)
    except KeyboardInterrupt:
        if partial.exists():
            saved(f"{partial} (the finished slices; rerun the same command to resume)")
        raise
    m = scan.acquired_mask if m is None else m
    info(f"coil maps: {res.info['sens'].get('method')} {res.info['sens'].get('note', '')}".rstrip())
    image = center_crop(res.image, scan.recon_size)
    given = res.info.get("given_slices", [])
    metric = None
    if scan.reference is not None:  # computed before writing: a result that fails its checks is not kept
        ref = scan.reference
        metric = evaluate(ref, center_crop(image, ref.shape[-2:]), data_range=scan.reference_max, exclude=given)
    extra = {"image": image.astype(np.complex64), "mask": np.asarray(getattr(m, "mask", m), dtype=np.float32)}
    if res.std is not None:
        extra["std"] = center_crop(res.std, scan.recon_size).astype(np.float32)
    attrs = {
        "source": str(input),
        "prior": prior_spec or method,
        "slices": json.dumps(scan.slices),
        "acceleration": float(res.info["acceleration"]),
        "seed": seed,
        "info": json.dumps({k: v for k, v in res.info.items() if k != "timings"}, default=str),
    }
    write_reconstruction(out, image, attrs=attrs, extra=extra)
    saved(out)
    console.print(f"Wrote {out}: reconstruction {tuple(image.shape)} (R = {res.info['acceleration']:.2f}).")
    if metric is not None:
        console.print(_metrics_table(f"{input.name} vs reconstruction_rss", {label: (metric, res.info["timings"]["total"])},
                                     _caption(scan, given)))  # fmt: skip
    if png is not None:
        from mrirecon.viz import save_comparison

        shape = scan.reference.shape[-2:] if scan.reference is not None else scan.recon_size
        panels, metrics = {}, {}
        if scan.reference is not None:
            panels["reference"] = scan.reference
        if method != "zero-filled":  # the baseline every method should beat
            zf = reconstruct(scan.kspace, m, method="zero-filled", sens=res.maps if res.maps.ndim == 4 else res.maps[:, 0])
            panels["zero-filled"] = center_crop(zf.image, shape)
            if scan.reference is not None:
                metrics["zero-filled"] = evaluate(scan.reference, panels["zero-filled"], data_range=scan.reference_max,
                                                  exclude=given)  # fmt: skip
        panels[label] = center_crop(res.image, shape)
        if metric is not None:
            metrics[label] = metric
        unc = {label: center_crop(res.std, shape)} if res.std is not None else None
        save_comparison(png, panels, uncertainty=unc, title=f"{input.name}: {how}", metrics=metrics or None,
                        slice_numbers=scan.slices, note=_caption(scan, given) if metrics else None)  # fmt: skip
        saved(png)
        console.print(f"Wrote {png}.")


# --------------------------------------------------------------------------------------------
# demo


@command(
    "demo",
    epilog=examples(
        "mrirecon demo",
        "mrirecon demo --out demo6 --mask random --acceleration 6",
        "mrirecon demo --acceleration 8",
        "mrirecon demo --steps 200 --samples 8 --device cuda",
    ),
)
def demo_cmd(
    out: Path = typer.Option(Path("mrirecon_demo"), "--out", "-o", help="Output folder."),
    mask: str = typer.Option("equispaced", "--mask", help="Mask kind: random, equispaced, poisson, gaussian."),
    acceleration: float = typer.Option(4.0, "--acceleration", "-R", help="Nominal acceleration."),
    center_fraction: float = typer.Option(
        None, "--center-fraction", help="Fully sampled centre (default: fastMRI's, 0.08 at 4x, 0.04 at 8x)."
    ),
    sens: str = SENS_OPTION,
    steps: int = typer.Option(50, "--steps", help="Diffusion steps per slice (AID and UNet)."),
    samples: int = typer.Option(4, "--samples", help="AID posterior samples per slice (uncertainty map)."),
    slices: str = typer.Option("all", "--slices", help="Slices of the sample scan: all, I, A:B or center:N."),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seed of the mask and of the sampler."),
    prior: str = typer.Option("default", "--prior", help="AID prior (registry name or CONFIG:WEIGHTS)."),
    unet_prior: str = typer.Option("default-unet", "--unet-prior", help="UNet prior ('none' to skip it)."),
    update: str = UPDATE_OPTION,
    eta: float = ETA_OPTION,
    dc: str = DC_OPTION,
    dc_steps: int = DC_STEPS_OPTION,
    first_slice: str = FIRST_SLICE_OPTION,
    spacing: str = SPACING_OPTION,
    schedule: str = SCHEDULE_OPTION,
    lag: int = LAG_OPTION,
    device: str = DEVICE_OPTION,
    threads: int = THREADS_OPTION,
) -> None:
    """Reconstruct the bundled sample scan with the bundled AID prior and the baselines.

    Retrospectively undersamples the sample scan, reconstructs it with zero-filling, CG-SENSE,
    L1-wavelet compressed sensing, the UNet twin prior and the AID prior (with posterior
    samples for an uncertainty map), prints PSNR/SSIM/NRMSE against the fully sampled
    reference and writes OUT/demo.png (reference | methods, error maps, uncertainty),
    OUT/recon.h5 (the AID reconstruction, fastMRI layout, with std, mask and the baselines)
    and OUT/metrics.json.
    """
    import numpy as np

    from mrirecon.assets import sample_scan_path
    from mrirecon.data.fastmri import write_reconstruction
    from mrirecon.data.scan import prepare_scan
    from mrirecon.files import atomic_write_text, check_output
    from mrirecon.metrics import evaluate
    from mrirecon.physics.fft import center_crop
    from mrirecon.prior import load_prior
    from mrirecon.recon import CLASSICAL_METHODS, method_label, reconstruct_file
    from mrirecon.viz import save_comparison, save_mask

    sens = sens_source(sens)
    check_output(out / "recon.h5", "--out", (".h5",))
    settings = recon_settings(steps=steps, seed=seed, update=update, eta=eta, dc=dc, dc_steps=dc_steps,
                              first_slice=first_slice, spacing=spacing, schedule=schedule, lag=lag)  # fmt: skip
    device = start(device, threads)
    path = sample_scan_path()
    scan = prepare_scan(path, slices)
    H, W = scan.shape
    mk = scan.retrospective_mask(mask, acceleration, seed, center_fraction)
    specs = list(CLASSICAL_METHODS) + ([unet_prior] if unet_prior != "none" else []) + [prior]
    info(
        f"Sample scan {path.name}: {len(scan.slices)} slices, {scan.kspace.shape[1]} coils, {H}x{W}; "
        f"{mask} mask R = {acceleration:g} (effective {mk.acceleration:.2f}); {steps} steps, {samples} AID samples"
    )
    results, metrics, maps = {}, {}, sens
    for spec in specs:
        classical = spec in CLASSICAL_METHODS
        loaded = None if classical else load_prior(spec, device=device)
        label = method_label(spec, spec if classical else loaded)
        info(f"[bold]{label}[/bold] ...")
        run = replace(settings, n_samples=samples if spec == prior else 1)
        res = reconstruct_file(scan, mk, method=spec if classical else None, prior=loaded, settings=run, sens=maps, device=device)
        if isinstance(maps, str):
            info(f"coil maps: {res.info['sens'].get('method')} ({res.info['sens'].get('note', '')})")
        maps = res.maps  # estimate coil maps once, share them
        ref = scan.reference
        res.image = center_crop(res.image, ref.shape[-2:])
        if res.std is not None:
            res.std = center_crop(res.std, ref.shape[-2:])
        given = res.info.get("given_slices", [])
        results[label] = res
        metrics[label] = (evaluate(ref, res.image, data_range=scan.reference_max, exclude=given), res.info["timings"]["total"])
    aid_label = list(results)[-1]  # the AID prior runs last
    given = results[aid_label].info.get("given_slices", [])
    caption = _caption(scan, given)
    console.print(_metrics_table(f"{path.name}: {mask} R={acceleration:g}", metrics, caption))
    aid = results[aid_label]
    panels = {"reference": scan.reference, **{label: r.image for label, r in results.items()}}
    fig = save_comparison(
        out / "demo.png",
        panels,
        error_of="reference",
        metrics={label: m for label, (m, _) in metrics.items()},
        uncertainty={aid_label: aid.std} if aid.std is not None else None,
        title=f"{path.name}: {mask} mask, R = {acceleration:g} (effective {mk.acceleration:.2f})",
        slice_numbers=scan.slices,
        note="metrics: " + caption,
    )
    saved(fig)
    save_mask(out / "mask.png", mk.mask, title=f"{mask}, R = {acceleration:g}")
    extra = {"image": aid.image.astype(np.complex64), "mask": np.asarray(mk.mask, np.float32)}
    if aid.std is not None:
        extra["std"] = aid.std.astype(np.float32)
    for label, r in results.items():
        if label != aid_label:  # dataset names: "zero_filled", "cg_sense", "l1_wavelet", "unet"
            extra[re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")] = np.abs(r.image).astype(np.float32)
    h5 = write_reconstruction(
        out / "recon.h5",
        aid.image,
        attrs={"source": path.name, "prior": prior, "mask": mask, "acceleration": acceleration,
               "steps": steps, "n_samples": samples, "seed": seed},  # fmt: skip
        extra=extra,
    )
    saved(h5)
    summary = {label: {**m.as_dict(), "seconds": s} for label, (m, s) in metrics.items()}
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    saved(out / "metrics.json")
    console.print(f"Wrote {fig}, {h5}, {out / 'mask.png'} and {out / 'metrics.json'}.")
