"""Coil sensitivities (ESPIRiT, direct), calibration-region detection, RSS and SENSE-1 combination."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy as sp
import sigpy.mri as mr
import torch

from mrirecon.errors import MrireconError
from mrirecon.physics.coils import (
    acs_width,
    calib_region,
    calibrate,
    direct_maps,
    espirit_maps,
    estimate_sens,
    map_support,
    rss,
    sense_combine,
)
from mrirecon.physics.fft import fft2c, ifft2c
from mrirecon.physics.masks import make_mask

N, COILS = 48, 8


@pytest.fixture(scope="module")
def scan():
    """Shepp–Logan with a smooth phase, birdcage coils normalised to Σ|S|² = 1, 2 slices."""
    yy, xx = np.mgrid[:N, :N] / N
    img = sp.shepp_logan((N, N)).astype(np.complex64) * np.exp(1j * (xx - 0.5 * yy)).astype(np.complex64)
    maps = mr.birdcage_maps((COILS, N, N)).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    k = fft2c(maps * img)
    kspace = np.stack([k, 0.5 * k])
    obj = np.abs(img) > 0.05
    return kspace, maps, img, obj


def correlation(est: np.ndarray, true: np.ndarray, obj: np.ndarray) -> float:
    """Mean over the object of |<S_est, S_true>| / (‖S_est‖‖S_true‖) per pixel: 1 = equal up to a phase."""
    num = np.abs((np.conj(est) * true).sum(0))
    den = np.linalg.norm(est, axis=0) * np.linalg.norm(true, axis=0) + 1e-12
    return float((num / den)[obj].mean())


@pytest.mark.parametrize("method", ["espirit", "direct"])
def test_reference_protocol_recovers_birdcage_maps(scan, method):
    kspace, maps, _, obj = scan
    est = estimate_sens(kspace, method=method)  # fully sampled, mask=None
    assert est.shape == kspace.shape and est.dtype == np.complex64
    for s in range(2):
        assert correlation(est[s], maps, obj) > 0.999
        assert np.allclose((np.abs(est[s]) ** 2).sum(0)[obj], 1.0, atol=1e-3)


@pytest.mark.parametrize("method", ["espirit", "direct"])
@pytest.mark.parametrize(
    "kind,kw", [("equispaced", dict(acs_lines=12, convention="aid")), ("poisson", dict(acs_lines=12))]
)
def test_maps_from_the_acs_of_undersampled_data(scan, method, kind, kw):
    kspace, maps, _, obj = scan
    mask = make_mask(kind, (N, N), 3, seed=1, **kw).mask
    est = estimate_sens(kspace * mask, mask=mask, method=method)
    assert correlation(est[0], maps, obj) > 0.998


def test_auto_adapts_to_narrow_calibration_regions_and_falls_back_to_jsense(scan):
    """10 lines: ESPIRiT with a smaller kernel (SigPy's fixed 6 would need 12); 3 lines: JSENSE; none: refused."""
    kspace, maps, _, obj = scan
    mask = make_mask("equispaced", (N, N), 4, acs_lines=10, convention="aid").mask
    cal = calibrate(kspace * mask, mask)
    assert cal.method == "espirit" and cal.calib == (32, 10) and cal.kernel == (6, 5)
    assert correlation(cal.maps[0], maps, obj) > 0.995
    assert "espirit (calib 32x10, kernel 6x5" in cal.describe()
    few = make_mask("equispaced", (N, N), 3, acs_lines=3, convention="aid").mask
    cal = calibrate(kspace * few, few)
    assert cal.method == "jsense" and "ESPIRiT needs 5" in cal.note
    assert correlation(cal.maps[0], maps, obj) > 0.98
    with pytest.raises(MrireconError, match="ESPIRiT needs at least 5"):
        calibrate(kspace * few, few, "espirit")
    with pytest.raises(MrireconError, match="calib .* needs that many"):
        calibrate(kspace * mask, mask, calib=24)
    nothing = np.zeros((N, N), np.float32)
    nothing[:, :3] = 1  # only the edge of k-space: no estimate is possible
    with pytest.raises(MrireconError, match="central 24x24 of k-space holds 0 samples"):
        calibrate(kspace * nothing, nothing)


@pytest.mark.parametrize("scale", [1e-30, 1e-10, 1.0, 1e10, 1e30])
@pytest.mark.parametrize("method", ["auto", "direct"])
def test_maps_do_not_depend_on_the_data_scale(scan, scale, method):
    """Any finite, non-zero k-space gives the same maps (float32 would under/overflow otherwise)."""
    kspace, maps, _, obj = scan
    mask = make_mask("equispaced", (N, N), 3, acs_lines=12, convention="aid").mask
    ref = estimate_sens(kspace * mask, mask, method)
    est = estimate_sens((kspace * mask).astype(np.complex128) * scale, mask, method).astype(np.complex64)
    assert np.isfinite(est).all()
    np.testing.assert_allclose(est, ref, atol=1e-4)
    energy = (np.abs(est[0]) ** 2).sum(0)[obj]
    assert np.allclose(energy, 1.0, atol=2e-3)


def test_torch_espirit_equals_sigpy_after_phase_alignment(scan):
    """Square region and kernel: the torch ESPIRiT gives SigPy's maps (its 100 power iterations) on the object."""
    kspace, _, _, obj = scan
    ours = espirit_maps(kspace[0], calib=24, kernel=6)
    ref = espirit_maps(kspace[0], calib=24, kernel=6, backend="sigpy")
    inner = (np.conj(ours) * ref).sum(0)
    aligned = ours * (inner / np.maximum(np.abs(inner), 1e-12))  # maps are defined up to a phase per pixel
    assert np.abs(aligned - ref).max(0)[obj].max() < 1e-2
    assert np.median(np.abs(aligned - ref).max(0)[obj]) < 1e-4
    support = (np.abs(ref) ** 2).sum(0) > 0.5
    assert ((np.abs(ours) ** 2).sum(0) > 0.5)[support].mean() > 0.99


def test_map_support_marks_where_espirit_maps_vanish(scan):
    kspace, _, img, _ = scan
    est = estimate_sens(kspace, method="espirit")
    support = map_support(est)
    assert support.shape == (2, N, N) and support.dtype == bool
    assert support[0][np.abs(img) > 0.05].all() and not support.all()


def test_acs_and_calibration_region_detection():
    cols = np.zeros(20, np.float32)
    cols[[0, 3, 7, 8, 9, 10, 11, 12, 15]] = 1  # centre column 10, fully sampled run 7..12
    assert acs_width(cols) == 6  # width 6 centred on 10: columns 10 - 3 … 10 + 2
    assert acs_width(np.broadcast_to(cols, (5, 20))) == 6
    assert calib_region(np.broadcast_to(cols, (5, 20))) == (5, 6)
    cols[12] = 0  # run 7..11: width 5 would need 8..12, width 4 is 8..11
    assert acs_width(cols) == 4
    cols[10] = 0
    assert acs_width(cols) == 0
    m = make_mask("poisson", (48, 40), 4, seed=0, acs_lines=8).mask
    h, w = calib_region(m)
    assert h >= 8 and w >= 8 and m[24 - h // 2 : 24 - h // 2 + h, 20 - w // 2 : 20 - w // 2 + w].all()
    assert acs_width(torch.from_numpy(m)) == 0  # no column of a 2-D pattern is fully sampled


def test_direct_maps_batched_torch_and_floor(scan):
    kspace, maps, _, obj = scan
    t = torch.from_numpy(kspace)
    est = direct_maps(t, calib=(24, 16), kaiser_beta=4.0)
    assert isinstance(est, torch.Tensor) and est.shape == t.shape and est.dtype == torch.complex64
    np.testing.assert_allclose(est[0].numpy(), direct_maps(kspace[0], calib=(24, 16)), atol=1e-6)
    assert correlation(est[1].numpy(), maps, obj) > 0.999
    total = (est.abs() ** 2).sum(1)
    assert float(total.max()) <= 1 + 1e-4  # the floor never lets Σ|S|² exceed 1
    empty = direct_maps(np.zeros((2, 8, 8), np.complex64))
    assert np.all(empty == 0)  # no signal: no division blow-up


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_direct_maps_cuda(scan):
    kspace = torch.from_numpy(scan[0])
    gpu = direct_maps(kspace.cuda())
    assert gpu.is_cuda
    # cuFFT and the CPU FFT round differently; the maps' division by their RSS amplifies it near the support's edge
    torch.testing.assert_close(gpu.cpu(), direct_maps(kspace), rtol=1e-3, atol=2e-4)


def test_espirit_options_and_device_errors(scan):
    kspace = scan[0][0]
    a = espirit_maps(kspace, calib=16, crop=0.0)
    assert a.shape == kspace.shape and np.count_nonzero(a) == a.size  # crop=0 keeps the background
    b = espirit_maps(torch.from_numpy(kspace), calib=(24, 16), kernel=(6, 4), crop=0.95)
    assert isinstance(b, torch.Tensor) and (b == 0).any()
    if not sp.config.cupy_enabled:
        with pytest.raises(MrireconError, match="only with CuPy installed"):
            espirit_maps(kspace, backend="sigpy", device="cuda")
    with pytest.raises(MrireconError, match=r"kernel \(6, 6\) must be smaller than calib \(6, 6\)"):
        espirit_maps(kspace, calib=6)
    with pytest.raises(MrireconError, match="square"):
        espirit_maps(kspace, calib=(24, 16), backend="sigpy")
    with pytest.raises(MrireconError, match="device must be"):
        espirit_maps(kspace, device="tpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_espirit_cuda_equals_cpu(scan):
    kspace = torch.from_numpy(scan[0])
    gpu = espirit_maps(kspace.cuda(), calib=24, kernel=6)
    assert gpu.is_cuda
    cpu = espirit_maps(kspace, calib=24, kernel=6)
    assert float((gpu.cpu() - cpu).abs().max()) < 1e-3


def test_rss_and_sense_combine(scan):
    kspace, maps, img, obj = scan
    coils = ifft2c(kspace)
    np.testing.assert_allclose(rss(coils)[0], np.abs(img), atol=1e-5)  # Σ|S|² = 1
    np.testing.assert_allclose(sense_combine(coils, maps)[0], img, atol=1e-5)
    tc = torch.from_numpy(coils)
    torch.testing.assert_close(rss(tc), torch.from_numpy(rss(coils)))
    torch.testing.assert_close(sense_combine(tc, maps), torch.from_numpy(sense_combine(coils, maps)))
    with pytest.raises(MrireconError, match="do not match"):
        sense_combine(coils, maps[:3])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda k: estimate_sens(k, method="walsh"), "method must be one of 'auto', 'espirit'"),
        (lambda k: estimate_sens(k[:, 0, 0]), r"kspace must be \(coils, H, W\) or \(slices, coils, H, W\)"),
        (lambda k: estimate_sens(k.real), "kspace must be complex"),
        (lambda k: estimate_sens(k, mask=np.ones(7)), "does not match k-space"),
        (lambda k: estimate_sens(k, method="direct", kaiser=0.1), "estimate_sens does not take kaiser"),
        (lambda k: estimate_sens(list(k)), "kspace must be a numpy array or torch tensor"),
        (lambda k: estimate_sens(k * np.nan), "kspace contains NaN"),
        (lambda k: direct_maps(k, calib=0), "calib must be an integer >= 1"),
    ],
)
def test_bad_input(scan, call, match):
    with pytest.raises(MrireconError, match=match):
        call(scan[0])


def test_two_sets_of_espirit_maps(scan):
    """sets=2: the first set is the one-set result, the second is orthogonal to it and cropped alike."""
    kspace, maps, img, obj = scan
    one = espirit_maps(kspace[:1], 24, 6)
    two = espirit_maps(kspace[:1], 24, 6, sets=2)
    assert two.shape == (1, 2) + one.shape[1:]
    assert correlation(two[0, 0], one[0], obj) > 0.999
    inner = np.abs((np.conj(two[0, 0]) * two[0, 1]).sum(0))
    assert inner.max() < 1e-3  # eigenvectors of a Hermitian matrix
    cal = calibrate(kspace, None, "auto", sets=2)
    assert cal.method == "espirit" and "two sets" in cal.note and cal.maps.shape == (2, 2, COILS, N, N)
    with pytest.raises(MrireconError, match="two sets of maps come from ESPIRiT"):
        calibrate(kspace, None, "direct", sets=2)
