"""The multi-coil Cartesian SENSE operator ``A x = M ⊙ F(S ⊙ x)`` in torch (CPU and CUDA).

``S`` are coil sensitivities ``(..., C, H, W)``, ``F`` the centred orthonormal 2-D FFT
(:func:`mrirecon.physics.fft.fft2c`) and ``M`` a real sampling mask (0/1, or non-negative
weights such as a density compensation) broadcastable to ``(..., C, H, W)``. Because ``F``
is unitary and ``M`` real,

* adjoint ``Aᴴ y = Σ_c conj(S_c) ⊙ F⁻¹(M ⊙ y_c)``,
* normal ``AᴴA x = Σ_c conj(S_c) ⊙ F⁻¹(M² ⊙ F(S_c ⊙ x))``.

No ``fftshift``/``ifftshift`` copies are made: for any length ``N`` with ``c = N//2``,
``fftshift(fft(ifftshift(x)))[k] = e^{2πi(k-c)c/N} · fft(e^{2πi c n/N} ⊙ x)[k]``, so the
centring becomes a phase applied once to the image (``pre``) and folded into the mask
(``post``): ``A x = (M·post) ⊙ fft2(S ⊙ (pre ⊙ x))``. This is exact for odd and even sizes.

Leading dimensions broadcast: images ``x (..., H, W)`` against maps ``(..., C, H, W)``; for
example ``N`` posterior samples of ``S`` slices are ``x (S, N, H, W)`` with maps
``(S, 1, C, H, W)``. The coil axis can be processed in chunks (``coil_batch``) so the
``(..., C, H, W)`` intermediates of the normal operator never exist in full.
"""

from __future__ import annotations

import numpy as np
import torch

from mrirecon.errors import MrireconError, positive_int, require
from mrirecon.physics.linop import LinearOperator

__all__ = ["SenseOp", "SoftSenseOp", "sense_operator"]


def _centring_phases(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pre, post) of length n with fftshift(fft(ifftshift(x))) = post ⊙ fft(pre ⊙ x) (float64 phases)."""
    c = n // 2
    k = torch.arange(n, dtype=torch.float64)
    pre = torch.polar(torch.ones(n, dtype=torch.float64), 2 * torch.pi * ((c * k) % n) / n)
    post = torch.polar(torch.ones(n, dtype=torch.float64), 2 * torch.pi * (((k - c) * c) % n) / n)
    return pre, post


def _mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b``, in place when broadcasting does not enlarge ``a`` (``a`` is a fresh temporary)."""
    return a.mul_(b) if torch.broadcast_shapes(a.shape, b.shape) == a.shape else a * b


def _to_tensor(a, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    raise MrireconError(f"{name} must be a torch tensor or numpy array, got {type(a).__name__}")


class SenseOp(LinearOperator):
    """Multi-coil Cartesian forward model ``A x = M ⊙ F(S ⊙ x)`` with adjoint and normal operator.

    A :class:`~mrirecon.physics.linop.LinearOperator` with ``ishape = (H, W)`` and
    ``oshape = (C, H, W)``; leading dimensions broadcast against the maps' leading dimensions.

    Parameters
    ----------
    maps : Tensor or ndarray (..., C, H, W), complex
        Coil sensitivities. Their dtype (complex64, or complex128 for double precision) and
        device are the operator's.
    mask : Tensor or ndarray, real, broadcastable to (..., C, H, W)
        Sampling mask or weights, e.g. ``(H, W)``, ``(W,)``, ``(S, 1, H, W)``. Moved to the
        maps' device.
    coil_batch : int, optional
        Process at most this many coils at a time (bounds the memory of :meth:`normal` and
        :meth:`adjoint` to ``coil_batch`` coil images). None: all coils at once.

    Examples
    --------
    >>> op = SenseOp(maps, mask)          # maps (S, C, H, W), mask (H, W)
    >>> y = op(x)                         # x (S, H, W) -> (S, C, H, W)
    >>> z = op.adjoint(y)                 # -> (S, H, W)
    """

    def __init__(self, maps, mask, coil_batch: int | None = None):
        maps = _to_tensor(maps, "maps")
        require(maps.ndim >= 3, f"maps must be (..., coils, H, W), got shape {tuple(maps.shape)}")
        require(maps.is_complex(), f"maps must be complex, got dtype {maps.dtype}")
        require(maps.numel() > 0, f"maps is empty, shape {tuple(maps.shape)}")
        mask = _to_tensor(mask, "mask")
        require(not mask.is_complex(), f"mask must be real (0/1 values or weights), got dtype {mask.dtype}")
        require(mask.ndim >= 1, f"mask must have at least one dimension (W,), got shape {tuple(mask.shape)}")
        try:
            torch.broadcast_shapes(mask.shape, maps.shape)
        except RuntimeError:
            raise MrireconError(
                f"mask of shape {tuple(mask.shape)} is not broadcastable to the maps (..., coils, H, W) = "
                f"{tuple(maps.shape)}"
            ) from None
        if coil_batch is not None:
            positive_int(coil_batch, "coil_batch")
        self.maps = maps
        self.dtype = maps.dtype
        self.device = maps.device
        real = torch.float64 if maps.dtype == torch.complex128 else torch.float32
        self.mask = mask.to(device=maps.device, dtype=real)
        self.num_coils, self.image_shape = int(maps.shape[-3]), (int(maps.shape[-2]), int(maps.shape[-1]))
        self.ishape, self.oshape = self.image_shape, (self.num_coils,) + self.image_shape
        self.coil_batch = self.num_coils if coil_batch is None else min(int(coil_batch), self.num_coils)
        H, W = self.image_shape
        pre_h, post_h = _centring_phases(H)
        pre_w, post_w = _centring_phases(W)
        self._pre = (pre_h[:, None] * pre_w[None, :]).to(device=maps.device, dtype=maps.dtype)  # (H, W)
        post = (post_h[:, None] * post_w[None, :]).to(device=maps.device, dtype=maps.dtype)
        self._mask_post = self.mask * post  # (..., H, W): mask and output centring in one multiply
        # physical conjugates: a lazily conjugated operand makes every multiply copy it first
        self._mask_post_conj = self._mask_post.conj_physical()
        self._pre_conj = self._pre.conj_physical()
        self._mask2 = (self.mask * self.mask).to(maps.dtype)  # AᴴA: |post|² = 1 cancels

    def lipschitz(self) -> float:
        """A bound on ‖AᴴA‖: ``max Σ_c |S_c|² · max M²`` (FISTA's step without power iteration)."""
        return float((self.maps.abs() ** 2).sum(-3).max()) * float((self.mask**2).max())

    # ------------------------------------------------------------------ sub-operators
    def select(self, index: int | slice, sample_axis: bool = False) -> "SenseOp":
        """The operator of slice(s) ``index`` along the maps' first axis (maps ``(S, C, H, W)``).

        A mask with a slice axis (``(S, 1, H, W)``) is indexed alike; a shared mask is kept.
        ``sample_axis=True`` (with a slice range) inserts a broadcast axis after the slice axis,
        so that images ``(k, n, H, W)`` (k slices, n samples each) map to ``(k, n, C, H, W)``.
        """
        require(self.maps.ndim == 4, f"select needs maps (S, C, H, W), got shape {tuple(self.maps.shape)}")
        S = self.maps.shape[0]
        maps, mask = self.maps[index], self.mask
        per_slice = mask.ndim == 4 and mask.shape[0] == S and S > 1
        if per_slice:
            mask = mask[index]
        elif mask.ndim == 4 and isinstance(index, int):
            mask = mask[0]
        if sample_axis:
            require(isinstance(index, slice), "sample_axis needs a slice range, e.g. select(slice(0, 2), True)")
            maps = maps[:, None]
            if mask.ndim == 4:
                mask = mask[:, None]
        return SenseOp(maps, mask, coil_batch=self.coil_batch)

    # ------------------------------------------------------------------ helpers
    def _chunks(self):
        for c0 in range(0, self.num_coils, self.coil_batch):
            yield slice(c0, min(c0 + self.coil_batch, self.num_coils))

    def _mask_of(self, m: torch.Tensor, coils: slice) -> torch.Tensor:
        """The mask's coil chunk (masks with a coil axis of size C are sliced, others broadcast)."""
        if m.ndim >= 3 and m.shape[-3] == self.num_coils and self.num_coils > 1:
            return m[..., coils, :, :]
        return m

    def _input(self, a, name: str, trailing: tuple[int, ...], layout: str) -> tuple[torch.Tensor, bool]:
        was_numpy = isinstance(a, np.ndarray)
        t = _to_tensor(a, name)
        require(
            t.ndim >= len(trailing) and tuple(t.shape[-len(trailing) :]) == trailing,
            f"{name} must be {layout} = (..., {', '.join(map(str, trailing))}), got shape {tuple(t.shape)}",
        )
        require(
            t.device == self.device,
            f"{name} is on {t.device} but the operator's maps are on {self.device}; move one of them",
        )
        try:
            torch.broadcast_shapes(t.shape[: t.ndim - len(trailing)], self.maps.shape[:-3])
        except RuntimeError:
            raise MrireconError(
                f"{name} leading dims {tuple(t.shape[: t.ndim - len(trailing)])} do not broadcast against the "
                f"maps' leading dims {tuple(self.maps.shape[:-3])}"
            ) from None
        return t.to(self.dtype), was_numpy

    # ------------------------------------------------------------------ the operator
    def forward(self, x):
        """``A x = M ⊙ F(S ⊙ x)``.

        Parameters
        ----------
        x : Tensor or ndarray (..., H, W), complex
            Image(s); leading dims broadcast against the maps' leading dims.

        Returns
        -------
        Tensor or ndarray (..., C, H, W), same kind as ``x``, the operator's dtype.
        """
        t, was_numpy = self._input(x, "x", self.image_shape, "an image (..., H, W)")
        xe = (self._pre * t)[..., None, :, :]
        chunks = []
        for c in self._chunks():
            k = torch.fft.fft2(self.maps[..., c, :, :] * xe, norm="ortho")
            chunks.append(_mul(k, self._mask_of(self._mask_post, c)))
        y = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=-3)
        return y.cpu().numpy() if was_numpy else y

    __call__ = forward

    def adjoint(self, y):
        """``Aᴴ y = Σ_c conj(S_c) ⊙ F⁻¹(M ⊙ y_c)``.

        Parameters
        ----------
        y : Tensor or ndarray (..., C, H, W), complex
            Multi-coil k-space.

        Returns
        -------
        Tensor or ndarray (..., H, W), same kind as ``y``.
        """
        t, was_numpy = self._input(y, "y", (self.num_coils,) + self.image_shape, "k-space (..., coils, H, W)")
        out = None
        for c in self._chunks():
            u = torch.fft.ifft2(self._mask_of(self._mask_post_conj, c) * t[..., c, :, :], norm="ortho")
            part = _mul(u, self.maps[..., c, :, :].conj()).sum(-3)
            out = part if out is None else out.add_(part)
        out = out.mul_(self._pre_conj)
        return out.cpu().numpy() if was_numpy else out

    def normal(self, x):
        """``AᴴA x = Σ_c conj(S_c) ⊙ F⁻¹(M² ⊙ F(S_c ⊙ x))``.

        The output centring phase has unit modulus and cancels, so each coil costs one FFT
        pair and three multiplies; with ``coil_batch`` the peak memory is ``coil_batch`` coil
        images.

        Parameters
        ----------
        x : Tensor or ndarray (..., H, W), complex

        Returns
        -------
        Tensor or ndarray (..., H, W), same kind as ``x``.
        """
        t, was_numpy = self._input(x, "x", self.image_shape, "an image (..., H, W)")
        xe = (self._pre * t)[..., None, :, :]
        out = None
        for c in self._chunks():
            s = self.maps[..., c, :, :]
            k = _mul(torch.fft.fft2(s * xe, norm="ortho"), self._mask_of(self._mask2, c))
            part = _mul(torch.fft.ifft2(k, norm="ortho"), s.conj()).sum(-3)
            out = part if out is None else out.add_(part)
        out = out.mul_(self._pre_conj)
        return out.cpu().numpy() if was_numpy else out

    def __repr__(self) -> str:
        return (
            f"SenseOp(maps={tuple(self.maps.shape)}, mask={tuple(self.mask.shape)}, "
            f"coil_batch={self.coil_batch}, dtype={self.dtype}, device={self.device})"
        )


class SoftSenseOp(LinearOperator):
    """Soft-SENSE with several sets of maps: ``A x = Σ_m M ⊙ F(S_m ⊙ x_m)``, one image per set.

    Uecker et al., ESPIRiT (MRM 71:990): where the object is larger than the field of view,
    aliased tissue overlaps and one set of maps cannot describe both; ESPIRiT's second
    eigenvector is a second set, each with its own image (BART ``ecalib -m2`` + ``pics``).
    ``ishape = (M, H, W)`` (one unknown per slice: :attr:`image_ndim` = 3 for the solvers),
    ``oshape = (C, H, W)``; the final image is the root-sum-of-squares over the sets.

    Parameters
    ----------
    maps : Tensor (S, M, C, H, W) complex
    mask : Tensor real, (H, W), (W,) or (S, 1, H, W)
    """

    image_ndim = 3

    def __init__(self, maps, mask):
        maps = _to_tensor(maps, "maps")
        require(maps.ndim == 5, f"soft-SENSE maps must be (slices, sets, coils, H, W), got shape {tuple(maps.shape)}")
        mask = _to_tensor(mask, "mask")
        if mask.ndim == 4:  # (S, 1, H, W): broadcast over the set axis too
            mask = mask[:, None]
        self.sets = SenseOp(maps, mask)
        self.maps, self.mask = maps, self.sets.mask
        self.num_coils, self.image_shape = self.sets.num_coils, self.sets.image_shape
        self.ishape = (int(maps.shape[1]),) + self.image_shape
        self.oshape = (self.num_coils,) + self.image_shape

    def lipschitz(self) -> float:
        """A bound on ‖AᴴA‖: ``max Σ_{m,c} |S_mc|² · max M²`` (Cauchy–Schwarz over the sets)."""
        return float((self.maps.abs() ** 2).sum((-4, -3)).max()) * float((self.mask**2).max())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sets.forward(x).sum(-4)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.sets.adjoint(y.unsqueeze(-4))


def sense_operator(maps, mask) -> LinearOperator:
    """:class:`SoftSenseOp` for maps with a set axis ``(S, M, C, H, W)``, else :class:`SenseOp`."""
    return SoftSenseOp(maps, mask) if maps.ndim == 5 else SenseOp(maps, mask)
