"""Orthonormal 2-D wavelet transform in torch: L1-wavelet runs where the data are (CPU or GPU).

The discrete wavelet transform with periodic extension ("periodisation", PyWavelets'
``mode="periodization"``) is an orthogonal matrix for orthonormal filters (Daubechies, Symlets,
Coiflets, Haar), so the inverse is the adjoint and ``Ψᴴ soft(Ψ x)`` is the proximal operator of
``‖Ψ x‖₁``. One analysis level along an axis of length N (even) is::

    a[k] = Σ_j h[j] x[(2k + F/2 - j) mod N],   d[k] = Σ_j g[j] x[(2k + F/2 - j) mod N]

with the decomposition low/high-pass filters ``h``, ``g`` of length F (PyWavelets' ``dec_lo``,
``dec_hi``; the offset F/2 reproduces its coefficients exactly, see the tests). Both it and
its polyphase inverse are F shifted multiply-adds over a circularly indexed copy of the
signal, batched over images and both real parts, so the same code runs on the CPU (as fast as
PyWavelets' C loops at 320², ``benchmarks/bench_physics.py``) and on the GPU. Only the filter
taps come from PyWavelets.

Any matrix size: the image is zero-padded at its end to a multiple of ``2**levels`` (as SigPy's
wavelet operator pads), with ``levels = min(4, dwt_max_level(min(H, W)))`` so that the filters
never wrap around a band more than once. Without the padding a 230 x 180 image got one level
and an odd size none, i.e. no regularisation at all. The padding ``C`` is an isometry, so
``Cᴴ Ψᴴ soft(Ψ C x)`` is still a proximal step (SigPy's ``UnitaryTransform`` of the padded
transform).
"""

from __future__ import annotations

import numpy as np
import torch

from mrirecon.errors import MrireconError, require

__all__ = ["MAX_LEVELS", "Wavelet2D"]

#: Most decomposition levels (BART's and SigPy's L1-wavelet use 3-4 on brain images).
MAX_LEVELS = 4


class Wavelet2D:
    """Orthonormal periodised 2-D DWT of image batches ``(..., H, W)``, real or complex.

    Parameters
    ----------
    shape : (H, W)
        Image size; the transform works on the zero-padded size :attr:`padded`.
    wavelet : str
        PyWavelets name of an orthogonal wavelet (``"db4"``, ``"sym8"``, ``"haar"``, ...).
    levels : int, optional
        Decomposition levels (default and upper bound: ``min(4, dwt_max_level)``).

    Attributes
    ----------
    levels : int
    padded : (H', W')
        Multiples of ``2**levels``.
    """

    def __init__(self, shape: tuple[int, int], wavelet: str = "db4", levels: int | None = None):
        import pywt

        try:
            w = pywt.Wavelet(wavelet)
        except ValueError as e:
            raise MrireconError(f"wavelet {wavelet!r}: {e}") from None
        if not w.orthogonal:
            raise MrireconError(f"wavelet {wavelet!r} is not orthogonal; use e.g. 'db4', 'sym8' or 'haar'")
        require(
            len(tuple(shape)) == 2 and all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape),
            f"wavelet: shape must be (H, W) with positive integers, got {tuple(shape)!r}",
        )
        H, W = (int(n) for n in shape)
        most = min(MAX_LEVELS, pywt.dwt_max_level(min(H, W), w.dec_len))
        self.levels = max(1, most if levels is None else min(int(levels), most))
        step = 2**self.levels
        self.shape = (H, W)
        self.padded = (-(-H // step) * step, -(-W // step) * step)
        f, s = int(w.dec_len), int(w.dec_len) // 2
        self._flen, self._shift = f, s
        # analysis taps in correlation order: a[k] = Σ_m h_rev[m] ext[2k + m], ext[p] = x[(p + s - F + 1) mod N]
        self._lo_rev, self._hi_rev = list(w.dec_lo[::-1]), list(w.dec_hi[::-1])
        # synthesis, polyphase: x[2m + r] = Σ_i a[(m + i) mod M] lo[2i + s - r] + d[(m + i) mod M] hi[2i + s - r]
        self._imin = -((s + 1) // 2)
        span = (f - s) // 2 - self._imin + 1
        self._phases = [[(k, w.dec_lo[2 * i + s - r], w.dec_hi[2 * i + s - r])
                         for k, i in enumerate(range(self._imin, self._imin + span)) if 0 <= 2 * i + s - r < f]
                        for r in (0, 1)]  # fmt: skip
        self._span = span
        self._cache: dict = {}

    # -- one level along the second-last axis, as shifted multiply-adds -----------------------------
    # (on the CPU these ran 2-3.5x faster than oneDNN's single-channel strided convolutions, and
    # batched over slices they are large enough for the GPU)

    def _index(self, n: int, start: int, length: int, device) -> torch.Tensor:
        """``(start + p) mod n`` for p < length: a circular extension, wrapping as often as needed."""
        key = (n, start, length, device)
        if key not in self._cache:
            self._cache[key] = (torch.arange(length, device=device) + start) % n
        return self._cache[key]

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Analysis along dim -2: (..., n, m) -> low, high (..., n/2, m)."""
        n, f = x.shape[-2], self._flen
        ext = x.index_select(-2, self._index(n, self._shift - f + 1, n + f - 2, x.device))
        lo, hi = ext[..., 0:n:2, :] * self._lo_rev[0], ext[..., 0:n:2, :] * self._hi_rev[0]
        for m in range(1, f):
            v = ext[..., m : m + n - 1 : 2, :]
            lo.add_(v, alpha=self._lo_rev[m])
            hi.add_(v, alpha=self._hi_rev[m])
        return lo, hi

    def _merge(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """Synthesis along dim -2, the adjoint (= inverse) of :meth:`_split`: (..., M, m) x 2 -> (..., 2M, m)."""
        M = lo.shape[-2]
        idx = self._index(M, self._imin, M + self._span - 1, lo.device)
        ext_lo, ext_hi = lo.index_select(-2, idx), hi.index_select(-2, idx)
        phases = []
        for taps in self._phases:
            out = torch.zeros_like(lo)
            for k, g_lo, g_hi in taps:
                out.add_(ext_lo[..., k : k + M, :], alpha=g_lo).add_(ext_hi[..., k : k + M, :], alpha=g_hi)
            phases.append(out)
        return torch.stack(phases, dim=-2).reshape(*lo.shape[:-2], 2 * M, lo.shape[-1])

    def _analysis(self, a: torch.Tensor) -> torch.Tensor:
        """(B, H, W) -> (2, 2, B, H/2, W/2): bands [W-band, H-band], 0 low, 1 high."""
        lo, hi = self._split(a.mT.contiguous())  # along W (transposed): (B, W/2, H) each
        return torch.stack(self._split(torch.stack((lo, hi)).mT.contiguous()), dim=1)  # along H

    def _synthesis(self, block: torch.Tensor) -> torch.Tensor:
        """(2, 2, B, h, w) -> (B, 2h, 2w)."""
        cols = self._merge(block[:, 0], block[:, 1]).mT.contiguous()  # along H, then transposed: (2, B, w, 2h)
        return self._merge(cols[0], cols[1]).mT.contiguous()  # along W

    # -- all levels -----------------------------------------------------------------------------

    def _decompose(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Real (B, H, W) -> blocks (2, 2, B, h, w), finest first; the last block's [0, 0] is the approximation."""
        H, W = self.shape
        a = torch.nn.functional.pad(x, (0, self.padded[1] - W, 0, self.padded[0] - H)) if self.padded != self.shape else x
        blocks = []
        for _ in range(self.levels):
            blocks.append(self._analysis(a))
            a = blocks[-1][0, 0]
        return blocks

    def _reconstruct(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Image from :meth:`_decompose`'s blocks; writes each coarser result into the next block's approximation."""
        a = None
        for block in blocks[::-1]:
            if a is not None:
                block[0, 0] = a
            a = self._synthesis(block)
        return a[..., : self.shape[0], : self.shape[1]]

    @staticmethod
    def _real_batch(x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """(..., H, W) real or complex -> (B, H, W) real (real and imaginary parts as batch entries)."""
        lead = tuple(x.shape[:-2])
        if x.is_complex():
            x = torch.view_as_real(x).movedim(-1, 0)  # (2, ..., H, W)
        return x.reshape(-1, *x.shape[-2:]), lead

    @staticmethod
    def _from_real_batch(x: torch.Tensor, lead: tuple, complex_: bool) -> torch.Tensor:
        if complex_:
            x = x.reshape(2, *lead, *x.shape[1:])
            return torch.complex(x[0], x[1])
        return x.reshape(*lead, *x.shape[1:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Coefficients of ``x`` (..., H, W) in PyWavelets' ``wavedec2`` order (for inspection and tests).

        ``[approx, details_L, ..., details_1]``: ``approx`` is (..., H'/2^L, W'/2^L) and
        ``details_l`` (3, ..., h, w) holds the (cH, cV, cD) bands of level l.
        """
        xr, lead = self._real_batch(x)
        blocks = self._decompose(xr)
        conv = lambda t: self._from_real_batch(t, lead, x.is_complex())  # noqa: E731
        details = [torch.stack([conv(b[0, 1]), conv(b[1, 0]), conv(b[1, 1])]) for b in blocks[::-1]]
        return [conv(blocks[-1][0, 0])] + details

    def inverse(self, coeffs: list[torch.Tensor]) -> torch.Tensor:
        """Image (..., H, W) from :meth:`forward`'s coefficients (cropped to :attr:`shape`)."""
        complex_ = coeffs[0].is_complex()
        approx, lead = self._real_batch(coeffs[0])
        blocks = []
        for d in coeffs[1:]:
            ch, cv, cd = (self._real_batch(b)[0] for b in d.unbind(0))
            blocks.append(torch.stack((torch.stack((torch.zeros_like(ch), ch)), torch.stack((cv, cd)))))
        blocks = blocks[::-1]
        blocks[-1][0, 0] = approx
        return self._from_real_batch(self._reconstruct(blocks), lead, complex_)

    def shrink(self, x: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
        """``Ψᴴ soft(Ψ x, τ)``: complex soft-thresholding of the detail bands, the approximation kept.

        Parameters
        ----------
        x : Tensor (..., H, W)
        tau : float or Tensor broadcastable to the batch ``(...,)``
            Threshold per image.
        """
        xr, lead = self._real_batch(x)
        blocks = self._decompose(xr)
        tau = torch.as_tensor(tau, dtype=xr.dtype, device=x.device).expand(lead).reshape(-1, 1, 1)
        out = []
        for i, b in enumerate(blocks):
            if x.is_complex():  # |re + i im| of each coefficient; (2, 2, parts, batch, h, w)
                b = b.unflatten(2, (2, -1))
                mag = (b[:, :, :1] * b[:, :, :1] + b[:, :, 1:] * b[:, :, 1:]).sqrt()
            else:
                mag = b.abs()
            shrunk = b * torch.clamp(1.0 - tau / mag.clamp_min(1e-30), min=0.0)
            if i == len(blocks) - 1:  # the approximation band is not penalised
                shrunk[0, 0] = b[0, 0]
            out.append(shrunk.flatten(2, 3) if x.is_complex() else shrunk)
        return self._from_real_batch(self._reconstruct(out), lead, x.is_complex())
