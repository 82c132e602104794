"""The torch wavelet transform: PyWavelets' coefficients, orthonormality, and the same on the GPU."""

import warnings

import numpy as np
import pytest
import pywt
import torch

from mrirecon.errors import MrireconError
from mrirecon.physics.wavelet import Wavelet2D


@pytest.mark.parametrize("wavelet", ["db4", "haar", "sym8", "coif1"])
@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (37, 50), (17, 33)])
def test_coefficients_are_pywavelets_periodization(wavelet, shape):
    """Every band equals ``pywt.wavedec2(mode="periodization")`` of the zero-padded image (float64 reference)."""
    psi = Wavelet2D(shape, wavelet)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, *shape)) + 1j * rng.standard_normal((2, *shape))).astype(np.complex64)
    padded = np.pad(x, [(0, 0), (0, psi.padded[0] - shape[0]), (0, psi.padded[1] - shape[1])]).astype(np.complex128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pywt warns that one level of a tiny image touches its boundary
        ref = pywt.wavedec2(padded, wavelet, mode="periodization", level=psi.levels, axes=(-2, -1))
    ours = psi.forward(torch.from_numpy(x))
    assert len(ours) == len(ref) == psi.levels + 1
    np.testing.assert_allclose(ours[0].numpy(), ref[0], atol=2e-5)
    for mine, theirs in zip(ours[1:], ref[1:]):
        for band in range(3):
            np.testing.assert_allclose(mine[band].numpy(), theirs[band], atol=2e-5)
    np.testing.assert_allclose(psi.inverse(ours).numpy(), x, atol=2e-5)


def test_transform_is_orthonormal_on_the_padded_grid():
    """⟨Ψx, Ψz⟩ = ⟨x, z⟩ (Parseval), so Ψᴴ = Ψ⁻¹ and shrinkage is a proximal step."""
    psi = Wavelet2D((40, 56))
    rng = np.random.default_rng(1)
    x, z = (torch.from_numpy(rng.standard_normal((3, 40, 56))) for _ in range(2))
    cx, cz = psi.forward(x), psi.forward(z)
    inner = sum(float((a * b).sum()) for a, b in zip(cx, cz))
    assert inner == pytest.approx(float((x * z).sum()), rel=1e-10)
    assert psi.levels == 2 and psi.padded == (40, 56)  # dwt_max_level(40, db4) = 2


def test_levels_and_padding_follow_the_matrix_size():
    assert Wavelet2D((320, 320)).levels == 4
    assert Wavelet2D((230, 180)).padded == (240, 192)  # multiples of 2**4
    assert Wavelet2D((9, 9)).levels == 1  # smaller than two db4 filters: one level, still regularised
    assert Wavelet2D((64, 64), levels=2).levels == 2


def test_shrink_keeps_the_approximation_and_thresholds_complex_magnitudes():
    psi = Wavelet2D((32, 32), "haar", levels=1)
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((1, 32, 32)) + 1j * rng.standard_normal((1, 32, 32)))
    out = psi.forward(psi.shrink(x, 1e6))  # every detail coefficient below the threshold
    torch.testing.assert_close(out[0], psi.forward(x)[0])
    assert float(out[1].abs().max()) < 1e-12
    # per-image thresholds: image 1 untouched (τ = 0), image 0 shrunk
    two = torch.cat([x, x])
    res = psi.shrink(two, torch.tensor([0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(res[1], x[0])
    assert not torch.allclose(res[0], x[0])


def test_bad_wavelet_names_are_one_line_errors():
    with pytest.raises(MrireconError, match="wavelet"):
        Wavelet2D((32, 32), "no-such-wavelet")
    with pytest.raises(MrireconError, match="not orthogonal"):
        Wavelet2D((32, 32), "bior2.2")
    for shape in ((0, 5), (-3, 4), (32,)):
        with pytest.raises(MrireconError, match="shape must be"):
            Wavelet2D(shape)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_l1_wavelet_on_cuda_equals_the_cpu():
    """FISTA L1-wavelet runs where the data are: the GPU result matches the CPU one."""
    from mrirecon.physics.operators import SenseOp
    from mrirecon.recon.classical import l1_wavelet

    rng = np.random.default_rng(3)
    maps = rng.standard_normal((2, 4, 48, 48)) + 1j * rng.standard_normal((2, 4, 48, 48))
    maps = torch.from_numpy((maps / np.sqrt((np.abs(maps) ** 2).sum(1, keepdims=True))).astype(np.complex64))
    mask = torch.zeros(48, 48)
    mask[:, ::2] = 1
    mask[:, 20:28] = 1
    x = torch.from_numpy(rng.standard_normal((2, 48, 48)).astype(np.complex64))
    A = SenseOp(maps, mask)
    y = A.forward(x)
    cpu = l1_wavelet(A, y, 0.05, 50)
    gpu = l1_wavelet(SenseOp(maps.cuda(), mask.cuda()), y.cuda(), 0.05, 50)
    assert gpu.is_cuda
    assert float((gpu.cpu() - cpu).norm() / cpu.norm()) < 1e-4
