"""BART cfl/hdr: round trips, the exact byte layout, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrirecon.data.cfl import read_cfl, write_cfl
from mrirecon.errors import MrireconError


@pytest.mark.parametrize(
    "shape", [(7,), (3, 5), (2, 3, 5), (1, 4, 1, 3), (5, 1, 2), (2, 3) + (1,) * 13 + (3,)]
)
def test_round_trip(tmp_path, shape):
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    write_cfl(tmp_path / "x", x)
    y = read_cfl(tmp_path / "x")
    assert y.dtype == np.complex64 and y.shape == shape
    np.testing.assert_array_equal(y, x)


def test_trailing_singletons_and_ndim(tmp_path):
    x = np.arange(4, dtype=np.complex64).reshape(4, 1, 1)
    write_cfl(tmp_path / "t", x)
    assert read_cfl(tmp_path / "t").shape == (4,)  # BART's convention
    assert read_cfl(tmp_path / "t", ndim=3).shape == (4, 1, 1)
    assert read_cfl(tmp_path / "t", ndim=5).shape == (4, 1, 1, 1, 1)
    with pytest.raises(MrireconError, match="ndim must be a positive integer"):
        read_cfl(tmp_path / "t", ndim=0)
    write_cfl(tmp_path / "s", np.complex64(2 + 1j))  # a scalar is a 1-element array
    np.testing.assert_array_equal(read_cfl(tmp_path / "s"), [2 + 1j])


def test_byte_layout(tmp_path):
    # column-major: dim 0 varies fastest, as BART's md_ functions index memory
    x = np.array([[1 + 2j, 3 + 4j, 5 + 6j], [7 + 8j, 9 + 10j, 11 + 12j]])
    base = write_cfl(tmp_path / "b.cfl", x)  # the suffix is stripped
    assert base == tmp_path / "b"
    assert (tmp_path / "b.hdr").read_bytes() == b"# Dimensions\n2 3 \n"
    raw = np.frombuffer((tmp_path / "b.cfl").read_bytes(), dtype="<f4")
    np.testing.assert_array_equal(raw, [1, 2, 7, 8, 3, 4, 9, 10, 5, 6, 11, 12])


def test_reads_bart_c_headers(tmp_path):
    # BART's C tools pad to 16 dims and may append more sections
    (tmp_path / "c.hdr").write_text("# Dimensions\n2 3 1 1 1 1 1 1 1 1 1 1 1 1 1 1 \n# Command\nbart ones 2 2 3 c\n")
    np.ones(6, dtype=np.complex64).tofile(tmp_path / "c.cfl")
    y = read_cfl(tmp_path / "c.hdr")
    assert y.shape == (2, 3) and np.all(y == 1)


def test_real_and_torch_inputs(tmp_path):
    write_cfl(tmp_path / "r", torch.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(read_cfl(tmp_path / "r"), np.arange(6.0).reshape(2, 3).astype(np.complex64))


def test_bad_files(tmp_path):
    with pytest.raises(MrireconError, match=r"m\.hdr: no such file"):
        read_cfl(tmp_path / "m")
    write_cfl(tmp_path / "x", np.ones((2, 3), np.complex64))
    (tmp_path / "x.cfl").write_bytes(b"\0" * 40)
    with pytest.raises(MrireconError, match=r"holds 40 bytes but x\.hdr dims \(2, 3\) need 48"):
        read_cfl(tmp_path / "x")
    (tmp_path / "x.cfl").unlink()
    with pytest.raises(MrireconError, match=r"x\.cfl: no such file"):
        read_cfl(tmp_path / "x")
    (tmp_path / "h.hdr").write_text("# Dims\n2 3\n")
    (tmp_path / "h.cfl").write_bytes(b"")
    with pytest.raises(MrireconError, match="missing the '# Dimensions' line"):
        read_cfl(tmp_path / "h")
    (tmp_path / "h.hdr").write_text("# Dimensions\n2 x\n")
    with pytest.raises(MrireconError, match="positive integer sizes"):
        read_cfl(tmp_path / "h")
    with pytest.raises(MrireconError, match="array must hold numbers"):
        write_cfl(tmp_path / "o", np.array(["a"]))
    with pytest.raises(MrireconError, match="array is empty"):
        write_cfl(tmp_path / "o", np.zeros((0, 3)))
