"""The conditioning context of a sequence prior: a sliding window of earlier frames.

An AID prior denoises frame ``s`` conditioned on the frames before it. :class:`SliceWindow`
keeps up to ``length`` (``seq_length``) of them, oldest first, per batch element (each
posterior sample keeps its own window). Its :attr:`~SliceWindow.position` is the window slot
of the frame just before the one being denoised; the network reads that slot (and, with
``attention="full"``, the slots before it).

Cold start: before any frame is pushed the window holds zeros and the position is 0, so the
first frame is conditioned on one zero frame (the AID network has no unconditional mode).
Once ``length`` frames are in, each push drops the oldest. The posterior sampler and
prior-only generation (``mrirecon sample``) share this class.
"""

from __future__ import annotations

import torch

from mrirecon.errors import positive_int, require

__all__ = ["SliceWindow"]


class SliceWindow:
    """Up to ``length`` earlier frames per batch element.

    Parameters
    ----------
    batch : int
        Batch elements (posterior samples); each has its own window.
    length : int
        Frames kept (the prior's ``seq_length``).
    frame_shape : (C, H, W)
        Network layout of one frame.
    device : torch.device or str

    Attributes
    ----------
    frames : Tensor (batch, length, C, H, W)
        The window, oldest first; slots ``count..length-1`` are zeros.
    count : int
        Frames pushed so far, at most ``length``.
    """

    def __init__(self, batch: int, length: int, frame_shape: tuple[int, int, int], device):
        self.batch, self.length = positive_int(batch, "batch"), positive_int(length, "length")
        self.frame_shape = tuple(int(n) for n in frame_shape)
        self.frames = torch.zeros((self.batch, self.length, *self.frame_shape), device=device)
        self.count = 0

    @property
    def position(self) -> int:
        """Slot of the most recent frame (0 for a cold start)."""
        return max(self.count - 1, 0)

    def push(self, frame: torch.Tensor) -> None:
        """Append ``frame`` (batch, C, H, W) or (C, H, W) (the same for every batch element)."""
        require(
            tuple(frame.shape[-3:]) == self.frame_shape and frame.ndim in (3, 4),
            f"a window frame must be (batch, *{self.frame_shape}) or {self.frame_shape}, got {tuple(frame.shape)}",
        )
        frame = frame.to(self.frames.device, self.frames.dtype).expand(self.batch, *self.frame_shape)
        if self.count < self.length:
            self.frames[:, self.count] = frame
            self.count += 1
        else:
            self.frames = torch.cat((self.frames[:, 1:], frame[:, None]), dim=1)

    @classmethod
    def of_histories(cls, histories: list[list[torch.Tensor]], length: int) -> "SliceWindow":
        """One window over several batch groups that have each seen the same number of frames.

        ``histories[g]`` lists group g's frames (n, C, H, W), oldest first (its last ``length``
        are kept); the window's batch is the groups' batches concatenated, in order. This is the
        window :meth:`push` would have built for each group, so a batch can mix frames (slices)
        that are at different points of a volume.
        """
        kept = [h[len(h) - min(len(h), length) :] for h in histories]
        count = len(kept[0])
        require(all(len(h) == count for h in kept), "of_histories: every group must have seen the same number of frames")
        first = histories[0][0] if count else None
        require(first is not None, "of_histories: use SliceWindow(...) for a cold start (no frames)")
        n = [int(h[0].shape[0]) for h in kept]
        win = cls(sum(n), length, tuple(first.shape[1:]), first.device)
        win.frames[:, :count] = torch.cat([torch.stack(h, dim=1) for h in kept])
        win.count = count
        return win

    def __repr__(self) -> str:
        return f"SliceWindow(batch={self.batch}, length={self.length}, frame={self.frame_shape}, count={self.count})"
