"""mrirecon convert: raw formats -> fastMRI layout (round trips on arrays written here; the shared real scans)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from mrirecon.data import prepare_scan, write_cfl
from mrirecon.data.convert import convert, parse_axes, read_raw
from mrirecon.errors import MrireconError
from mrirecon.physics.coils import rss
from mrirecon.physics.fft import fft2c, ifft2c

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "kspace"


def _kspace(S=2, C=3, H=16, W=12, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W))).astype(np.complex64)


def _check(path: Path, k: np.ndarray) -> None:
    scan = prepare_scan(path)
    np.testing.assert_allclose(scan.kspace, k, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scan.reference, rss(ifft2c(k)), rtol=1e-5, atol=1e-5)


def test_npy_any_axis_order(tmp_path):
    k = _kspace()
    np.save(tmp_path / "k.npy", np.transpose(k, (2, 3, 1, 0)))  # readout, phase, coil, slice
    out, raw, full = convert(tmp_path / "k.npy", tmp_path / "k.h5", axes="readout,phase,coil,slice")
    assert full and raw.kspace.shape == k.shape
    _check(out, k)


def test_mat_v5_coil_images_with_singletons(tmp_path):
    k = _kspace(S=1)
    images = np.transpose(ifft2c(k)[0], (1, 2, 0))[None]  # 1 x H x W x C coil images
    scipy.io.savemat(tmp_path / "img.mat", {"DATA": images, "scale": np.ones(3)})
    out, _, _ = convert(tmp_path / "img.mat", tmp_path / "img.h5", axes="-,readout,phase,coil", image_domain=True)
    _check(out, k)


def test_mat_v73_through_h5py(tmp_path):
    """MATLAB v7.3 is HDF5 with reversed dimensions and complex as a (real, imag) compound."""
    k = _kspace(S=1, C=2)
    arr = np.transpose(k[0], (1, 2, 0))  # H x W x C in MATLAB's order
    compound = np.empty(arr.T.shape, dtype=[("real", "<f8"), ("imag", "<f8")])
    compound["real"], compound["imag"] = arr.T.real, arr.T.imag
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:
        f.create_dataset("kdata", data=compound)
        f.create_dataset("other", data=compound)
    with open(tmp_path / "v73.mat", "r+b") as f:  # MATLAB's text header in the user block
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Dec  4 12:00:00 2026 HDF5 schema 1.00 .".ljust(116))
        f.write(b"\0" * 8 + b"\x00\x02" + b"IM")
    with pytest.raises(MrireconError, match="several complex variables .*--var"):
        read_raw(tmp_path / "v73.mat", axes="readout,phase,coil")
    out, _, _ = convert(tmp_path / "v73.mat", tmp_path / "v73.h5", axes="readout,phase,coil", var="kdata")
    _check(out, k)


def test_bart_default_axes(tmp_path):
    k = _kspace(S=1, C=4)
    write_cfl(tmp_path / "ksp", np.transpose(k[0], (1, 2, 0))[:, :, None, :])  # BART: READ, PHS1, PHS2, COIL
    out, _, _ = convert(tmp_path / "ksp.cfl", tmp_path / "ksp.h5", pixel_size="0.5,0.8")
    _check(out, k)
    assert prepare_scan(out).pixel_size_mm == pytest.approx((0.5, 0.8))


def test_padding_trimmed_oversampling_and_undersampled_input(tmp_path):
    k = _kspace(S=1, H=32, W=20)
    padded = k.copy()
    padded[..., :4] = 0
    padded[..., -4:] = 0
    np.save(tmp_path / "p.npy", padded[0])
    out, raw, full = convert(tmp_path / "p.npy", tmp_path / "p.h5", axes="coil,readout,phase", readout_oversampling=2)
    assert full and raw.kspace.shape[-1] == 12 and raw.recon_height == 16 and "trimmed 4" in raw.notes[0]
    scan = prepare_scan(out)
    assert scan.kspace.shape == (1, 3, 16, 12) and scan.reference.shape == (1, 16, 12)
    assert scan.pixel_size_mm is None  # unknown stays unknown, not 1 mm
    under = k.copy()
    under[..., 1::3] = 0  # undersampled inside: no reference, nothing trimmed
    np.save(tmp_path / "u.npy", under[0])
    out, raw, full = convert(tmp_path / "u.npy", tmp_path / "u.h5", axes="coil,readout,phase")
    assert not full and raw.kspace.shape[-1] == 20
    assert prepare_scan(out).acquired_mask is not None


def test_ismrmrd_acquisitions_are_placed_by_their_indices(tmp_path):
    ismrmrd = pytest.importorskip("ismrmrd")
    from mrirecon.data import make_ismrmrd_header

    k = _kspace(S=2, C=3, H=32, W=12)
    path = tmp_path / "raw.h5"
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(make_ismrmrd_header((32, 12), (16, 12), coils=3, slices=2, fov_mm=(32.0, 24.0, 3.0)))
    noise = ismrmrd.Acquisition.from_array(np.ones((3, 32), np.complex64))
    noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    ds.append_acquisition(noise)
    for s in range(2):
        for line in range(12):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(k[s, :, :, line]))
            acq.idx.kspace_encode_step_1, acq.idx.slice, acq.center_sample = line, s, 16
            ds.append_acquisition(acq)
    ds.close()
    out, raw, full = convert(path, tmp_path / "out.h5")
    assert full and raw.recon_height == 16 and raw.pixel_size_mm == pytest.approx((2.0, 2.0))
    scan = prepare_scan(out)
    np.testing.assert_allclose(scan.kspace, fft2c(ifft2c(k)[..., 8:24, :]), atol=1e-5)


@pytest.mark.parametrize(
    ("setup", "options", "match"),
    [
        (lambda p: np.save(p / "a.npy", _kspace()[0]), {}, "say what each dimension is with --axes"),
        (lambda p: np.save(p / "a.npy", _kspace()[0]), {"axes": "readout,phase"}, "name every non-singleton"),
        (lambda p: np.save(p / "a.npy", _kspace()[0]), {"axes": "-,readout,phase"}, "must be a singleton"),
        (lambda p: np.save(p / "a.npy", _kspace()[0].real), {"axes": "coil,readout,phase"}, "expected complex"),
        (lambda p: np.save(p / "a.npy", np.full((2, 4, 4), np.nan, np.complex64)), {"axes": "coil,readout,phase"}, "NaN"),
        (lambda p: np.save(p / "a.npy", np.zeros((2, 4, 4), np.complex64)), {"axes": "coil,readout,phase"}, "all zero"),
    ],
)
def test_bad_arrays_get_one_line(tmp_path, setup, options, match):
    setup(tmp_path)
    before = (tmp_path / "a.npy").read_bytes()
    with pytest.raises(MrireconError, match=match):
        convert(tmp_path / "a.npy", tmp_path / "out.h5", **options)
    assert (tmp_path / "a.npy").read_bytes() == before and not (tmp_path / "out.h5").exists()


def test_bad_names_and_formats(tmp_path):
    with pytest.raises(MrireconError, match="unknown axis 'kx'"):
        parse_axes("kx,phase")
    with pytest.raises(MrireconError, match="'coil' is named 2 times"):
        parse_axes("readout,phase,coil,coil")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(MrireconError, match="unknown raw format"):
        read_raw(tmp_path / "x.txt")
    from mrirecon.data import write_fastmri_scan

    write_fastmri_scan(tmp_path / "f.h5", _kspace())
    with pytest.raises(MrireconError, match="already a fastMRI file"):
        read_raw(tmp_path / "f.h5")


def test_missing_optional_package_gives_the_install_hint(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_twix(name, *a, **kw):
        if name.startswith("twixtools"):
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_twix)
    (tmp_path / "meas.dat").write_bytes(b"\0" * 64)
    with pytest.raises(MrireconError, match=r"mrirecon\[raw\]"):
        read_raw(tmp_path / "meas.dat")


def test_cli_convert(tmp_path):
    from typer.testing import CliRunner

    from mrirecon.cli.main import app

    np.save(tmp_path / "k.npy", _kspace()[0])
    r = CliRunner().invoke(app, ["convert", str(tmp_path / "k.npy"), "-o", str(tmp_path / "k.h5"), "--axes", "coil,readout,phase"])
    assert r.exit_code == 0, r.output
    assert "fully sampled" in r.output and (tmp_path / "k.h5").is_file()
    r = CliRunner().invoke(app, ["convert", str(tmp_path / "k.npy"), "-o", str(tmp_path / "k2.h5")])
    assert r.exit_code == 2 and "--axes" in r.output and "Traceback" not in r.output


# ----------------------------------------------------------------------------------------------
# the real scans of ../shared/data/kspace (skipped in a user's clone)

REAL = [
    ("spirit_brain_alias_8ch.mat", {"axes": "readout,phase,coil"}, (1, 8, 320, 168)),
    ("ugmpi_4h_GE.mat", {"axes": "readout,phase,coil", "image_domain": True}, (1, 4, 256, 256)),
    ("twixtools_example_gre.dat", {}, (1, 2, 160, 160)),
]


@pytest.mark.parametrize(("name", "options", "shape"), REAL, ids=[r[0] for r in REAL])
def test_shared_real_scans_convert_and_reconstruct(tmp_path, name, options, shape):
    src = SHARED / name
    if not src.is_file():
        pytest.skip(f"{src} is not here (a user's clone has no ../shared)")
    if name.endswith(".dat"):
        pytest.importorskip("twixtools")
    out, raw, full = convert(src, tmp_path / "scan.h5", **options)
    scan = prepare_scan(out)
    assert full and scan.kspace.shape == shape and scan.reference.shape == (1, *shape[-2:])
    from mrirecon import reconstruct
    from mrirecon.metrics import evaluate

    mask = scan.retrospective_mask("equispaced", 4).mask
    zf = evaluate(scan.reference, rss(ifft2c(scan.kspace * mask))).psnr
    res = reconstruct(scan.kspace, mask, method="sense", progress=False)  # hold-out λ and maps, as a user gets them
    assert evaluate(scan.reference, res.image).psnr >= zf and res.info["lam_source"] == "holdout"
    # (the L1 hold-out is ~20 s per real slice on 2 cores: the benchmark measures it; here a given λ)
    res = reconstruct(scan.kspace, mask, method="l1-wavelet", lam=1e-2, iters=30, sens=res.maps, progress=False)
    assert evaluate(scan.reference, res.image).psnr > zf
    res = reconstruct(scan.kspace, mask, "default", steps=2, progress=False, pixel_size_mm=scan.pixel_size_mm)
    assert np.isfinite(res.image).all() and res.image.shape == (1, *shape[-2:])
