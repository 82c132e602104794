"""fastMRI HDF5 I/O: round trip of a simulated scan, lazy reads, headers, bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from fastmri import evaluate as fm

from mrirecon.data.fastmri import (
    make_ismrmrd_header,
    open_scan,
    parse_ismrmrd_header,
    write_fastmri_scan,
    write_reconstruction,
)
from mrirecon.data.simulate import phantom_volume, rss_reference, simulate_scan, write_simulated
from mrirecon.errors import MrireconError


@pytest.fixture(scope="module")
def sim():
    return simulate_scan(phantom_volume(3, 32, 24, seed=0), coils=4, snr_db=25.0, seed=0)


@pytest.fixture()
def scan_file(tmp_path, sim):
    return write_simulated(tmp_path / "file_brain_AXT1_sim.h5", sim, acquisition="AXT2")


def test_file_has_exact_fastmri_layout(scan_file, sim):
    with h5py.File(scan_file, "r") as f:
        assert set(f.keys()) == {"kspace", "reconstruction_rss", "ismrmrd_header"}
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (3, 4, 64, 24)
        assert f["reconstruction_rss"].dtype == np.float32 and f["reconstruction_rss"].shape == (3, 32, 24)
        assert isinstance(f["ismrmrd_header"][()], bytes)
        assert f.attrs["acquisition"] == "AXT2"
        assert f.attrs["max"] == pytest.approx(float(sim.reference_rss.max()))
        assert f.attrs["norm"] == pytest.approx(float(np.linalg.norm(sim.reference_rss)), rel=1e-6)
        assert isinstance(f.attrs["patient_id"], str)
    assert not list(Path(scan_file).parent.glob(".*tmp"))  # atomic write left nothing behind


def test_round_trip(scan_file, sim):
    scan = open_scan(scan_file)
    assert scan.multicoil and scan.num_slices == 3 and scan.num_coils == 4 and len(scan) == 3
    assert scan.kspace_shape == (3, 4, 64, 24)
    assert scan.reference_key == "reconstruction_rss" and scan.reference_shape == (3, 32, 24)
    assert scan.attrs["acquisition"] == "AXT2" and scan.attrs["simulated"] in (True, 1)
    assert scan.header.encoded_size == (64, 24, 1) and scan.header.recon_size == (32, 24, 1)
    assert scan.header.kspace_encoding_step_1 == (0, 23, 12)
    assert (scan.header.padding_left, scan.header.padding_right) == (0, 24)
    assert scan.header.receiver_channels == 4
    assert scan.recon_size == (32, 24)
    k = scan.load_kspace()
    assert k.dtype == np.complex64 and k.shape == (3, 4, 64, 24)
    np.testing.assert_array_equal(k, sim.kspace)
    # lazy slice reads equal the full read, also inside one open handle
    for i in range(3):
        np.testing.assert_array_equal(scan.kspace_slice(i), k[i])
    with scan:
        np.testing.assert_array_equal(scan.load_kspace([2, 0]), k[[2, 0]])
        np.testing.assert_array_equal(scan.load_kspace(slice(1, None)), k[1:])
        np.testing.assert_array_equal(scan.kspace_slice(-1), k[2])
    assert scan._handle is None
    ref = scan.reference_image
    assert ref.dtype == np.float32
    np.testing.assert_array_equal(ref, sim.reference_rss)
    np.testing.assert_array_equal(scan.reference_slice(1), ref[1])
    # the stored reference is what fastMRI computes from the file's own k-space
    np.testing.assert_allclose(rss_reference(k, scan.recon_size), ref, rtol=1e-6, atol=1e-7)
    with pytest.raises(MrireconError, match="slice index 3 out of range"):
        scan.kspace_slice(3)


def test_single_coil_file(tmp_path):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((2, 16, 12)) + 1j * rng.standard_normal((2, 16, 12))).astype(np.complex64)
    esc = np.abs(rng.standard_normal((2, 8, 12))).astype(np.float32)
    path = tmp_path / "single.h5"
    with h5py.File(path, "w") as f:  # as fastMRI's singlecoil files: esc and rss references
        f["kspace"] = k
        f["reconstruction_esc"] = esc
        f["reconstruction_rss"] = esc + 1
        f["ismrmrd_header"] = make_ismrmrd_header((16, 12), (8, 12))
        f["mask"] = np.ones(12, dtype=np.float32)
        f.attrs["acceleration"] = 4
    scan = open_scan(path)
    assert not scan.multicoil and scan.kspace_shape == (2, 1, 16, 12)
    assert scan.reference_key == "reconstruction_esc"
    np.testing.assert_array_equal(scan.load_kspace()[:, 0], k)
    np.testing.assert_array_equal(scan.reference_image, esc)
    assert scan.mask.shape == (12,) and scan.attrs["acceleration"] == 4


def test_header_parsing_with_and_without_namespace():
    xml = make_ismrmrd_header((640, 368), (320, 320), coils=15, slices=30, encoding_center=184, encoding_maximum=330)
    h = parse_ismrmrd_header(xml)
    assert h.encoded_size == (640, 368, 1) and h.recon_size == (320, 320, 1)
    assert h.kspace_encoding_step_1 == (0, 330, 184)
    assert (h.padding_left, h.padding_right) == (0, 331)
    assert h.encoded_fov_mm == pytest.approx((440.0, 253.0, 5.0))
    plain = xml.replace(' xmlns="http://www.ismrm.org/ISMRMRD"', "")
    assert parse_ismrmrd_header(plain) == h
    with pytest.raises(MrireconError, match="missing element 'encoding/reconSpace/matrixSize/y'"):
        parse_ismrmrd_header(xml.replace("<y>320</y>", ""))
    with pytest.raises(MrireconError, match="not valid XML"):
        parse_ismrmrd_header("<ismrmrdHeader>")


def test_write_reconstruction_is_evaluable(tmp_path, sim):
    recon = sim.reference_rss * np.exp(1j * 0.5) * 1.01  # complex: stored as magnitude
    out = write_reconstruction(
        tmp_path / "sub" / "file.h5",
        recon,
        attrs={"acceleration": 4, "normalization": "lstsq"},
        extra={"image": recon.astype(np.complex64), "std": np.ones((3, 32, 24), np.float32)},
    )
    with h5py.File(out, "r") as f:
        rec = f["reconstruction"][()]
        assert rec.dtype == np.float32 and rec.shape == (3, 32, 24)
        assert f["image"].dtype == np.complex64 and f.attrs["normalization"] == "lstsq"
    # what fastmri.evaluate computes on the written file
    gt = sim.reference_rss
    assert float(fm.nmse(gt, rec)) == pytest.approx(1e-4, rel=1e-3)
    with pytest.raises(MrireconError, match=r"recon must be \(slices, H, W\)"):
        write_reconstruction(tmp_path / "x.h5", np.ones((4, 4)))
    with pytest.raises(MrireconError, match="extra dataset names"):
        write_reconstruction(tmp_path / "x.h5", np.ones((1, 4, 4)), extra={"reconstruction": np.ones(3)})
    with pytest.raises(MrireconError, match=r"extra\['std'\] contains NaN"):
        write_reconstruction(tmp_path / "x.h5", np.ones((1, 4, 4)), extra={"std": np.full(3, np.nan)})
    assert not (tmp_path / "x.h5").exists()


def test_write_scan_validates(tmp_path):
    with pytest.raises(MrireconError, match="kspace must be"):
        write_fastmri_scan(tmp_path / "a.h5", np.ones((4, 4), np.complex64))
    with pytest.raises(MrireconError, match="reference_rss must be real"):
        write_fastmri_scan(tmp_path / "a.h5", np.ones((2, 1, 4, 4), np.complex64), np.ones((3, 2, 2)))
    with pytest.raises(MrireconError, match="header_xml: not valid XML"):
        write_fastmri_scan(tmp_path / "a.h5", np.ones((2, 1, 4, 4), np.complex64), header_xml="<x")


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


@pytest.mark.parametrize(
    "datasets, match",
    [
        (dict(reconstruction_rss=np.ones((2, 4, 4), np.float32)), "missing dataset 'kspace'"),
        (dict(kspace=np.ones((2, 4, 4), np.float32)), "dataset 'kspace' must be complex"),
        (dict(kspace=np.ones((4, 4), np.complex64)), r"dataset 'kspace' has shape \(4, 4\)"),
        (dict(kspace=np.ones((2, 3, 1, 4, 4), np.complex64)), "expected fastMRI"),
        (
            dict(kspace=np.ones((2, 3, 4, 4), np.complex64), reconstruction_rss=np.ones((3, 4, 4), np.float32)),
            "'reconstruction_rss' has 3 slices but 'kspace' has 2",
        ),
        (
            dict(kspace=np.ones((2, 3, 4, 4), np.complex64), ismrmrd_header=b"<ismrmrdHeader/>"),
            "ismrmrd_header: missing element 'encoding'",
        ),
        (
            dict(kspace=np.ones((2, 3, 4, 4), np.complex64), mask=np.ones(5)),
            "dataset 'mask' must be",
        ),
    ],
)
def test_bad_files(tmp_path, datasets, match):
    path = _write(tmp_path / "bad.h5", **datasets)
    with pytest.raises(MrireconError, match=match) as info:
        open_scan(path)
    assert "bad.h5" in str(info.value) and "\n" not in str(info.value)


def test_nan_kspace_and_missing_files(tmp_path):
    k = np.ones((3, 2, 4, 4), np.complex64)
    k[1, 0, 2, 2] = np.nan
    scan = open_scan(_write(tmp_path / "nan.h5", kspace=k))
    np.testing.assert_array_equal(scan.kspace_slice(0), k[0])  # the good slices still read
    with pytest.raises(MrireconError, match=r"nan.h5: dataset 'kspace' contains NaN or Inf values \(slices 1\)"):
        scan.kspace_slice(1)
    with pytest.raises(MrireconError, match="contains NaN"):
        scan.load_kspace()
    with pytest.raises(MrireconError, match="no such file"):
        open_scan(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(MrireconError, match="cannot be read as HDF5"):
        open_scan(tmp_path / "text.h5")
