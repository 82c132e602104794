"""Data commands: ``convert`` (raw data -> fastMRI file), ``info`` (inspect a file), ``mask`` (make a sampling
mask), ``sens`` (coil maps)."""

from __future__ import annotations

from pathlib import Path

import typer

from mrirecon.cli._common import (
    CALIB_OPTION,
    CROP_OPTION,
    DEVICE_OPTION,
    KERNEL_OPTION,
    THREADS_OPTION,
    THRESHOLD_OPTION,
    command,
    console,
    examples,
    existing_file,
    info,
    output_path,
    parse_shape,
    saved,
    sens_options,
    start,
)
from mrirecon.errors import MrireconError

# --------------------------------------------------------------------------------------------
# convert


@command(
    "convert",
    epilog=examples(
        "mrirecon convert brain.mat -o brain.h5 --axes readout,phase,coil             # MATLAB 256 x 256 x 4 k-space",
        "mrirecon convert coils.mat -o brain.h5 --axes readout,phase,coil --image-domain --var DATA",
        "mrirecon convert slice.cfl -o slice.h5 --axes -,readout,phase,coil --pixel-size 0.9",
        "mrirecon convert meas_MID42.dat -o gre.h5                                    # Siemens twix",
        "mrirecon convert acq.mrd.h5 -o scan.h5                                       # ISMRMRD / MRD",
        "mrirecon recon brain.h5 -o recon.h5 --mask equispaced -R 4 --png recon.png",
    ),
)
def convert_cmd(
    input: Path = typer.Argument(..., help="Raw data: BART .cfl/.hdr, .npy, MATLAB .mat (v5 or v7.3), ISMRMRD .h5, "
                                 "Siemens twix .dat."),  # fmt: skip
    out: Path = typer.Option(..., "--out", "-o", help="Output fastMRI-layout .h5 (kspace, ismrmrd_header, "
                             "reconstruction_rss when fully sampled)."),  # fmt: skip
    axes: str = typer.Option(None, "--axes", help="Arrays: what each dimension is, in order, from readout, phase, "
                             "coil, slice and - (a singleton to drop); trailing singletons may be omitted. "
                             "BART files default to BART's order."),  # fmt: skip
    var: str = typer.Option(None, "--var", help="MATLAB variable (default: the only complex array)."),
    image_domain: bool = typer.Option(False, "--image-domain", help="The array holds coil images, not k-space."),
    pixel_size: str = typer.Option(None, "--pixel-size", help="Pixel size in mm: MM or READOUT,PHASE (default: "
                                   "from the header; arrays: unknown)."),  # fmt: skip
    oversampling: float = typer.Option(None, "--readout-oversampling", help="Arrays: readout oversampling factor "
                                       "(2 for a 2x oversampled readout; default 1; twix/ISMRMRD: from the header)."),  # fmt: skip
    keep_padding: bool = typer.Option(False, "--keep-padding", help="Keep zero-padded phase-encode columns "
                                      "(default: trimmed symmetrically)."),  # fmt: skip
) -> None:
    """Convert raw k-space (or coil images) into a fastMRI-layout file that every command reads."""
    from mrirecon.data.convert import convert, parse_axes

    suffix = input.suffix.lower()
    if suffix not in (".cfl", ".hdr"):
        input = existing_file(input)
    output_path(out, (".h5",), "--out", [input])
    written, raw, full = convert(input, out, axes=parse_axes(axes), var=var, image_domain=image_domain,
                                 pixel_size=pixel_size, readout_oversampling=oversampling,
                                 trim=not keep_padding)  # fmt: skip
    saved(written)
    S, C, H, W = raw.kspace.shape
    t = _kv_table(f"converted {input.name}")
    t.add_row("kspace", f"{S} slice(s) x {C} coil(s) x {H} readout x {W} phase encode")
    if raw.recon_height != H:
        t.add_row("readout oversampling", f"{H} -> {raw.recon_height} (removed when read)")
    px = raw.pixel_size_mm
    if px is not None:
        t.add_row("pixel size", f"{px[0]:.3g} x {px[1]:.3g} mm")
    t.add_row("sampling", "fully sampled: reconstruction_rss written" if full else "undersampled: no reference")
    for note in raw.notes:
        t.add_row("note", note)
    t.add_row("written", str(written))
    console.print(t)


# --------------------------------------------------------------------------------------------
# info


def _kv_table(title: str):
    from rich.table import Table

    t = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    return t


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and len(v) > 8:
        return f"[{', '.join(map(str, v[:8]))}, ...] ({len(v)} values)"
    return str(v)


def _info_reconstruction(path: Path) -> None:
    """Show an HDF5 written by mrirecon (``reconstruction`` + extras) or any non-scan HDF5."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        t = _kv_table(f"{path.name}: reconstruction file")
        for name, ds in f.items():
            if hasattr(ds, "shape"):
                t.add_row(name, f"{ds.dtype} {tuple(ds.shape)}")
        for k, v in f.attrs.items():
            t.add_row(f"attr {k}", _fmt(v.decode() if isinstance(v, bytes) else np.asarray(v).tolist()))
    console.print(t)


@command(
    "info",
    epilog=examples("mrirecon info file_brain_AXT1POST_200_6002026.h5", "mrirecon info results/recon.h5"),
)
def info_cmd(
    file: Path = typer.Argument(..., help="fastMRI .h5 file (raw data, or a reconstruction written by mrirecon; 'sample': the bundled scan)."),
) -> None:
    """Show a fastMRI file: k-space shape, coils, acquisition, header geometry, mask, reference."""
    import h5py

    from mrirecon.data.fastmri import open_scan
    from mrirecon.data.scan import detect_mask, pixel_size

    file = existing_file(file, "FILE")
    try:
        scan = open_scan(file)
    except MrireconError:
        is_recon = False
        try:
            if h5py.is_hdf5(file):
                with h5py.File(file, "r") as f:
                    is_recon = "reconstruction" in f
        except OSError:  # a truncated or damaged file: open_scan's message says so
            pass
        if is_recon:
            _info_reconstruction(file)
            return
        raise
    S, C, H, W = scan.kspace_shape
    t = _kv_table(f"{file.name}")
    t.add_row("kind", "multi-coil" if scan.multicoil else "single-coil")
    t.add_row("kspace", f"{S} slices x {C} coils x {H} readout x {W} phase-encode (complex64)")
    t.add_row("image size", f"{scan.recon_size[0]} x {scan.recon_size[1]} (after removing readout oversampling)")
    t.add_row(
        "reference",
        f"{scan.reference_key} {scan.reference_shape}" if scan.reference_key else "none (test/challenge file)",
    )
    # prospective undersampling: the file's mask dataset, or columns of exact zeros
    detected = detect_mask(scan)
    if detected is None:
        t.add_row("sampling", "fully sampled (retrospective masks apply)")
    else:
        n = int(detected.sum())
        source = "mask dataset" if scan.mask is not None else "non-zero columns"
        t.add_row("sampling", f"undersampled ({source}: {n}/{W} phase-encode lines, R = {W / max(n, 1):.2f})")
    if scan.header is not None:
        hd = scan.header
        t.add_row("encoded matrix", " x ".join(map(str, hd.encoded_size)))
        t.add_row("recon matrix", " x ".join(map(str, hd.recon_size)))
        if hd.recon_fov_mm:
            t.add_row("recon FOV (mm)", " x ".join(f"{v:g}" for v in hd.recon_fov_mm))
        px = pixel_size(hd)
        if px is not None:
            t.add_row("pixel size (mm)", f"{px[0]:.2f} x {px[1]:.2f}")
        t.add_row(
            "phase-encode limits",
            f"min {hd.kspace_encoding_step_1[0]}, max {hd.kspace_encoding_step_1[1]}, "
            f"center {hd.kspace_encoding_step_1[2]} (acquired columns {hd.padding_left}..{hd.padding_right - 1})",
        )
        if hd.receiver_channels is not None:
            t.add_row("receiver channels", str(hd.receiver_channels))
    else:
        t.add_row("header", "none (no ismrmrd_header dataset)")
    for k in sorted(scan.attrs):
        t.add_row(f"attr {k}", _fmt(scan.attrs[k]))
    console.print(t)


# --------------------------------------------------------------------------------------------
# mask


@command(
    "mask",
    epilog=examples(
        "mrirecon mask equispaced --shape 320x320 --acceleration 4 -o mask.npy --png mask.png",
        "mrirecon mask random --shape 640x368 -R 8 --center-fraction 0.04 --seed 1 -o mask.npy",
        "mrirecon mask poisson --shape 320x320 -R 8 --png poisson.png",
    ),
)
def mask_cmd(
    kind: str = typer.Argument(..., help="Mask kind: random, equispaced, poisson or gaussian."),
    shape: str = typer.Option("320x320", "--shape", help="Mask size HxW (H = readout, W = phase encode)."),
    acceleration: float = typer.Option(4.0, "--acceleration", "-R", help="Nominal acceleration R."),
    center_fraction: float = typer.Option(
        None, "--center-fraction", help="Fraction of fully sampled central lines (default: per kind, fastMRI's)."
    ),
    acs_lines: int = typer.Option(None, "--acs-lines", help="Number of central lines instead of a fraction."),
    seed: int = typer.Option(0, "--seed", help="Random seed (equal seeds give equal masks)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the (H, W) float32 mask as .npy."),
    png: Path = typer.Option(None, "--png", help="Write a picture of the mask."),
) -> None:
    """Make a k-space sampling mask and report its effective acceleration."""
    import numpy as np

    from mrirecon.physics.masks import make_mask

    hw = parse_shape(shape)
    if out is not None:
        output_path(out, (".npy",), "--out")
    if png is not None:
        output_path(png, (".png",), "--png")
    m = make_mask(kind, hw, acceleration, seed=seed, center_fraction=center_fraction, acs_lines=acs_lines)
    arr = np.asarray(m.mask, dtype=np.float32)
    t = _kv_table(f"{kind} mask")
    t.add_row("shape", f"{arr.shape[0]} x {arr.shape[1]}")
    t.add_row("nominal R", f"{acceleration:g}")
    t.add_row("effective R", f"{m.acceleration:.3f} ({arr.sum() / arr.size:.1%} of k-space sampled)")
    if np.all(arr == arr[:1]):
        t.add_row("sampled lines", f"{int(arr[0].sum())} of {arr.shape[1]} phase-encode lines")
    if out is not None:
        from mrirecon.files import atomic_save_npy

        atomic_save_npy(out, arr)
        saved(out)
        t.add_row("written", str(out))
    if png is not None:
        from mrirecon.viz import save_mask

        save_mask(png, arr, title=f"{kind}, R={acceleration:g} (effective {m.acceleration:.2f})")
        saved(png)
        t.add_row("figure", str(png))
    console.print(t)


# --------------------------------------------------------------------------------------------
# sens


@command(
    "sens",
    epilog=examples(
        "mrirecon sens scan.h5 -o maps.h5 --png maps.png",
        "mrirecon sens scan.h5 -o maps.h5 --mask equispaced -R 4     # from the calibration lines of a 4x mask",
        "mrirecon sens scan.h5 -o maps.npy --method direct --slices 4,5,6",
        "mrirecon recon scan.h5 -o recon.h5 --sens maps.h5           # use them",
    ),
)
def sens_cmd(
    input: Path = typer.Argument(..., help="fastMRI .h5 file ('sample': the bundled scan)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .h5 (dataset 'sens_maps') or .npy."),
    method: str = typer.Option(
        "auto", "--method", help="auto (ESPIRiT adapted to the calibration lines, JSENSE below 5; direct maps instead when they predict held-out k-space lines better), espirit, direct, "
        "jsense, espirit-sigpy."
    ),
    mask: str = typer.Option(
        None, "--mask", help="Calibrate on the lines of this retrospective mask kind (default: the file's own "
        "sampling; fully sampled files: the whole k-space, i.e. oracle maps)."
    ),
    acceleration: float = typer.Option(4.0, "--acceleration", "-R", help="Acceleration of --mask."),
    seed: int = typer.Option(0, "--seed", help="Seed of --mask (crc32(file name) + seed, as recon and evaluate)."),
    calib: str = CALIB_OPTION,
    kernel: str = KERNEL_OPTION,
    crop: float = CROP_OPTION,
    threshold: float = THRESHOLD_OPTION,
    slices: str = typer.Option("all", "--slices", help="Slices: all, I, I,J,K, A:B or center:N."),
    png: Path = typer.Option(None, "--png", help="Picture of the maps' magnitude (middle slice, background masked)."),
    device: str = DEVICE_OPTION,
    threads: int = THREADS_OPTION,
) -> None:
    """Estimate coil sensitivity maps (S, C, H, W) from a file's k-space (its calibration lines)."""
    import numpy as np

    from mrirecon.data.fastmri import write_reconstruction
    from mrirecon.data.scan import prepare_scan
    from mrirecon.physics.coils import calibrate, rss
    from mrirecon.physics.fft import ifft2c

    input = existing_file(input)
    output_path(out, (".h5", ".npy"), "--out", [input])
    if png is not None:
        output_path(png, (".png",), "--png", [input])
    device = start(device, threads)
    scan = prepare_scan(input, slices)
    m = scan.acquired_mask
    if mask is not None:
        m = scan.retrospective_mask(mask, acceleration, seed).mask
    k = scan.kspace if m is None else scan.kspace * m
    info(f"Estimating {method} maps for {len(scan.slices)} slices of {input.name} ...")
    cal = calibrate(k, m, method, device=None if device == "cpu" else device,
                    **sens_options(calib, kernel, threshold, crop))  # fmt: skip
    maps = np.asarray(cal.maps)
    info(f"coil maps: {cal.describe()}")
    if out.suffix.lower() == ".npy":
        from mrirecon.files import atomic_save_npy

        atomic_save_npy(out, maps.astype(np.complex64))
    else:
        write_reconstruction(
            out,
            rss(maps),
            attrs={"method": cal.method, "source": str(input), "slices": ",".join(map(str, scan.slices)),
                   "calibration": cal.describe()},  # fmt: skip
            extra={"sens_maps": maps.astype(np.complex64)},
        )
    saved(out)
    if png is not None:
        from mrirecon.viz import save_strip

        mid = len(scan.slices) // 2
        body = rss(ifft2c(scan.kspace[mid]))
        show = body > 0.05 * body.max()  # the object: noise-only background is not a sensitivity
        save_strip(png, np.abs(maps[mid]), titles=[f"coil {c}" for c in range(maps.shape[1])], colorbar=True, mask=show,
                   cmap="viridis", title=f"|sensitivity| per coil, volume slice {scan.slices[mid]} ({cal.describe()})")  # fmt: skip
        saved(png)
    console.print(f"Wrote {out}: sens_maps {tuple(maps.shape)} complex64 ({cal.method}).")
