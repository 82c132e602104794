"""MNI phantoms (mrirecon.data.phantoms) and training windows (mrirecon.prior.datasets)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.data.phantoms import (
    HELDOUT_SLAB_MM,
    TRAIN_SLAB_MM,
    MniTemplate,
    analytic_template,
    draw_params,
    load_mni_template,
    make_phantom,
    phantom_volumes,
)
from mrirecon.errors import MrireconError
from mrirecon.prior.datasets import SliceWindows, Volume, load_image_folder, load_volume_file, load_volumes, to_volume


@pytest.fixture(scope="module")
def template() -> MniTemplate:
    return analytic_template()


def _wheel_or_nilearn() -> str | None:
    """A real template source if this machine has one (nilearn installed or a wheel named by env)."""
    import importlib.util

    env = os.environ.get("MRIRECON_MNI_TEMPLATE")
    if env and Path(env).exists():
        return env
    if importlib.util.find_spec("nilearn") is not None:
        return ""
    return None


def test_phantoms_deterministic_per_seed(template):
    a = phantom_volumes(template, 3, "train", image_size=24, seed=5)
    b = phantom_volumes(template, 3, "train", image_size=24, seed=5)
    c = phantom_volumes(template, 3, "train", image_size=24, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(x.shape != z.shape or not np.allclose(x, z) for x, z in zip(a, c))
    # A shorter list is a prefix of a longer one (volume i depends only on (seed, split, i)).
    d = phantom_volumes(template, 2, "train", image_size=24, seed=5)
    np.testing.assert_array_equal(d[1], a[1])


def test_phantom_volume_properties(template):
    (vol,) = phantom_volumes(template, 1, "train", image_size=32, seed=0)
    assert vol.dtype == np.complex64 and vol.ndim == 3 and vol.shape[1:] == (32, 32)
    assert np.isclose(np.abs(vol).max(), 1.0, atol=1e-6)
    # Complex with a non-trivial phase, zero background outside the head.
    assert np.abs(vol.imag).max() > 0.1
    assert np.abs(vol[:, 0, 0]).max() < 1e-3
    mag = make_phantom(template, draw_params(3), image_size=32, magnitude=True)
    assert mag.dtype == np.float32 and mag.min() >= 0 and np.isclose(mag.max(), 1.0)


def test_contrasts_differ(template):
    """T1-like has bright white matter, T2-like bright CSF: the tissue order flips."""
    p_t1 = draw_params(1, n_slices=3, spacing_mm=5.0, contrast="t1")
    p_t2 = draw_params(1, n_slices=3, spacing_mm=5.0, contrast="t2")
    t1 = make_phantom(template, p_t1, image_size=32, magnitude=True)
    t2 = make_phantom(template, p_t2, image_size=32, magnitude=True)
    corr = np.corrcoef(t1.ravel(), t2.ravel())[0, 1]
    assert corr < 0.9


def test_split_slabs_disjoint(template):
    for i in range(20):
        p = draw_params(i, slab_mm=TRAIN_SLAB_MM)
        top = p.z_start_mm + (p.n_slices - 1) * p.spacing_mm
        assert TRAIN_SLAB_MM[0] <= p.z_start_mm and top <= TRAIN_SLAB_MM[1] + 1e-9
        q = draw_params(i, slab_mm=HELDOUT_SLAB_MM)
        assert q.z_start_mm >= HELDOUT_SLAB_MM[0]
    assert TRAIN_SLAB_MM[1] < HELDOUT_SLAB_MM[0]


def test_bad_params_raise(template):
    with pytest.raises(MrireconError, match="contrast"):
        draw_params(0, contrast="dwi")
    with pytest.raises(MrireconError, match="n_slices"):
        draw_params(0, n_slices=1000, spacing_mm=5.0)
    with pytest.raises(MrireconError, match="split"):
        phantom_volumes(template, 1, "test")


def test_template_missing_source_message(tmp_path):
    with pytest.raises(MrireconError, match=r"mrirecon\[train\]"):
        load_mni_template(tmp_path / "nope.whl")
    bogus = tmp_path / "bogus.whl"
    with zipfile.ZipFile(bogus, "w") as zf:
        zf.writestr("nilearn/__init__.py", "")
    with pytest.raises(MrireconError, match="lacks nilearn/datasets/data"):
        load_mni_template(bogus)


@pytest.mark.skipif(_wheel_or_nilearn() is None, reason="no nilearn install or MRIRECON_MNI_TEMPLATE wheel here")
def test_real_template_loads():
    src = _wheel_or_nilearn() or None
    tpl = load_mni_template(src)
    assert tpl.t1.shape == (197, 233, 189)
    assert 0.15 < float((tpl.t1 > 0).mean()) < 0.3
    vol = phantom_volumes(tpl, 1, "heldout", image_size=32, seed=0)[0]
    assert vol.shape[1:] == (32, 32) and np.isclose(np.abs(vol).max(), 1.0)


# --- windows ----------------------------------------------------------------------------------


def _tagged_volumes(lengths, size=8):
    """Volumes whose every pixel holds (volume id, slice id) so windows can be traced back."""
    vols = []
    for v, n in enumerate(lengths):
        frames = torch.zeros(n, 2, size, size)
        frames[:, 0] = (v + 1) / 10
        frames[:, 1] = torch.arange(n).float()[:, None, None] / 100
        vols.append(Volume(f"v{v}", frames))
    return vols


def test_windows_never_straddle_volumes():
    vols = _tagged_volumes([7, 3, 5, 2])
    ds = SliceWindows(vols, length=4, augment=False)
    # 7 -> 4 windows, 3 -> none, 5 -> 2 windows, 2 -> none
    assert len(ds) == 6
    for i in range(len(ds)):
        w = ds[i]
        assert w.shape == (4, 2, 8, 8)
        assert torch.unique(w[:, 0]).numel() == 1  # a single volume
        slices = (w[:, 1, 0, 0] * 100).round()
        assert torch.equal(slices, slices[0] + torch.arange(4).float())  # consecutive slices
    with pytest.raises(MrireconError, match="no volume has 8 slices"):
        SliceWindows(vols, length=8)


def test_window_augmentation_reproducible_and_consistent():
    vols = [to_volume(np.random.default_rng(0).normal(size=(6, 8, 8)) + 1j, "r")]
    ds = SliceWindows(vols, length=3, augment=True, seed=1)
    a, b = ds[2], ds[2]
    assert torch.equal(a, b)
    ds.set_epoch(1)
    assert not torch.equal(a, ds[2])
    # Augmentations keep the [-1, 1] range (max |x| <= 1) and act on the whole window alike:
    raw = vols[0].frames[2:5]
    mag_aug = torch.linalg.vector_norm(a, dim=1)
    mag_raw = torch.linalg.vector_norm(raw, dim=1)
    assert float(mag_aug.max()) <= 1.0 + 1e-6
    candidates = [mag_raw, mag_raw.flip(-1), mag_raw.flip(-2), mag_raw.flip(-1, -2)]
    ratios = [float((mag_aug / c.clamp(min=1e-6)).median()) for c in candidates]
    best = min(range(4), key=lambda k: float((mag_aug - ratios[k] * candidates[k]).abs().max()))
    assert torch.allclose(mag_aug, ratios[best] * candidates[best], atol=1e-5)


def test_load_image_folder_and_sources(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(5, 12, 10)).astype(np.float32))
    np.save(tmp_path / "b.npy", (rng.normal(size=(4, 16, 16)) + 1j * rng.normal(size=(4, 16, 16))).astype(np.complex64))
    vols = load_image_folder(tmp_path, image_size=8)
    assert [v.name for v in vols] == ["a.npy", "b.npy"]
    for v in vols:
        assert v.frames.shape[1:] == (2, 8, 8)
        assert np.isclose(float(torch.linalg.vector_norm(v.frames, dim=1).max()), 1.0, atol=1e-5)
    assert float(vols[0].frames[:, 1].abs().max()) == 0.0  # real input -> zero imaginary channel
    mag = load_volumes(str(tmp_path), image_size=8, magnitude=True)
    assert mag[1].frames.shape == (4, 1, 8, 8) and float(mag[1].frames.min()) >= 0
    with pytest.raises(MrireconError, match="does not exist"):
        load_volumes(str(tmp_path / "missing"), image_size=8)
    with pytest.raises(MrireconError, match="does not exist"):  # not taken for the built-in phantoms
        load_volumes(str(tmp_path / "mni_brains"), image_size=8)
    with pytest.raises(MrireconError, match="training volume 0 must be an array"):
        load_volumes([["not", "an", "array"]], image_size=8)
    with pytest.raises(MrireconError, match="must hold numbers"):
        load_volumes([np.array([[[object()]]])], image_size=8)
    np.save(tmp_path / "c.npy", np.zeros((2, 3)))
    with pytest.raises(MrireconError, match=r"c.npy: a .npy volume must be \(slices, H, W\)"):
        load_image_folder(tmp_path, image_size=8)


def test_load_volume_file_formats(tmp_path):
    x = np.random.default_rng(1).normal(size=(3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    vol = load_volume_file(tmp_path / "v.npy")
    assert vol.name == "v.npy" and vol.frames.shape == (3, 2, 16, 16)  # no image_size: native matrix
    np.testing.assert_allclose(vol.frames[:, 0].numpy(), x / np.abs(x).max(), rtol=1e-6)
    (tmp_path / "v.txt").write_text("0")
    with pytest.raises(MrireconError, match=r"v.txt: expected a fastMRI .h5, a .npy or a .nii"):
        load_volume_file(tmp_path / "v.txt")
    with pytest.raises(MrireconError, match="no such file"):
        load_volume_file(tmp_path / "w.npy")


def test_load_nifti_orientation(tmp_path):
    nib = pytest.importorskip("nibabel")
    data = np.zeros((6, 8, 3), np.float32)  # (x, y, z) RAS
    data[5, 7, 1] = 1.0  # far left (+x), most anterior (+y)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "v.nii.gz"))
    (vol,) = load_image_folder(tmp_path, image_size=8)
    assert vol.frames.shape == (3, 2, 8, 8)  # padded to square (8 x 8)
    s, _, row, col = np.unravel_index(int(vol.frames.abs().argmax()), vol.frames.shape)
    assert (s, row) == (1, 0)  # anterior at the top
    assert col == 1 + 5  # patient left at image right (x=5 after 1-column padding)


def test_load_fastmri_folder_coil_combines(tmp_path, template):
    """A simulated 4-coil fastMRI file (2x readout oversampling) becomes one complex volume
    whose magnitude matches the simulated object."""
    from mrirecon.data.simulate import simulate_scan, write_simulated

    mag = make_phantom(template, draw_params(4, n_slices=3, spacing_mm=5.0), image_size=32, magnitude=True)
    sim = simulate_scan(mag, coils=4, snr_db=None, oversample=2, seed=0)
    assert sim.kspace.shape == (3, 4, 64, 32)
    write_simulated(tmp_path / "scan.h5", sim)
    (vol,) = load_volumes(str(tmp_path), image_size=32)
    assert vol.name == "scan.h5" and vol.frames.shape == (3, 2, 32, 32)
    got = torch.linalg.vector_norm(vol.frames, dim=1).numpy()
    assert np.isclose(got.max(), 1.0, atol=1e-5)
    inside = mag > 0.2
    corr = np.corrcoef(got[inside], mag[inside])[0, 1]
    assert corr > 0.95
