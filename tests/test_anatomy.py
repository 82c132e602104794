"""Real-anatomy slabs for training priors: reading, geometry of the resampling, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrirecon.data.anatomy import Anatomy, anatomy_slab, random_slabs, read_anatomy
from mrirecon.errors import MrireconError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "anatomy"


def test_npz_volume_is_scaled_to_its_99_9th_percentile(tmp_path):
    vol = np.ones((20, 20, 20))
    vol[0, 0, 0] = 1e6  # one hot voxel must not set the scale
    np.savez(tmp_path / "v.npz", vol=vol)
    anat = read_anatomy(tmp_path / "v.npz")
    assert anat.voxel_mm == (1.0, 1.0, 1.0) and anat.data.max() == 1.0 and np.median(anat.data) == 1.0
    np.savez(tmp_path / "bad.npz", other=vol)
    with pytest.raises(MrireconError, match="needs a 'vol' array"):
        read_anatomy(tmp_path / "bad.npz")
    (tmp_path / "v.txt").write_text("x")
    with pytest.raises(MrireconError, match="expected a .nii"):
        read_anatomy(tmp_path / "v.txt")


def test_slab_samples_the_volume_at_the_requested_geometry():
    """A linear ramp along x (value = x index), anisotropic voxels: exact under trilinear sampling."""
    x = np.arange(40, dtype=np.float32)[:, None, None] * np.ones((1, 30, 12), np.float32)
    anat = Anatomy("ramp", x / 40, (1.0, 1.0, 2.0))
    centre = np.array([20.0, 15.0, 11.0])  # mm
    slab = anatomy_slab(anat, axis=2, centre_mm=centre, pixel_mm=1.0, size=8, slices=3, spacing_mm=4.0)
    assert slab.shape == (3, 8, 8)
    rows = (centre[0] + (np.arange(8) - 4) * 1.0) / 40  # rows run along x, 1 mm apart
    assert np.allclose(slab[1, :, 3], rows, atol=1e-6) and np.allclose(slab[0], slab[2])
    # Rotated by 90 degrees, x runs along the columns (backwards).
    rot = anatomy_slab(anat, axis=2, centre_mm=centre, pixel_mm=1.0, size=8, slices=1, spacing_mm=1.0, angle=np.pi / 2)
    assert np.allclose(rot[0, 3, :], (centre[0] - (np.arange(8) - 4) * 1.0) / 40, atol=1e-5)
    outside = anatomy_slab(anat, axis=2, centre_mm=centre + [500, 0, 0], pixel_mm=1.0, size=4, slices=1, spacing_mm=1.0)
    assert not outside.any()


def test_random_slabs_are_complex_reproducible_and_noisy():
    rng = np.random.default_rng(0)
    vol = np.zeros((60, 60, 60), np.float32)
    vol[10:50, 12:48, 8:52] = 0.5 + 0.5 * rng.random((40, 36, 44))
    anat = Anatomy("box", vol, (1.0, 1.0, 1.0))
    a = random_slabs(anat, 3, size=32, slices=4, seed=1)
    b = random_slabs(anat, 3, size=32, slices=4, seed=1)
    c = random_slabs(anat, 3, size=32, slices=4, seed=2)
    assert len(a) == 3 and all(s.shape == (4, 32, 32) and s.dtype == np.complex64 for s in a)
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and not np.array_equal(a[0], c[0])
    assert all(np.abs(np.angle(s[np.abs(s) > 0.3])).std() > 0.05 for s in a)  # a synthetic phase
    assert all((np.abs(s) > 0).mean() > 0.99 for s in a)  # noise everywhere, as coil-combined images carry it


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/anatomy is absent (a user's clone)")
def test_every_shared_anatomy_volume_gives_slabs():
    pytest.importorskip("nibabel")  # the [train] extra
    files = sorted(f for f in SHARED.iterdir() if f.name.endswith((".nii.gz", ".npz")))
    assert files
    for f in files:
        slab = random_slabs(read_anatomy(f), 1, size=64, slices=2, seed=0)[0]
        assert slab.shape == (2, 64, 64) and np.isfinite(slab).all(), f.name


def test_bad_slab_geometry_gets_one_line():
    anat = Anatomy("box", np.ones((8, 8, 8), np.float32), (1.0, 1.0, 1.0))
    for kw, needle in ((dict(axis=3), "axis must be"), (dict(pixel_mm=0.0), "pixel_mm must be"), (dict(slices=0), "must be >= 1")):
        args = dict(axis=2, centre_mm=[4, 4, 4], pixel_mm=1.0, size=4, slices=1, spacing_mm=1.0) | kw
        with pytest.raises(MrireconError, match=needle):
            anatomy_slab(anat, **args)
    with pytest.raises(MrireconError, match="pixel_mm must be"):
        random_slabs(anat, 1, pixel_mm=(2.0, 1.0))
