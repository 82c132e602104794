"""Posterior sampling of a multi-slice scan with a diffusion prior and data consistency.

Each slice's posterior ``p(x_s | y_s, x_{<s})`` is sampled by a reverse diffusion chain whose
every step predicts the clean image with the prior, takes K conjugate-gradient (or, as the
reference, gradient) iterations on ``½‖A_s x - y_s‖²`` (``A_s = M F S_s``, the multi-coil
operator of slice ``s``) and re-noises
(:mod:`mrirecon.recon.steps`). Two samplers share that chain:

* :class:`AIDSampler` (AID Causal-UNet prior): slices are reconstructed **one after the
  other**; slice ``s`` is conditioned on a window of the ``seq_length`` previously
  reconstructed slices, which slides once full (design/aid-reference.md §4.5).
  ``n_samples`` posterior samples of a slice run as one batch, and every sample keeps its own
  window: sample ``j`` of the volume is one autoregressive chain, a joint posterior sample of
  all slices (the reference's unfolding experiment repeats one conditioning frame instead).
* :class:`UNetSampler` (plain UNet prior, the reference's "Guide"): slices are independent,
  so all slices and samples run in one batch (``batch_size`` caps it).

Window semantics (``attention``), for the window position ``p`` that holds slice ``s-1``:

* ``"reference"``: the conditioning feature comes from window frame ``p`` alone, the official
  sampling semantics (aid-reference.md §1.5): slice ``s`` depends on slice ``s-1`` only.
* ``"full"``: the causal prefix ``0..p`` (up to ``seq_length`` earlier slices), what the
  network computes in training.

The first slice is either *given* (the paper's protocol: its fully sampled image enters the
window and is returned as is) or reconstructed from its own data with a **cold start**: its
window holds one zero frame at position 0 (the AID prior has no unconditional mode; after
that first slice the window only ever holds reconstructed slices, unlike the reference's
``sample.py`` whose cold start reads a still-empty position at every step).

Networks are fully convolutional: images whose size is not a multiple of the network's
downsampling factor are zero-padded (centred) in the image domain to the next multiple; the
forward operator crops the padding away (``A = M F S crop``), so the padded border is left to
the prior and cut off at the end.

Randomness: slice ``s`` draws from its own ``torch.Generator`` seeded from ``(seed, s)``
(:func:`slice_seed`): first ``x_T`` ``(n, C, H, W)``, then one tensor of the same shape per
step whose update rule needs fresh noise. Results therefore do not depend on how slices are
batched, and on CPU a seed reproduces a result bit for bit.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.errors import MrireconError, require
from mrirecon.physics.fft import center_crop, center_pad, channels_to_complex, complex_to_channels
from mrirecon.recon.steps import DC_METHODS, StepSchedule, UpdateRule, data_consistency, make_update, predict_x0

__all__ = [
    "AIDSampler",
    "DataConsistency",
    "UNetSampler",
    "VolumeData",
    "make_sampler",
    "network_multiple",
    "slice_seed",
]

ATTENTION_MODES = ("reference", "full")
#: Network precisions (:class:`mrirecon.prior.Prior`): bf16 autocast, TF32 on CUDA, or fp32.
PRECISIONS = ("fp32", "bf16", "tf32")

#: ``callback(slice_idx, step_idx, x0_hat)`` with ``x0_hat`` (n_samples, H, W) complex.
Callback = Callable[[int, int, torch.Tensor], None]
#: ``on_slices(out, stop)``: ``out`` (n_samples, S, H, W) whose slices ``0..stop-1`` are final.
SliceHook = Callable[[torch.Tensor, int], None]


def slice_seed(seed: int, slice_idx: int) -> int:
    """Seed of slice ``slice_idx``'s generator: well mixed, independent streams per slice."""
    return int(np.random.SeedSequence([int(seed), int(slice_idx)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def check_done(done: torch.Tensor, n_samples: int, n_slices: int, shape: tuple[int, int]) -> None:
    """``done`` must be (n_samples, D <= n_slices, H, W) complex: finished slices to resume from."""
    require(
        done.ndim == 4 and done.shape[0] == n_samples and done.shape[1] <= n_slices and tuple(done.shape[2:]) == shape,
        f"done must be ({n_samples}, D <= {n_slices}, {shape[0]}, {shape[1]}) finished slices, got {tuple(done.shape)}",
    )


def network_multiple(prior) -> int:
    """The factor image sizes must be a multiple of: ``2**(levels-1)`` of the U-Net."""
    return int(prior.config.downsampling)


def with_precision(prior, precision: str | None):
    """``prior`` itself, or a shallow copy (same network) that runs at ``precision``."""
    if precision is None or precision == prior.precision:
        return prior
    require(precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}")
    twin = copy.copy(prior)
    twin.precision = precision
    return twin


@dataclass
class VolumeData:
    """One scan as the sampler sees it: on the sampling device, in the prior's intensity scale.

    Attributes
    ----------
    kspace : Tensor (S, C, H, W) complex64
        Measured (masked) k-space multiplied by the intensity factor.
    maps : Tensor (S, C, H, W) complex64
        Coil sensitivities.
    mask : Tensor (S or 1, H, W) float32
        Sampling mask (one per slice or shared).
    given : Tensor (H, W) complex64, optional
        Image of slice 0 when it is given fully sampled (same intensity scale).
    """

    kspace: torch.Tensor
    maps: torch.Tensor
    mask: torch.Tensor
    given: torch.Tensor | None = None

    @property
    def num_slices(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return int(self.kspace.shape[-2]), int(self.kspace.shape[-1])

    def mask_of(self, s: int | slice) -> torch.Tensor:
        """Mask of slice ``s`` (or of a range of slices), broadcastable over coils."""
        if self.mask.shape[0] == 1:
            return self.mask[0]
        return self.mask[s]


class DataConsistency:
    """K data-consistency iterations on ``½‖A x - y‖²`` for images on a (possibly padded) network grid.

    ``A x = M F (S · crop(x))``; ``AᴴA x = pad(Sᴴ F⁻¹ M F S crop(x))`` and the right-hand side
    ``pad(Aᴴ y)`` is computed once.

    Parameters
    ----------
    op : SenseOp
        Operator of the slice(s), images ``(..., H, W)``.
    y : Tensor (..., C, H, W) complex
        Measurements in the prior's intensity scale.
    grid : (H', W')
        Network grid (>= (H, W)).
    n_steps, step_size : int, float
        K and η.
    method : {"gradient", "cg"}
        See :func:`mrirecon.recon.steps.data_consistency`.
    """

    def __init__(
        self, op, y: torch.Tensor, grid: tuple[int, int], n_steps: int, step_size: float, method: str = "gradient"
    ):
        self.op = op
        self.shape = (int(y.shape[-2]), int(y.shape[-1]))
        self.grid = (int(grid[0]), int(grid[1]))
        self.padded = self.grid != self.shape
        self.n_steps = int(n_steps)
        self.step_size = float(step_size)
        self.method = method
        self.rhs = self._pad(op.adjoint(y))

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return center_pad(x, self.grid) if self.padded else x

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """Network grid -> image grid."""
        return center_crop(x, self.shape) if self.padded else x

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``AᴴA x`` on the network grid."""
        return self._pad(self.op.normal(self.crop(x)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return data_consistency(x, self.normal, self.rhs, self.n_steps, self.step_size, self.method)


class _Progress:
    """Rich progress bars (slices, steps of the current slice); a no-op when disabled."""

    def __init__(self, enabled: bool, n_slices: int, n_steps: int, label: str):
        self.enabled = enabled
        self.n_slices, self.n_steps, self.label = n_slices, n_steps, label
        self._p = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich import progress as rp
            from rich.console import Console

            self._p = rp.Progress(
                rp.TextColumn("{task.description}"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TimeElapsedColumn(),
                rp.TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._p.__enter__()
            self._slices = self._p.add_task(f"{self.label}: slices", total=self.n_slices)
            self._steps = self._p.add_task("  steps", total=self.n_steps)
        return self

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.remove_task(self._steps)
            self._p.__exit__(*exc)
            self._p = None

    def start_slice(self, label: str) -> None:
        if self._p is not None:
            self._p.reset(self._steps, total=self.n_steps, description=f"  {label}")

    def step(self) -> None:
        if self._p is not None:
            self._p.advance(self._steps)

    def end_slices(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._slices, n)


class _DiffusionSampler:
    """Shared chain: ε̂ -> x̂0 -> data consistency -> update rule, over a respaced schedule."""

    kind = ""

    def __init__(
        self,
        prior,
        *,
        steps: int = 100,
        update: str | UpdateRule = "reference",
        eta: float = 0.0,
        temperature: float = 1.0,
        dc_steps: int = 8,
        dc_step_size: float = 1.0,
        dc: str = "cg",
        precision: str | None = None,
        timesteps=None,
        progress: bool = False,
        callback: Callback | None = None,
    ):
        require(
            getattr(prior, "kind", None) == self.kind,
            f"{type(self).__name__} needs a prior of kind {self.kind!r}, got {getattr(prior, 'kind', type(prior).__name__)!r}",
        )
        require(
            prior.in_channels == 2,
            f"prior has in_channels={prior.in_channels}: k-space reconstruction needs a complex "
            "(2-channel real/imag) prior; magnitude priors cannot model the phase the data carry",
        )
        require(
            isinstance(dc_steps, (int, np.integer)) and not isinstance(dc_steps, bool) and dc_steps >= 0,
            f"dc_steps must be an integer >= 0, got {dc_steps!r}",
        )
        require(
            isinstance(dc_step_size, (int, float)) and np.isfinite(dc_step_size) and dc_step_size > 0,
            f"dc_step_size must be a finite number > 0, got {dc_step_size!r}",
        )
        require(
            precision is None or precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}"
        )
        self.prior = with_precision(prior, precision)
        self.device = torch.device(prior.device)
        table = np.asarray(prior.schedule.alphas_cumprod, dtype=np.float64)
        if timesteps is None:
            timesteps = prior.schedule.respace(steps)
        self.schedule = StepSchedule.from_alphas_cumprod(table, timesteps)
        self.rule = update if isinstance(update, UpdateRule) else make_update(update, eta, temperature)
        require(dc in DC_METHODS, f"dc must be one of {DC_METHODS}, got {dc!r}")
        self.dc = dc
        self.dc_steps = int(dc_steps)
        self.dc_step_size = float(dc_step_size)
        self.precision = self.prior.precision
        self.progress = bool(progress)
        self.callback = callback
        self.multiple = network_multiple(prior)
        self.network_calls = 0
        self.network_images = 0
        self.slice_seconds: list[float] = []

    # -- helpers -----------------------------------------------------------------------------

    def grid(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Smallest network grid >= ``shape`` whose sides are multiples of the downsampling."""
        m = self.multiple
        return (-(-shape[0] // m) * m, -(-shape[1] // m) * m)

    def _t(self, t: int, batch: int) -> torch.Tensor:
        return torch.full((batch,), int(t), dtype=torch.long, device=self.device)

    def _generator(self, seed: int, s: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(slice_seed(seed, s))
        return g

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _chain(
        self,
        x: torch.Tensor,
        eps_fn: Callable[[torch.Tensor, int], torch.Tensor],
        dc: DataConsistency,
        noise_fn: Callable[[], torch.Tensor],
        on_step: Callable[[int, torch.Tensor], None],
        progress: _Progress,
    ) -> torch.Tensor:
        """Run the reverse chain from ``x = x_T`` (B, 2, H', W'); returns x̂0 (B, H', W') complex.

        ``eps_fn(x, t)`` -> raw network output (B, 4, H', W'); ``dc`` maps complex (B, H', W')
        to complex (B, H', W'); ``noise_fn()`` draws the next fresh noise (B, 2, H', W');
        ``on_step(i, x̂0)`` sees the data-consistent x̂0 in channels. Everything stays on the
        device: the schedule's ᾱ are host floats, so no step waits for the GPU.
        """
        sched, rule = self.schedule, self.rule
        n = len(sched)
        for i in range(n):
            a, an = float(sched.abar[i]), float(sched.abar_next[i])
            out = eps_fn(x, int(sched.timesteps[i]))
            eps = out[..., :2, :, :].float()
            x0 = complex_to_channels(dc(channels_to_complex(predict_x0(x, eps, a))))
            on_step(i, x0)
            noise = noise_fn() if rule.needs_noise(a, an) else None
            x = rule(x, eps, x0, a, an, noise)
            progress.step()
        return channels_to_complex(x)


class AIDSampler(_DiffusionSampler):
    """Autoregressive slice-by-slice posterior sampler with an AID (Causal-UNet) prior.

    Parameters
    ----------
    prior : Prior
        ``kind == "aid"``, complex (2 channels).
    steps : int
        Network evaluations per slice (timesteps ``floor(i·1000/steps)``, descending).
    update : {"reference", "ddim"} or UpdateRule
    eta : float
        DDIM η ∈ [0, 1] (``update="ddim"`` only).
    temperature : float
        τ on the injected noise.
    dc_steps, dc_step_size : int, float
        K data-consistency iterations per diffusion step; η of gradient steps (reference:
        4 gradient steps of size 1).
    dc : {"cg", "gradient"}
        Conjugate gradients (default) or the reference's gradient steps
        (:func:`mrirecon.recon.steps.data_consistency`).
    attention : {"reference", "full"}
        Window semantics (module docstring).
    precision : {"fp32", "bf16", "tf32"}, optional
        Network precision (default: the prior's own); the update maths stays fp32.
    timesteps : sequence of int, optional
        Explicit descending timesteps instead of ``steps``.
    progress : bool
        Rich progress bars per slice and per step (stderr).
    callback : callable, optional
        ``callback(slice_idx, step_idx, x0_hat)``, x0_hat (n, H, W) complex after data
        consistency, prior intensity scale, on the sampling device.
    """

    kind = "aid"

    def __init__(self, prior, *, attention: str = "reference", **kwargs):
        super().__init__(prior, **kwargs)
        require(attention in ATTENTION_MODES, f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        self.attention = attention
        self.seq_length = int(prior.seq_length)

    def sample_volume(
        self,
        data: VolumeData,
        n_samples: int = 1,
        seed: int = 0,
        context: torch.Tensor | None = None,
        done: torch.Tensor | None = None,
        on_slices: SliceHook | None = None,
    ) -> torch.Tensor:
        """Sample every slice of ``data`` in order.

        Parameters
        ----------
        data : VolumeData
        n_samples : int
            Posterior samples per slice (one batch; each keeps its own window).
        seed : int
        context : Tensor (T0, H, W) complex, optional
            Images (prior scale) of slices that precede slice 0, e.g. the end of another scan
            (the reference's warm start); they enter the window before slice 0.
        done : Tensor (n_samples, D, H, W) complex, optional
            Slices ``0..D-1`` from an interrupted run with the same settings: they fill the
            window and are skipped, so the rest equals an uninterrupted run.
        on_slices : callable, optional
            ``on_slices(out, stop)`` after each finished slice: ``out[:, :stop]`` is final.

        Returns
        -------
        Tensor (n_samples, S, H, W) complex64, prior intensity scale.
        """
        S = data.num_slices
        H, W = data.image_shape
        grid = self.grid((H, W))
        dev = self.device
        T = self.seq_length
        window = torch.zeros((n_samples, T, 2) + grid, device=dev)
        count = 0

        def push(frame: torch.Tensor) -> None:  # frame (n, 2, H', W')
            nonlocal window, count
            if count < T:
                window[:, count] = frame
                count += 1
            else:
                window = torch.cat((window[:, 1:], frame[:, None]), dim=1)

        def net_image(img: torch.Tensor) -> torch.Tensor:  # (…, H, W) complex -> (…, 2, H', W')
            return complex_to_channels(center_pad(img, grid) if grid != (H, W) else img)

        if context is not None:
            require(
                context.ndim == 3 and tuple(context.shape[-2:]) == (H, W),
                f"context must be (frames, {H}, {W}) complex images, got shape {tuple(context.shape)}",
            )
            for frame in context.to(dev):
                push(net_image(frame)[None].expand(n_samples, -1, -1, -1))

        out = torch.zeros((n_samples, S, H, W), dtype=torch.complex64, device=dev)
        first = 0
        label = f"AID ({self.attention})"
        with _Progress(self.progress, S, len(self.schedule), label) as progress:
            if data.given is not None:
                out[:, 0] = data.given.to(dev)
                push(net_image(data.given.to(dev))[None].expand(n_samples, -1, -1, -1))
                first = 1
                progress.end_slices()
            if done is not None:
                check_done(done, n_samples, S, (H, W))
                for s in range(first, done.shape[1]):
                    out[:, s] = done[:, s].to(dev)
                    push(net_image(out[:, s]))
                first = max(first, int(done.shape[1]))
                progress.end_slices(first - int(data.given is not None))
            for s in range(first, S):
                tic = time.perf_counter()
                progress.start_slice(f"slice {s}")
                x = self._sample_slice(data, s, window, max(count - 1, 0), n_samples, seed, grid, progress)
                out[:, s] = x
                push(net_image(x))
                self._sync()
                self.slice_seconds.append(time.perf_counter() - tic)
                progress.end_slices()
                if on_slices is not None:
                    on_slices(out, s + 1)
        return out

    def _sample_slice(self, data, s, window, position, n, seed, grid, progress) -> torch.Tensor:
        from mrirecon.physics.operators import SenseOp

        op = SenseOp(data.maps[s], data.mask_of(s))
        dc = DataConsistency(op, data.kspace[s], grid, self.dc_steps, self.dc_step_size, self.dc)
        gen = self._generator(seed, s)
        shape = (n, 2) + grid
        x = torch.randn(shape, generator=gen, device=self.device)
        window = window.contiguous()

        def eps_fn(xt: torch.Tensor, t: int) -> torch.Tensor:
            self.network_calls += 1
            self.network_images += n
            out = self.prior.predict_next(window, xt[:, None], self._t(t, n), position, attention=self.attention)
            return out[:, 0]

        def on_step(i: int, x0: torch.Tensor) -> None:
            if self.callback is not None:
                self.callback(s, i, dc.crop(channels_to_complex(x0)))

        x0 = self._chain(
            x, eps_fn, dc, lambda: torch.randn(shape, generator=gen, device=self.device), on_step, progress
        )
        return dc.crop(x0)


class UNetSampler(_DiffusionSampler):
    """Posterior sampler with a plain UNet prior: slices are independent and batched together.

    Parameters are those of :class:`AIDSampler` (without ``attention``) plus ``batch_size``:
    the most images (slices x samples) per network call; None puts the whole volume in one
    batch. Slice ``s`` uses the same noise whatever the batching.
    """

    kind = "unet"

    def __init__(self, prior, *, batch_size: int | None = None, **kwargs):
        super().__init__(prior, **kwargs)
        require(
            batch_size is None or (isinstance(batch_size, (int, np.integer)) and batch_size >= 1),
            f"batch_size must be None or an integer >= 1, got {batch_size!r}",
        )
        self.batch_size = batch_size

    def sample_volume(
        self,
        data: VolumeData,
        n_samples: int = 1,
        seed: int = 0,
        done: torch.Tensor | None = None,
        on_slices: SliceHook | None = None,
    ) -> torch.Tensor:
        """Sample every slice (slices independent; slice 0 copied when ``data.given``).

        ``done`` and ``on_slices`` as in :meth:`AIDSampler.sample_volume` (``on_slices`` runs
        after each batch of slices).

        Returns
        -------
        Tensor (n_samples, S, H, W) complex64, prior intensity scale.
        """
        from mrirecon.physics.operators import SenseOp

        S = data.num_slices
        H, W = data.image_shape
        grid = self.grid((H, W))
        dev = self.device
        out = torch.zeros((n_samples, S, H, W), dtype=torch.complex64, device=dev)
        first = 0
        if data.given is not None:
            out[:, 0] = data.given.to(dev)
            first = 1
        if done is not None:
            check_done(done, n_samples, S, (H, W))
            out[:, first : done.shape[1]] = done[:, first:].to(dev)
            first = max(first, int(done.shape[1]))
        per_call = S if self.batch_size is None else max(1, self.batch_size // n_samples)
        chunks = [range(a, min(a + per_call, S)) for a in range(first, S, per_call)]
        with _Progress(self.progress, S, len(self.schedule), "UNet") as progress:
            progress.end_slices(first)
            for idx in chunks:
                tic = time.perf_counter()
                sl = slice(idx.start, idx.stop)
                k = len(idx)
                progress.start_slice(f"slices {idx.start}-{idx.stop - 1}" if k > 1 else f"slice {idx.start}")
                mask = data.mask_of(sl)
                op = SenseOp(data.maps[sl, None], mask[:, None, None] if mask.ndim == 3 else mask)
                dc = DataConsistency(op, data.kspace[sl, None], grid, self.dc_steps, self.dc_step_size, self.dc)
                gens = [self._generator(seed, s) for s in idx]
                shape = (n_samples, 2) + grid

                def noise() -> torch.Tensor:
                    return torch.stack([torch.randn(shape, generator=g, device=dev) for g in gens]).flatten(0, 1)

                def eps_fn(xt: torch.Tensor, t: int) -> torch.Tensor:
                    self.network_calls += 1
                    self.network_images += xt.shape[0]
                    return self.prior.predict(xt, self._t(t, xt.shape[0]))

                def on_step(i: int, x0: torch.Tensor, idx=idx, dc=dc) -> None:
                    if self.callback is not None:
                        x0c = dc.crop(channels_to_complex(x0.unflatten(0, (len(idx), n_samples))))
                        for j, s in enumerate(idx):
                            self.callback(s, i, x0c[j])

                x0 = self._chain(noise(), eps_fn, _Unflatten(dc, k, n_samples), noise, on_step, progress)
                out[:, sl] = dc.crop(x0.unflatten(0, (k, n_samples))).transpose(0, 1)
                self._sync()
                self.slice_seconds.extend([(time.perf_counter() - tic) / k] * k)
                progress.end_slices(k)
                if on_slices is not None:
                    on_slices(out, idx.stop)
        return out


class _Unflatten:
    """Apply a (slices, samples, H, W) data-consistency step to a flat (slices·samples) batch."""

    def __init__(self, dc: DataConsistency, k: int, n: int):
        self.dc, self.k, self.n = dc, k, n

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.dc(x.unflatten(0, (self.k, self.n))).flatten(0, 1)


def make_sampler(prior, **kwargs) -> AIDSampler | UNetSampler:
    """The sampler matching ``prior.kind`` (``attention`` is dropped for UNet priors,
    ``batch_size`` for AID priors, where slices are sequential)."""
    kind = getattr(prior, "kind", None)
    if kind == "aid":
        kwargs.pop("batch_size", None)
        return AIDSampler(prior, **kwargs)
    if kind == "unet":
        kwargs.pop("attention", None)
        return UNetSampler(prior, **kwargs)
    raise MrireconError(f"prior.kind must be 'aid' or 'unet', got {kind!r}")
