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
    direct_maps,
    espirit_maps,
    estimate_sens,
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


def test_too_few_acs_lines_is_a_clear_error(scan):
    kspace = scan[0]
    mask = make_mask("equispaced", (N, N), 4, acs_lines=10, convention="aid").mask
    assert acs_width(mask) == 10
    with pytest.raises(MrireconError, match="calib_width=24 needs 24 fully sampled central lines .* only 10"):
        estimate_sens(kspace * mask, mask=mask, calib_width=24)
    with pytest.raises(MrireconError, match="only 10 fully sampled central lines; espirit maps need at least 12"):
        estimate_sens(kspace * mask, mask=mask)  # the default width cannot shrink below 2·kernel_width
    no_acs = make_mask("equispaced", (N, N), 4, convention="aid").mask
    for method in ("espirit", "direct"):
        with pytest.raises(MrireconError, match="maps need at least"):
            estimate_sens(kspace * no_acs, mask=no_acs, method=method)
    # direct maps shrink the default 30 lines to the 10 available
    assert estimate_sens(kspace * mask, mask=mask, method="direct").shape == kspace.shape


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
    est = direct_maps(t, calib_size=(24, 16), kaiser_beta=4.0)
    assert isinstance(est, torch.Tensor) and est.shape == t.shape and est.dtype == torch.complex64
    np.testing.assert_allclose(est[0].numpy(), direct_maps(kspace[0], calib_size=(24, 16)), atol=1e-6)
    assert correlation(est[1].numpy(), maps, obj) > 0.999
    total = (est.abs() ** 2).sum(1)
    assert float(total.max()) <= 1 + 1e-4  # the floor never lets Σ|S|² exceed 1
    empty = direct_maps(np.zeros((2, 8, 8), np.complex64))
    assert np.all(empty == 0)  # no signal: no division blow-up


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_direct_maps_cuda(scan):
    kspace = torch.from_numpy(scan[0])
    gpu = direct_maps(kspace.cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), direct_maps(kspace), rtol=1e-4, atol=1e-5)


def test_espirit_options_and_device_errors(scan):
    kspace = scan[0][0]
    a = espirit_maps(kspace, calib_width=16, crop=0.0)
    assert a.shape == kspace.shape and np.count_nonzero(a) == a.size  # crop=0 keeps the background
    b = espirit_maps(torch.from_numpy(kspace), calib_width=16, crop=0.95)
    assert isinstance(b, torch.Tensor) and (b == 0).any()
    if not sp.config.cupy_enabled:
        with pytest.raises(MrireconError, match="only with CuPy installed"):
            espirit_maps(kspace, device="cuda")
    with pytest.raises(MrireconError, match="kernel_width=6 must be smaller than calib_width=6"):
        espirit_maps(kspace, calib_width=6)
    with pytest.raises(MrireconError, match="device must be"):
        espirit_maps(kspace, device="tpu")


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
        (lambda k: estimate_sens(k, method="walsh"), "method must be one of 'espirit', 'direct'"),
        (lambda k: estimate_sens(k[:, 0, 0]), r"kspace must be \(coils, H, W\) or \(slices, coils, H, W\)"),
        (lambda k: estimate_sens(k.real), "kspace must be complex"),
        (lambda k: estimate_sens(k, mask=np.ones(7)), "does not match k-space"),
        (lambda k: estimate_sens(k, method="direct", threshold=0.1), "method='direct' does not take threshold"),
        (lambda k: estimate_sens(list(k)), "kspace must be a numpy array or torch tensor"),
        (lambda k: estimate_sens(k * np.nan), "kspace contains NaN"),
        (lambda k: direct_maps(k, calib_size=0), "calib_size must be an integer >= 1"),
    ],
)
def test_bad_input(scan, call, match):
    with pytest.raises(MrireconError, match=match):
        call(scan[0])
