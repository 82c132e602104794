"""Linear operators on torch tensors: shapes, adjoint, normal operator and composition.

A :class:`LinearOperator` maps tensors whose trailing shape is ``ishape`` to tensors whose
trailing shape is ``oshape``; leading (batch) dimensions pass through. Every operator has

* ``A(x)`` / ``A.forward(x)``, ``A.adjoint(y)`` and ``A.H`` (the adjoint as an operator),
* ``A.normal(x) = AᴴA x`` (overridden where a cheaper form exists, e.g. SENSE),
* ``A @ B`` (composition: ``(A @ B)(x) = A(B(x))``, ``(A @ B).normal = Bᴴ (AᴴA) B``).

The sampler builds ``A = SENSE ∘ Crop`` for images on a padded network grid and hands
``(A, y)`` to data consistency and the classical solvers; nothing downstream assembles
pad∘normal∘crop by hand.
"""

from __future__ import annotations

import torch

from mrirecon.errors import require

__all__ = ["Compose", "Crop", "Identity", "LinearOperator", "Pad"]


class LinearOperator:
    """Base class: subclasses set ``ishape``/``oshape`` and implement ``_forward``/``_adjoint``."""

    ishape: tuple[int, ...] = ()
    oshape: tuple[int, ...] = ()

    def _check(self, x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        require(isinstance(x, torch.Tensor), f"{type(self).__name__}: {what} must be a torch tensor, got {type(x).__name__}")
        n = len(shape)
        require(
            x.ndim >= n and tuple(x.shape[x.ndim - n :]) == tuple(shape),
            f"{type(self).__name__}: {what} must end with shape {tuple(shape)}, got {tuple(x.shape)}",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x (..., *ishape)`` -> ``(..., *oshape)``."""
        self._check(x, self.ishape, "input")
        return self._forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᴴ y`` for ``y (..., *oshape)`` -> ``(..., *ishape)``."""
        self._check(y, self.oshape, "adjoint input")
        return self._adjoint(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``AᴴA x``."""
        return self.adjoint(self.forward(x))

    def __call__(self, x):
        return self.forward(x)

    @property
    def H(self) -> "LinearOperator":
        """The adjoint operator."""
        return _Adjoint(self)

    def __matmul__(self, other: "LinearOperator") -> "LinearOperator":
        require(isinstance(other, LinearOperator), f"cannot compose an operator with {type(other).__name__}")
        return Compose(self, other)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ishape} -> {self.oshape})"


class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator):
        self.op, self.ishape, self.oshape = op, op.oshape, op.ishape

    def _forward(self, x):
        return self.op.adjoint(x)

    def _adjoint(self, y):
        return self.op.forward(y)

    @property
    def H(self) -> LinearOperator:
        return self.op


class Identity(LinearOperator):
    """``x -> x`` on tensors ending with ``shape``."""

    def __init__(self, shape: tuple[int, ...]):
        self.ishape = self.oshape = tuple(int(n) for n in shape)

    def _forward(self, x):
        return x

    _adjoint = _forward

    def normal(self, x):
        return x


class Compose(LinearOperator):
    """``A ∘ B``: forward ``A(B(x))``, adjoint ``Bᴴ(Aᴴ(y))``, normal ``Bᴴ (AᴴA) B`` (A's own normal)."""

    def __init__(self, a: LinearOperator, b: LinearOperator):
        require(
            tuple(a.ishape) == tuple(b.oshape),
            f"cannot compose {a!r} after {b!r}: shapes {tuple(b.oshape)} and {tuple(a.ishape)} differ",
        )
        self.a, self.b = a, b
        self.ishape, self.oshape = b.ishape, a.oshape

    def _forward(self, x):
        return self.a.forward(self.b.forward(x))

    def _adjoint(self, y):
        return self.b.adjoint(self.a.adjoint(y))

    def normal(self, x):
        return self.b.adjoint(self.a.normal(self.b.forward(x)))

    def __repr__(self) -> str:
        return f"{self.a!r} @ {self.b!r}"


def _centre(n: int, m: int) -> slice:
    """The centred length-``m`` window of a length-``n`` axis (index ``n//2`` stays the centre)."""
    start = n // 2 - m // 2
    return slice(start, start + m)


class Crop(LinearOperator):
    """Centre crop of the last two axes from ``ishape`` (H', W') to ``oshape`` (H, W); adjoint: zero-pad.

    The window is ``H'//2 - H//2 …`` along each axis, the convention of
    :func:`mrirecon.physics.fft.center_crop` (the k-space centre ``n//2`` stays the centre).
    """

    def __init__(self, ishape: tuple[int, int], oshape: tuple[int, int]):
        self.ishape, self.oshape = (int(ishape[0]), int(ishape[1])), (int(oshape[0]), int(oshape[1]))
        require(
            all(o <= i for i, o in zip(self.ishape, self.oshape)),
            f"Crop: output {self.oshape} must not exceed input {self.ishape}",
        )
        self._rows = _centre(self.ishape[0], self.oshape[0])
        self._cols = _centre(self.ishape[1], self.oshape[1])

    def _forward(self, x):
        return x[..., self._rows, self._cols]

    def _adjoint(self, y):
        out = y.new_zeros(y.shape[:-2] + self.ishape)
        out[..., self._rows, self._cols] = y
        return out

    def normal(self, x):
        out = torch.zeros_like(x)
        out[..., self._rows, self._cols] = x[..., self._rows, self._cols]
        return out


def Pad(ishape: tuple[int, int], oshape: tuple[int, int]) -> LinearOperator:
    """Centred zero-padding of the last two axes from ``ishape`` to ``oshape`` (the adjoint of a crop)."""
    return Crop(oshape, ishape).H
