"""Centred orthonormal FFTs and layout helpers of mrirecon.physics.fft."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.errors import MrireconError
from mrirecon.physics.fft import (
    center_crop,
    center_pad,
    channels_to_complex,
    complex_to_channels,
    fft2c,
    ifft2c,
)


def crandn(*shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (2, 3, 6, 5)])
def test_matches_numpy_centred_fft(shape):
    x = crandn(*shape, seed=0)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(fft2c(x), ref, rtol=1e-5, atol=1e-5)
    iref = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(ifft2c(x), iref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (3, 10, 11)])
def test_round_trip_and_orthonormality(shape):
    x = crandn(*shape, seed=1)
    k = fft2c(x)
    np.testing.assert_allclose(ifft2c(k), x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(k), np.linalg.norm(x), rtol=1e-5)  # Parseval
    t = torch.from_numpy(x)
    torch.testing.assert_close(fft2c(t), torch.from_numpy(k))
    assert isinstance(fft2c(t), torch.Tensor) and isinstance(k, np.ndarray)


@pytest.mark.parametrize("n", [8, 9])
def test_dc_sits_at_index_n_over_2(n):
    k = fft2c(np.ones((n, n), np.complex64))
    peak = np.unravel_index(np.argmax(np.abs(k)), k.shape)
    assert peak == (n // 2, n // 2) and np.isclose(abs(k[n // 2, n // 2]), n)


def test_real_input_becomes_complex():
    x = np.random.default_rng(2).standard_normal((6, 6)).astype(np.float32)
    assert fft2c(x).dtype == np.complex64
    assert fft2c(torch.from_numpy(x.astype(np.float64))).dtype == torch.complex128


@pytest.mark.parametrize("h,w,th,tw", [(10, 10, 6, 6), (9, 11, 4, 5), (8, 7, 3, 7)])
def test_crop_pad_keep_the_centre(h, w, th, tw):
    x = np.zeros((2, h, w), np.float32)
    x[:, h // 2, w // 2] = 1
    c = center_crop(x, (th, tw))
    assert c.shape == (2, th, tw) and c[0, th // 2, tw // 2] == 1
    p = center_pad(c, (h, w))
    assert p.shape == (2, h, w) and p[0, h // 2, w // 2] == 1 and p.sum() == 2
    # crop undoes pad exactly
    np.testing.assert_array_equal(center_crop(center_pad(c, (h + 3, w + 2)), (th, tw)), c)
    assert center_crop(torch.from_numpy(x), (th, tw)).shape == (2, th, tw)
    assert center_crop(x, (h + 5, w)).shape == x.shape  # larger target keeps the axis whole


def test_channels_round_trip():
    x = crandn(3, 5, 4, seed=3)
    ch = complex_to_channels(x)
    assert ch.shape == (3, 2, 5, 4)
    np.testing.assert_array_equal(ch[:, 0], x.real)
    np.testing.assert_array_equal(channels_to_complex(ch), x)
    t = torch.from_numpy(x)
    torch.testing.assert_close(channels_to_complex(complex_to_channels(t)), t)
    half = complex_to_channels(t).to(torch.float16)
    assert channels_to_complex(half).dtype == torch.complex64


def test_bad_input():
    with pytest.raises(MrireconError, match="expected 2 channels"):
        channels_to_complex(np.zeros((3, 5, 4)))
    with pytest.raises(MrireconError, match=r"shape must be \(H, W\)"):
        center_crop(np.zeros((4, 4)), (2,))
