"""Simulated scans: geometry, the fastMRI reference, SNR, coil maps, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.data.simulate import phantom_volume, rss_reference, simulate_scan
from mrirecon.errors import MrireconError
from mrirecon.physics.fft import center_crop, ifft2c


@pytest.fixture(scope="module")
def volume():
    return phantom_volume(3, 48, 40, seed=2)


def test_phantom_volume(volume):
    assert volume.shape == (3, 48, 40) and volume.dtype == np.float32
    assert 0.0 <= volume.min() and volume.max() <= 1.0 and volume.max() > 0.5
    # slices differ (scaled ellipses), seeds reproduce
    assert not np.array_equal(volume[0], volume[1])
    np.testing.assert_array_equal(volume, phantom_volume(3, 48, 40, seed=2))
    assert not np.array_equal(volume, phantom_volume(3, 48, 40, seed=3))


def test_shapes_and_noise_free_rss_recovers_image(volume):
    sim = simulate_scan(volume, coils=5, snr_db=None, seed=1)
    S, H, W = volume.shape
    assert sim.kspace.shape == (S, 5, 2 * H, W) and sim.kspace.dtype == np.complex64
    assert sim.reference_rss.shape == (S, H, W) and sim.reference_rss.dtype == np.float32
    assert sim.maps.shape == (S, 5, H, W) and sim.image.shape == (S, H, W)
    assert sim.noise_std == 0.0
    # birdcage maps are normalised: sum_c |S_c|^2 = 1
    np.testing.assert_allclose(np.sum(np.abs(sim.maps) ** 2, axis=1), 1.0, atol=1e-5)
    # the image carries the synthetic phase but the magnitude of the input
    np.testing.assert_allclose(np.abs(sim.image), volume, atol=1e-6)
    assert np.ptp(sim.phase[volume > 0.1]) > 0.5
    # cropping the oversampled readout recovers each coil image exactly
    coil_images = center_crop(ifft2c(sim.kspace), (H, W))
    np.testing.assert_allclose(coil_images, sim.maps * sim.image[:, None], atol=2e-6)
    # ... and the oversampled margin is empty
    full = ifft2c(sim.kspace)
    assert np.abs(full[:, :, : H // 2]).max() < 1e-5
    np.testing.assert_allclose(sim.reference_rss, volume, atol=2e-6)


def test_custom_unnormalised_maps(volume):
    S, H, W = volume.shape
    yy, xx = np.mgrid[:H, :W]
    gain = 0.5 + (yy / H)  # smooth receive-field inhomogeneity
    maps = np.stack([gain * np.exp(1j * 0.3 * c) * (1 + 0.2 * c) for c in range(3)]).astype(np.complex64)
    sim = simulate_scan(volume, coil_maps=maps, snr_db=None, phase="none", seed=0)
    assert sim.kspace.shape[1] == 3
    expected = volume * np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))
    np.testing.assert_allclose(sim.reference_rss, expected, rtol=1e-5, atol=2e-6)
    with pytest.raises(MrireconError, match="disagrees with coil_maps"):
        simulate_scan(volume, coil_maps=maps, coils=8)


def test_snr_is_achieved(volume):
    clean = simulate_scan(volume, coils=4, snr_db=None, seed=5)
    for snr in (10.0, 25.0):
        noisy = simulate_scan(volume, coils=4, snr_db=snr, seed=5)
        noise = noisy.kspace.astype(np.complex128) - clean.kspace
        # noise statistics: circular, zero-mean, the reported std
        assert np.mean(np.abs(noise) ** 2) == pytest.approx(noisy.noise_std**2, rel=0.03)
        assert np.var(noise.real) == pytest.approx(np.var(noise.imag), rel=0.05)
        # SNR definition: power of the noise-free coil images over the FOV vs noise power
        coil_images = center_crop(ifft2c(clean.kspace), volume.shape[1:])
        measured = 10 * np.log10(np.mean(np.abs(coil_images) ** 2) / np.mean(np.abs(noise) ** 2))
        assert measured == pytest.approx(snr, abs=0.15)
        # the phase stream is independent of the noise stream
        np.testing.assert_array_equal(noisy.phase, clean.phase)


def test_seeds_reproduce_bit_for_bit(volume):
    a = simulate_scan(volume, coils=3, snr_db=20.0, seed=11)
    b = simulate_scan(torch.from_numpy(volume), coils=3, snr_db=20.0, seed=11)
    assert a.kspace.tobytes() == b.kspace.tobytes()
    assert a.reference_rss.tobytes() == b.reference_rss.tobytes()
    c = simulate_scan(volume, coils=3, snr_db=20.0, seed=12)
    assert not np.array_equal(a.kspace, c.kspace)
    assert not np.array_equal(a.phase, c.phase)


def test_reference_is_fastmri_rss(volume):
    sim = simulate_scan(volume, coils=4, snr_db=15.0, seed=0)
    coil_images = center_crop(ifft2c(sim.kspace.astype(np.complex128)), volume.shape[1:])
    rss = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=1))
    np.testing.assert_allclose(sim.reference_rss, rss, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rss_reference(sim.kspace, volume.shape[1:]), sim.reference_rss)


def test_fine_grid_band_limits_and_halves_the_grid():
    # a smooth object: the band-limited truth equals the point samples of the fine image
    yy, xx = np.mgrid[:64, :48]
    blob = np.exp(-((yy - 32) ** 2 + (xx - 24) ** 2) / (2 * 7.0**2))[None].astype(np.float32)
    sim = simulate_scan(blob, coils=4, snr_db=None, seed=0, fine_grid=True, phase="none")
    assert sim.kspace.shape == (1, 4, 64, 24) and sim.reference_rss.shape == (1, 32, 24)
    np.testing.assert_allclose(np.abs(sim.image), blob[:, ::2, ::2], atol=2e-3)
    # coil/phase products were formed on the fine grid, so the discrete model is not exact
    # (no inverse crime) but close for smooth maps
    coil_images = center_crop(ifft2c(sim.kspace), (32, 24))
    model = sim.maps * sim.image[:, None]
    err = np.linalg.norm(coil_images - model) / np.linalg.norm(model)
    assert 1e-6 < err < 0.05
    with pytest.raises(MrireconError, match="even image sizes"):
        simulate_scan(np.ones((1, 9, 8)), fine_grid=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(images=np.ones((8, 8))), r"volume \(slices, H, W\)"),
        (dict(images=-np.ones((1, 8, 8))), "non-negative"),
        (dict(images=np.full((1, 8, 8), np.nan)), "NaN"),
        (dict(images=np.ones((1, 8, 8)), phase="random"), "phase must be one of"),
        (dict(images=np.ones((1, 8, 8)), oversample=0), "oversample must be a positive integer"),
        (dict(images=np.ones((1, 8, 8)), coils=0), "coils must be a positive integer"),
        (dict(images=np.ones((1, 8, 8)), snr_db=float("inf")), "snr_db must be a finite"),
        (dict(images=np.ones((1, 8, 8)), seed=-1), "seed must be"),
        (dict(images=np.ones((1, 8, 8)), coil_maps=np.ones((2, 8, 9))), "coil_maps must be"),
        (dict(images=np.zeros((1, 8, 8))), "all zero"),
    ],
)
def test_bad_input(kwargs, match):
    images = kwargs.pop("images")
    with pytest.raises(MrireconError, match=match):
        simulate_scan(images, **kwargs)
