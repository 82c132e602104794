"""Posterior sampling of a multi-slice scan with a diffusion prior and data consistency.

Each slice's posterior ``p(x_s | y_s, x_{<s})`` is sampled by a reverse diffusion chain whose
every step predicts the clean image with the prior's denoiser ``ε̂(x_t, t, context)``, takes
K conjugate-gradient (or, as the reference, gradient) iterations on ``½‖A_s x - y_s‖²``
(``A_s = M F S_s``, slice ``s`` of the multi-coil operator) and re-noises
(:mod:`mrirecon.recon.steps`). One :class:`PosteriorSampler` serves both kinds of prior:

* **sequential** priors (AID Causal-UNet): slices are reconstructed **one after the other**;
  slice ``s`` is conditioned on a :class:`~mrirecon.prior.context.SliceWindow` of the
  ``seq_length`` previously reconstructed slices, which slides once full
  (the reference's ``scripts/fastmri_recon.py``, ``main_recon``). ``n_samples`` posterior samples of a slice run as one batch
  and every sample keeps its own window: sample ``j`` of the volume is one autoregressive
  chain, a joint posterior sample of all slices.
* **single-image** priors (plain UNet, the reference's "Guide"): slices are independent, so
  all slices and samples run in one batch (``batch_size`` caps it).

The **pipelined** schedule (``slice_schedule="pipelined"``, opt-in) runs a sequential prior's
slices as a wavefront: slice s+1 starts ``lag`` steps after slice s and is conditioned on slice
s's current data-consistent estimate until s is done; the slices in flight share one network
call per step, so S slices of T steps take about T + (S−1)·lag calls instead of S·T. Each slice
keeps its own random stream, so ``lag >= steps`` reproduces the sequential sampler exactly.

Window semantics (``attention``), for the window position ``p`` that holds slice ``s-1``:
``"reference"``: the conditioning feature comes from window frame ``p`` alone, the official
sampling semantics (the reference's ``scripts/fastmri_recon.py``); ``"full"``: the causal prefix ``0..p``, what the
network computes in training.

The first slice is *given* (its fully sampled image enters the window and is returned as is),
reconstructed by the caller with another prior and passed in ``done`` (``first_slice="twin"``
of :func:`mrirecon.recon.reconstruct`), or reconstructed here with a **cold start**: its
window holds one zero frame (the AID prior has no unconditional mode).

Networks are fully convolutional: images whose size is not a multiple of the network's
downsampling factor live on a zero-padded network grid; the operator becomes
``A ∘ Crop(grid -> image)`` (:mod:`mrirecon.physics.linop`), so the padded border is left to
the prior and cut off at the end.

Randomness: slice ``s`` draws from its own ``torch.Generator`` seeded from ``(seed, s)``
(:func:`slice_seed`): first ``x_T`` ``(n, C, H, W)``, then one tensor of that shape per step
whose update rule needs fresh noise. Results therefore do not depend on how slices are
batched, and on CPU a seed reproduces a result bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from mrirecon.errors import check_choice, nonnegative_int, positive_int, positive_number, require
from mrirecon.physics.fft import channels_to_complex, complex_to_channels
from mrirecon.physics.linop import Crop, LinearOperator
from mrirecon.physics.operators import SenseOp
from mrirecon.prior.api import ATTENTION_MODES, PRECISIONS
from mrirecon.prior.context import SliceWindow
from mrirecon.progress import StepProgress
from mrirecon.recon.settings import DEFAULTS
from mrirecon.recon.steps import DC_METHODS, StepSchedule, UpdateRule, data_consistency, make_update, predict_x0

__all__ = ["SLICE_SCHEDULES", "DataConsistency", "PosteriorSampler", "default_lag", "slice_seed"]

#: How the slices of a sequential prior are scheduled (:class:`PosteriorSampler`).
SLICE_SCHEDULES = ("sequential", "pipelined")


def default_lag(steps: int) -> int:
    """Steps between consecutive slices' starts in the pipelined schedule: a quarter of the chain.

    By then the previous slice's estimate has left the noisiest quarter of its chain (measured
    in ``benchmarks/bench_recon.py --pipelined``).
    """
    return max(1, steps // 4)

#: ``callback(slice_idx, step_idx, x0_hat)`` with ``x0_hat`` (n_samples, H, W) complex.
Callback = Callable[[int, int, torch.Tensor], None]
#: ``on_slices(out, stop)``: ``out`` (n_samples, S, H, W) whose slices ``0..stop-1`` are final.
SliceHook = Callable[[torch.Tensor, int], None]


def slice_seed(seed: int, slice_idx: int) -> int:
    """Seed of slice ``slice_idx``'s generator: well mixed, independent streams per slice."""
    return int(np.random.SeedSequence([int(seed), int(slice_idx)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def slice_generator(seed: int, slice_idx: int, device) -> torch.Generator:
    """The generator of slice (or frame) ``slice_idx`` (:func:`slice_seed`)."""
    g = torch.Generator(device=device)
    g.manual_seed(slice_seed(seed, slice_idx))
    return g


def grid_for(shape: tuple[int, int], multiple: int) -> tuple[int, int]:
    """Smallest network grid >= ``shape`` whose sides are multiples of the network's downsampling."""
    return (-(-shape[0] // multiple) * multiple, -(-shape[1] // multiple) * multiple)


class DataConsistency:
    """K iterations on ``½‖A x - y‖²`` for images on the network grid (``A`` includes the crop).

    Parameters
    ----------
    op : LinearOperator
        ``x (..., H', W') -> k-space``, e.g. ``SenseOp @ Crop``.
    y : Tensor
        Measurements (prior intensity scale), broadcastable to ``op``'s outputs.
    n_steps, step_size : int, float
        K and η.
    method : {"gradient", "cg"}
        See :func:`mrirecon.recon.steps.data_consistency`.
    """

    def __init__(self, op: LinearOperator, y: torch.Tensor, n_steps: int, step_size: float, method: str = "cg"):
        self.op = op
        self.rhs = op.adjoint(y)
        self.n_steps, self.step_size, self.method = int(n_steps), float(step_size), method

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return data_consistency(x, self.op.normal, self.rhs, self.n_steps, self.step_size, self.method)


class PosteriorSampler:
    """Posterior sampler for any diffusion prior (module docstring).

    Parameters
    ----------
    prior : Prior
        Complex (2-channel) prior; ``prior.sequential`` picks slice-by-slice sampling.
    steps : int
        Network evaluations per slice (timesteps ``floor(i·1000/steps)``, descending).
    update : {"reference", "ddim"} or UpdateRule
    eta : float
        DDIM η ∈ [0, 1] (``update="ddim"`` only).
    temperature : float
        τ on the injected noise.
    dc_steps, dc_step_size : int, float
        K data-consistency iterations per diffusion step; η of gradient steps.
    dc : {"cg", "gradient"}
        Conjugate gradients (default) or the reference's gradient steps.
    attention : {"reference", "full"}
        Window semantics of sequential priors.
    batch_size : int, optional
        Single-image priors: the most images (slices × samples) per network call (None: all).
    precision : {"fp32", "bf16", "tf32"}, optional
        Network precision (default: the prior's own); the update maths stays fp32.
    timesteps : sequence of int, optional
        Explicit descending timesteps instead of ``steps``.
    spacing : {"skip", "even", "quad"}
        How ``steps`` timesteps are spread over the schedule (:meth:`DiffusionSchedule.respace`;
        ``skip`` is the reference's).
    slice_schedule : {"sequential", "pipelined"}
        Sequential priors: finish slice s before starting s+1, or advance a wavefront in which
        slice s+1 starts ``lag`` steps after slice s, conditioned on the current data-consistent
        estimates of the slices still in flight, all of which share one network call per step
        (:meth:`_sample_pipelined`). Single-image priors batch all slices either way.
    lag : int, optional
        Steps between the starts of consecutive slices in the pipelined schedule (default
        :func:`default_lag`); ``lag >= steps`` is the sequential sampler, bit for bit on the CPU.
    progress : bool
        A rich progress bar over every step of the volume (stderr).
    callback : callable, optional
        ``callback(slice_idx, step_idx, x0_hat)``, x0_hat (n, H, W) complex after data
        consistency, prior intensity scale, on the sampling device.
    """

    def __init__(
        self,
        prior,
        *,
        steps: int = DEFAULTS.steps,
        update: str | UpdateRule = DEFAULTS.update,
        eta: float = DEFAULTS.eta,
        temperature: float = DEFAULTS.temperature,
        dc_steps: int = DEFAULTS.dc_steps,
        dc_step_size: float = DEFAULTS.dc_step_size,
        dc: str = DEFAULTS.dc,
        attention: str = DEFAULTS.attention,
        batch_size: int | None = None,
        precision: str | None = None,
        timesteps=None,
        spacing: str = DEFAULTS.spacing,
        slice_schedule: str = DEFAULTS.schedule,
        lag: int | None = None,
        progress: bool = False,
        callback: Callback | None = None,
    ):
        require(
            hasattr(prior, "epsilon") and hasattr(prior, "schedule"),
            f"prior must be a loaded prior (mrirecon.prior.load_prior), got {type(prior).__name__}",
        )
        require(
            prior.in_channels == 2,
            f"prior has in_channels={prior.in_channels}: k-space reconstruction needs a complex "
            "(2-channel real/imag) prior; magnitude priors cannot model the phase the data carry",
        )
        self.dc_steps = nonnegative_int(dc_steps, "dc_steps")
        self.dc_step_size = positive_number(dc_step_size, "dc_step_size")
        check_choice(dc, DC_METHODS, "dc")
        check_choice(attention, ATTENTION_MODES, "attention")
        if precision is not None:
            check_choice(precision, PRECISIONS, "precision")
        if batch_size is not None:
            require(
                isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool) and batch_size >= 1,
                f"batch_size must be None or an integer >= 1, got {batch_size!r}",
            )
        check_choice(slice_schedule, SLICE_SCHEDULES, "slice_schedule")
        if lag is not None:
            positive_int(lag, "lag")
        self.prior = prior if precision is None else prior.at_precision(precision)
        self.sequential = bool(prior.sequential)
        self.device = torch.device(prior.device)
        table = np.asarray(prior.schedule.alphas_cumprod, dtype=np.float64)
        self.schedule = StepSchedule.from_alphas_cumprod(table, prior.schedule.respace(steps, spacing) if timesteps is None else timesteps)
        self.rule = update if isinstance(update, UpdateRule) else make_update(update, eta, temperature)
        self.slice_schedule = slice_schedule if prior.sequential else "sequential"  # UNet: all slices batched anyway
        # a lag beyond the chain's length only leaves ticks with no slice in flight: the sequential sampler
        lag = default_lag(len(self.schedule)) if lag is None else min(int(lag), len(self.schedule))
        self.lag = lag if self.slice_schedule == "pipelined" else None
        self.dc, self.attention, self.batch_size = dc, attention, batch_size
        self.precision = self.prior.precision
        self.progress, self.callback = bool(progress), callback
        self.multiple = int(prior.config.downsampling)
        self.seq_length = int(prior.seq_length) if self.sequential else None
        self.network_calls = 0
        self.network_images = 0
        self.slice_seconds: list[float] = []

    @classmethod
    def from_settings(cls, prior, settings, **kwargs) -> "PosteriorSampler":
        """The sampler a :class:`~mrirecon.recon.settings.ReconSettings` describes (``kwargs``: progress, callback, ...)."""
        return cls(
            prior, steps=settings.steps, update=settings.update, eta=settings.eta, temperature=settings.temperature,
            dc_steps=settings.dc_steps, dc_step_size=settings.dc_step_size, dc=settings.dc, attention=settings.attention,
            batch_size=settings.batch_size, precision=settings.precision, spacing=settings.spacing, slice_schedule=settings.schedule,
            lag=settings.lag, **kwargs,
        )  # fmt: skip

    # -- public ---------------------------------------------------------------------------------

    def grid(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Network grid of images of ``shape`` (:func:`grid_for`)."""
        return grid_for(shape, self.multiple)

    @property
    def label(self) -> str:
        return f"AID ({self.attention})" if self.sequential else "UNet"

    def sample_volume(
        self,
        op: SenseOp,
        y: torch.Tensor,
        n_samples: int = 1,
        seed: int = 0,
        *,
        given: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        done: torch.Tensor | None = None,
        on_slices: SliceHook | None = None,
        support: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample every slice of a scan.

        Parameters
        ----------
        op : SenseOp
            The multi-coil operator of the volume, maps ``(S, C, H, W)``, mask ``(S or 1, 1, H, W)``.
        y : Tensor (S, C, H, W) complex
            Measured k-space in the prior's intensity scale.
        n_samples : int
            Posterior samples per slice (one batch; with a sequential prior each keeps its window).
        seed : int
        given : Tensor (H, W) complex, optional
            Fully sampled image of slice 0 (same scale): returned as is and put in the window.
        context : Tensor (T0, H, W) complex, optional
            Images of slices that precede slice 0 (sequential priors): they enter the window first.
        done : Tensor (n_samples, D, H, W) complex, optional
            Slices ``0..D-1`` already reconstructed (an interrupted run with the same settings,
            or a first slice from another prior): they fill the window and are not sampled.
        on_slices : callable, optional
            ``on_slices(out, stop)`` after each finished slice (sequential) or batch of slices.
        support : Tensor (S, H, W) bool, optional
            Where the coil maps are supported: the data-consistent estimate is set to zero
            outside it at every step (the data cannot constrain it there).

        Returns
        -------
        Tensor (n_samples, S, H, W) complex64, prior intensity scale.
        """
        require(isinstance(op, SenseOp) and op.maps.ndim == 4, "op must be a SenseOp with maps (slices, coils, H, W)")
        S = int(op.maps.shape[0])
        H, W = op.image_shape
        require(tuple(y.shape) == (S, op.num_coils, H, W), f"y must be {(S, op.num_coils, H, W)}, got {tuple(y.shape)}")
        grid = self.grid((H, W))
        dev = self.device
        out = torch.zeros((n_samples, S, H, W), dtype=torch.complex64, device=dev)
        window = SliceWindow(n_samples, self.seq_length, (2,) + grid, dev) if self.sequential else None

        def to_net(img: torch.Tensor) -> torch.Tensor:  # (…, H, W) complex -> (…, 2, H', W')
            return complex_to_channels(Crop(grid, (H, W)).adjoint(img) if grid != (H, W) else img)

        first = self._start(out, window, to_net, given, context, done)
        if self.lag is not None:
            history = [] if window is None else [window.frames[:, k] for k in range(window.count)]
            self._sample_pipelined(op, y, out, history, first, seed, grid, to_net, support, on_slices)
            return out

        per_call = 1 if self.sequential else (S if self.batch_size is None else max(1, self.batch_size // n_samples))
        chunks = [range(a, min(a + per_call, S)) for a in range(first, S, per_call)]
        with StepProgress(self.progress, len(chunks) * len(self.schedule), self.label) as bar:
            for idx in chunks:
                tic = time.perf_counter()
                name = f"slice {idx.start + 1}/{S}" if len(idx) == 1 else f"slices {idx.start + 1}-{idx.stop}/{S}"
                bar.describe(name)
                keep = None
                if support is not None:
                    keep = support[idx.start : idx.stop, None].to(dev)
                    keep = Crop(grid, (H, W)).adjoint(keep.to(torch.float32)) if grid != (H, W) else keep.to(torch.float32)
                x = self._sample_chunk(op, y, idx, window, n_samples, seed, grid, (H, W), bar, keep)
                out[:, idx.start : idx.stop] = x.transpose(0, 1)
                if window is not None:
                    window.push(to_net(x[0]))
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                self.slice_seconds.extend([(time.perf_counter() - tic) / len(idx)] * len(idx))
                if on_slices is not None:
                    on_slices(out, idx.stop)
        return out

    # -- internals ------------------------------------------------------------------------------

    def _start(self, out, window, to_net, given, context, done) -> int:
        """Fill ``out`` with the given / finished slices and the window with what precedes; first slice to sample."""
        n, S, H, W = out.shape
        if context is not None:
            require(self.sequential, "context frames condition sequential (AID) priors only")
            require(
                context.ndim == 3 and tuple(context.shape[-2:]) == (H, W),
                f"context must be (frames, {H}, {W}) complex images, got shape {tuple(context.shape)}",
            )
            for frame in context.to(out.device):
                window.push(to_net(frame))
        first = 0
        if given is not None:
            out[:, 0] = given.to(out.device)
            first = 1
        if done is not None:
            require(
                done.ndim == 4 and done.shape[0] == n and done.shape[1] <= S and tuple(done.shape[2:]) == (H, W),
                f"done must be ({n}, D <= {S}, {H}, {W}) finished slices, got {tuple(done.shape)}",
            )
            out[:, first : done.shape[1]] = done[:, first:].to(out.device)
            first = max(first, int(done.shape[1]))
        if window is not None:
            for s in range(first):
                window.push(to_net(out[:, s]))
        return first

    def _sample_chunk(self, op, y, idx, window, n, seed, grid, shape, bar, keep=None) -> torch.Tensor:
        """Slices ``idx`` (k of them) -> (k, n, H, W) complex; ``keep`` (k, 1, H', W') the support, or None."""
        k = len(idx)
        sl = slice(idx.start, idx.stop)
        a = op.select(sl, sample_axis=True)
        if grid != shape:
            a = a @ Crop(grid, shape)
        dc = DataConsistency(a, y[sl, None], self.dc_steps, self.dc_step_size, self.dc)
        gens = [slice_generator(seed, s, self.device) for s in idx]
        draw = (n, 2) + grid

        def noise() -> torch.Tensor:
            return torch.cat([torch.randn(draw, generator=g, device=self.device) for g in gens])

        crop = Crop(grid, shape) if grid != shape else None
        x = noise()
        for i in range(len(self.schedule)):
            abar, abar_next = float(self.schedule.abar[i]), float(self.schedule.abar_next[i])
            t = torch.full((k * n,), int(self.schedule.timesteps[i]), dtype=torch.long, device=self.device)
            eps = self.prior.epsilon(x, t, window, attention=self.attention).float()
            self.network_calls += 1
            self.network_images += k * n
            z = dc(channels_to_complex(predict_x0(x, eps, abar)).unflatten(0, (k, n)))
            if keep is not None:
                z = z * keep
            if self.callback is not None:
                zc = z if crop is None else crop(z)
                for j, s in enumerate(idx):
                    self.callback(s, i, zc[j])
            x0 = complex_to_channels(z.flatten(0, 1))
            x = self.rule(x, eps, x0, abar, abar_next, noise() if self.rule.needs_noise(abar, abar_next) else None)
            bar.advance()
        z = channels_to_complex(x).unflatten(0, (k, n))
        return z if crop is None else crop(z)


    def _sample_pipelined(self, op, y, out, history, first, seed, grid, to_net, support, on_slices) -> None:
        """The wavefront schedule: slice ``s`` runs step ``τ - (s - first)·lag`` at tick ``τ``.

        Every tick batches the slices in flight into one network call (one per distinct window
        fill while the first ``seq_length`` slices start), then one batched data consistency.
        A slice's window holds, for each of the ``seq_length`` slices before it, the final image
        if that slice is done, else its latest data-consistent estimate x̂0 (from the previous
        tick, a later and less noisy step of its own chain). ``history``: the frames
        (n, 2, H', W') that precede slice ``first`` (context, given and resumed slices), oldest first.
        """
        n, S, H, W = out.shape
        shape, T, L = (H, W), len(self.schedule), self.seq_length
        crop = Crop(grid, shape) if grid != shape else None
        frames = {first - len(history) + k: f for k, f in enumerate(history)}  # slice -> network-layout frame
        lowest = first - len(history)
        draw, dev = (n, 2) + grid, self.device
        state: dict[int, dict] = {}
        keep = None
        if support is not None:  # (S, H', W'): the estimate is kept at zero where the maps vanish
            keep = support.to(dev, torch.float32)
            keep = crop.adjoint(keep) if crop is not None else keep
        tic = time.perf_counter()
        ticks = T + (S - 1 - first) * self.lag if S > first else 0
        whole = op.select(slice(first, S), sample_axis=True)
        rhs = (whole @ crop if crop is not None else whole).adjoint(y[first:S, None])  # Aᴴy of every slice, once
        with StepProgress(self.progress, (S - first) * T, f"{self.label}, pipelined (lag {self.lag})") as bar:
            for tau in range(ticks):  # no device synchronisation per tick: the host queues ahead
                s = first + tau // self.lag
                if tau % self.lag == 0 and s < S:  # this slice's turn to start
                    g = slice_generator(seed, s, dev)
                    state[s] = dict(gen=g, x=torch.randn(draw, generator=g, device=dev))
                active = sorted(state)
                steps = {s: tau - (s - first) * self.lag for s in active}
                bar.describe(f"slices {active[0] + 1}-{active[-1] + 1}/{S}" if len(active) > 1 else f"slice {active[0] + 1}/{S}")
                eps = self._pipelined_epsilon(active, state, steps, frames, lowest, L)
                x0 = torch.stack([channels_to_complex(predict_x0(state[s]["x"], eps[s], float(self.schedule.abar[steps[s]])))
                                  for s in active])  # fmt: skip  (k, n, H', W')
                a = op.select(slice(active[0], active[-1] + 1), sample_axis=True)
                a = a @ crop if crop is not None else a
                b = rhs[active[0] - first : active[-1] + 1 - first]
                z = data_consistency(x0, a.normal, b, self.dc_steps, self.dc_step_size, self.dc)
                if keep is not None:
                    z = z * keep[active[0] : active[-1] + 1, None]
                zc = z if crop is None else crop(z)
                for j, s in enumerate(active):
                    i, st = steps[s], state[s]
                    if self.callback is not None:
                        self.callback(s, i, zc[j])
                    abar, abar_next = float(self.schedule.abar[i]), float(self.schedule.abar_next[i])
                    noise = torch.randn(draw, generator=st["gen"], device=dev) if self.rule.needs_noise(abar, abar_next) else None
                    st["x"] = self.rule(st["x"], eps[s], complex_to_channels(z[j]), abar, abar_next, noise)
                    frames[s] = to_net(zc[j])  # the estimate the next slices condition on
                    if i == T - 1:  # done (slices finish in order): the final image replaces the estimate
                        final = channels_to_complex(st["x"])
                        out[:, s] = final if crop is None else crop(final)
                        frames[s] = to_net(out[:, s])
                        del state[s]
                        if on_slices is not None:
                            on_slices(out, s + 1)
                    bar.advance()
                self.network_images += len(active) * n
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        per_slice = (time.perf_counter() - tic) / max(S - first, 1)
        self.slice_seconds.extend([per_slice] * (S - first))  # ticks overlap slices: the mean is what is known

    def _pipelined_epsilon(self, active, state, steps, frames, lowest, L) -> dict:
        """ε̂ of every active slice: one network call per group of slices whose windows are filled alike.

        With ``attention="reference"`` the network reads only the window's latest frame (a zero
        frame for a cold start), so every slice joins one call; with ``"full"`` the slices whose
        windows hold different numbers of frames (the first ``seq_length``) are called apart.
        """
        groups: dict[int, list[int]] = {}
        for s in active:
            groups.setdefault(1 if self.attention == "reference" else min(L, s - lowest), []).append(s)
        eps = {}
        for count, members in groups.items():
            x = torch.cat([state[s]["x"] for s in members])
            n = state[members[0]]["x"].shape[0]
            t = torch.cat([torch.full((n,), int(self.schedule.timesteps[steps[s]]), dtype=torch.long, device=self.device)
                           for s in members])  # fmt: skip
            zero = torch.zeros_like(state[members[0]]["x"])
            if count == 0:  # cold start: one zero frame
                window = SliceWindow(x.shape[0], L, tuple(x.shape[1:]), self.device)
            else:
                window = SliceWindow.of_histories([[frames.get(p, zero) for p in range(s - count, s)] for s in members], L)
            out = self.prior.epsilon(x, t, window, attention=self.attention).float()
            self.network_calls += 1
            for j, s in enumerate(members):
                eps[s] = out[j * n : (j + 1) * n]
        return eps
