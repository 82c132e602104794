"""The slice-by-slice posterior samplers (mrirecon.recon.sampler) with the real tiny fixture priors.

The AID/UNet fixtures (tests/fixtures/aid/{causal_tiny,unet_tiny}) are the reference's
architectures at 32 px with random weights; the scans are simulated (Shepp-Logan phantom,
birdcage coils), so every piece here is the real component.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mrirecon.data.simulate import phantom_volume, simulate_scan
from mrirecon.errors import MrireconError
from mrirecon.physics.fft import complex_to_channels, fft2c, ifft2c
from mrirecon.physics.operators import SenseOp
from mrirecon.recon.sampler import PosteriorSampler, slice_seed


@dataclass
class VolumeData:
    """A scan as the tests build it: masked k-space, maps, mask (1 or S, H, W), optional given slice 0."""

    kspace: torch.Tensor
    maps: torch.Tensor
    mask: torch.Tensor
    given: torch.Tensor | None = None


def vd(data: VolumeData):
    """The sampler's (operator, measurements) of a test scan."""
    return SenseOp(data.maps, data.mask[:, None]), data.kspace



def line_mask(H: int, W: int, R: int = 3, acs: int = 4) -> np.ndarray:
    m = np.zeros((H, W), np.float32)
    m[:, ::R] = 1
    m[:, W // 2 - acs // 2 : W // 2 + acs // 2] = 1
    return m


def volume(slices=3, H=32, W=32, R=3, snr_db=None, seed=0):
    """VolumeData of a simulated scan scaled to max|x| ~ 1, plus the numpy pieces."""
    sim = simulate_scan(phantom_volume(slices, H, W, seed=seed), coils=4, snr_db=snr_db, oversample=1, seed=seed)
    mask = line_mask(H, W, R)
    y = sim.kspace * mask
    data = VolumeData(
        kspace=torch.from_numpy(y),
        maps=torch.from_numpy(sim.maps),
        mask=torch.from_numpy(mask)[None],
    )
    return data, sim, mask


def residual(x: torch.Tensor, data: VolumeData) -> float:
    """Relative data misfit ‖M F S x - y‖ / ‖y‖ of a volume x (S, H, W)."""
    op = SenseOp(data.maps, data.mask[:, None])
    return float(torch.linalg.norm(op.forward(x) - data.kspace) / torch.linalg.norm(data.kspace))


# --------------------------------------------------------------------------------------------


def test_reference_rule_reproduces_a_hand_computed_two_step_chain(aid):
    """Slice 1 of a 2-slice volume (slice 0 given), 2 steps (t = 500, 0), K = 2 DC steps.

    Everything except the network call is recomputed here in float64 numpy from the
    formulas of the reference's ``ddim_diffusion``, with the sampler's documented noise draws.
    """
    data, sim, mask = volume(slices=2, snr_db=30)
    given = torch.from_numpy(sim.image[0]) / np.abs(sim.image).max()
    data.given = given
    data.kspace = data.kspace / float(np.abs(sim.image).max())
    seed, K, tau = 7, 2, 0.8
    sampler = PosteriorSampler(aid, steps=2, dc="gradient", dc_steps=K, dc_step_size=1.0, temperature=tau, update="reference")
    assert sampler.schedule.timesteps.tolist() == [500, 0]
    out = sampler.sample_volume(*vd(data), given=data.given, n_samples=1, seed=seed)

    ac = np.asarray(aid.schedule.alphas_cumprod, np.float64)
    maps = sim.maps[1].astype(np.complex128)
    y = data.kspace[1].numpy().astype(np.complex128)

    def normal(x):
        return (np.conj(maps) * ifft2c(mask * fft2c(maps * x))).sum(0)

    rhs = (np.conj(maps) * ifft2c(mask * y)).sum(0)
    g = torch.Generator().manual_seed(slice_seed(seed, 1))
    x = torch.randn((1, 2, 32, 32), generator=g).numpy().astype(np.float64)
    window = torch.zeros((1, 4, 2, 32, 32))
    window[:, 0] = complex_to_channels(given)
    for t, a, an in ((500, ac[500], ac[0]), (0, ac[0], 1.0)):
        eps = aid.predict_next(window, torch.from_numpy(x).float()[:, None], torch.tensor([t]), 0, attention="reference")
        eps = eps[:, 0, :2].double().numpy()
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        z = x0[0, 0] + 1j * x0[0, 1]
        for _ in range(K):
            z = z - (normal(z) - rhs)
        x0 = np.stack([z.real, z.imag])[None]
        if an < 1.0:
            n = torch.randn((1, 2, 32, 32), generator=g).numpy().astype(np.float64)
            x = math.sqrt(an) * x0 + tau * math.sqrt(1 - an) * n
        else:
            x = x0
    expected = x[0, 0] + 1j * x[0, 1]
    torch.testing.assert_close(out[0, 0], given)  # the given slice is returned as is
    np.testing.assert_allclose(out[0, 1].numpy(), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def projection_volume(slices=2, H=32, W=32) -> VolumeData:
    """One coil with a unit-modulus (phase-only) map: AᴴA = Sᴴ F⁻¹ M F S is an orthogonal
    projection, so one unit gradient step fits the data exactly."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    maps = np.exp(1j * (0.8 * xx - 0.5 * yy**2))[None, None].astype(np.complex64)
    sim = simulate_scan(phantom_volume(slices, H, W, seed=1), coil_maps=maps[0], snr_db=30, oversample=1, seed=1)
    mask = line_mask(H, W, R=4)
    return VolumeData(
        kspace=torch.from_numpy(sim.kspace * mask),
        maps=torch.from_numpy(np.repeat(maps, slices, axis=0)),
        mask=torch.from_numpy(mask)[None],
    )


@pytest.mark.parametrize("update", ["reference", "ddim"])
def test_data_consistency_is_exact_when_the_normal_operator_is_a_projection(aid, update):
    """Whatever the (random-weight) prior proposes, the final step fits the data."""
    data = projection_volume()
    out = PosteriorSampler(aid, steps=2, dc_steps=1, update=update).sample_volume(*vd(data), given=data.given, seed=0)[0]
    assert residual(out, data) < 1e-5


def test_more_data_consistency_steps_fit_the_data_better(aid):
    data, _, _ = volume(slices=1, snr_db=None)
    fits = [residual(PosteriorSampler(aid, steps=2, dc_steps=k).sample_volume(*vd(data), given=data.given, seed=0)[0], data) for k in (0, 2, 8)]
    assert fits[0] > fits[1] > fits[2]
    assert fits[2] < 0.5 * fits[0]


def test_cg_data_consistency_fits_the_coils_better_than_gradient_steps(aid):
    data, _, _ = volume(slices=1, snr_db=None)
    fit = {dc: residual(PosteriorSampler(aid, steps=2, dc_steps=3, dc=dc).sample_volume(*vd(data), given=data.given, seed=0)[0], data)
           for dc in ("gradient", "cg")}  # fmt: skip
    assert fit["cg"] < 0.5 * fit["gradient"], fit


def test_seeds_reproduce_bit_for_bit(aid):
    data, _, _ = volume(slices=2)
    a = PosteriorSampler(aid, steps=3).sample_volume(*vd(data), given=data.given, n_samples=2, seed=3)
    b = PosteriorSampler(aid, steps=3).sample_volume(*vd(data), given=data.given, n_samples=2, seed=3)
    c = PosteriorSampler(aid, steps=3).sample_volume(*vd(data), given=data.given, n_samples=2, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # the two posterior samples differ


def test_reference_attention_depends_only_on_the_previous_slice(aid):
    """Two contexts that differ only before the last frame: same result with attention
    "reference" (the conditioning feature reads one frame), different with "full"."""
    data, sim, _ = volume(slices=1)
    g = torch.Generator().manual_seed(0)
    v = torch.from_numpy(sim.image[0])
    u1 = torch.randn((32, 32), generator=g, dtype=torch.complex64)
    u2 = torch.randn((32, 32), generator=g, dtype=torch.complex64)
    results = {}
    for mode in ("reference", "full"):
        s = PosteriorSampler(aid, steps=3, attention=mode)
        results[mode] = [s.sample_volume(*vd(data), given=data.given, seed=0, context=torch.stack([u, v])) for u in (u1, u2)]
    assert torch.equal(results["reference"][0], results["reference"][1])
    assert not torch.allclose(results["full"][0], results["full"][1], rtol=1e-4, atol=1e-6)


class Spy:
    """Delegates to a real prior and records the context the sampler passes to its denoiser."""

    def __init__(self, prior):
        self._prior = prior
        self.calls = []

    def __getattr__(self, name):
        return getattr(self._prior, name)

    def epsilon(self, noisy, t, context=None, attention="reference"):
        self.calls.append((context.frames.clone(), context.position, attention))
        return self._prior.epsilon(noisy, t, context, attention=attention)


def test_window_fills_then_slides_and_cold_start_reads_a_zero_frame(aid):
    T = aid.seq_length
    S = T + 2
    data, _, _ = volume(slices=S)
    spy = Spy(aid)
    out = PosteriorSampler(spy, steps=1, attention="full").sample_volume(*vd(data), given=data.given, seed=0)[0]
    assert len(spy.calls) == S  # one step per slice
    frames = complex_to_channels(out)
    for s, (window, position, attention) in enumerate(spy.calls):
        assert attention == "full"
        if s == 0:  # cold start: only zeros
            assert position == 0 and not window.any()
            continue
        assert position == min(s, T) - 1
        first = max(0, s - T)  # the window holds slices first..s-1, oldest first
        torch.testing.assert_close(window[0, : s - first], frames[first:s])
        assert not window[0, s - first :].any()


def test_given_first_slice_enters_the_window(aid):
    data, sim, _ = volume(slices=2)
    data.given = torch.from_numpy(sim.image[0])
    spy = Spy(aid)
    out = PosteriorSampler(spy, steps=2).sample_volume(*vd(data), given=data.given, seed=0)
    assert len(spy.calls) == 2  # slice 0 is not sampled
    torch.testing.assert_close(spy.calls[0][0][0, 0], complex_to_channels(data.given))
    assert torch.equal(out[0, 0], data.given)


def test_sizes_that_do_not_divide_are_padded_and_cropped_back(aid):
    data = projection_volume(slices=1, H=33, W=31)
    sampler = PosteriorSampler(aid, steps=2, dc_steps=1)
    assert sampler.grid((33, 31)) == (34, 32)
    out = sampler.sample_volume(*vd(data), given=data.given, seed=0)
    assert out.shape == (1, 1, 33, 31) and bool(torch.isfinite(out).all())
    assert residual(out[0], data) < 1e-5  # the padding is outside the operator's support


def test_unet_sampler_batches_slices_without_changing_them(unet):
    data, _, _ = volume(slices=3)
    whole = PosteriorSampler(unet, steps=3).sample_volume(*vd(data), given=data.given, n_samples=2, seed=1)
    one_by_one = PosteriorSampler(unet, steps=3, batch_size=2).sample_volume(*vd(data), given=data.given, n_samples=2, seed=1)
    assert whole.shape == (2, 3, 32, 32)
    # other batch sizes round the convolutions differently (seen up to 1.6e-5 on a 2-core x86
    # machine); the same draws give the same slices up to that rounding
    rounding = 1e-4 * float(whole.abs().max())
    torch.testing.assert_close(whole, one_by_one, rtol=1e-4, atol=rounding)
    # slices are independent: other slices' data do not change slice 2
    other = VolumeData(kspace=data.kspace.clone(), maps=data.maps, mask=data.mask)
    other.kspace[0] *= -3.0
    changed = PosteriorSampler(unet, steps=3).sample_volume(*vd(other), n_samples=2, seed=1)
    torch.testing.assert_close(changed[:, 1:], whole[:, 1:], rtol=1e-4, atol=rounding)
    assert not torch.allclose(changed[:, 0], whole[:, 0])
    sampler = PosteriorSampler(unet, steps=3)
    sampler.sample_volume(*vd(data), given=data.given, n_samples=2, seed=1)
    assert sampler.network_calls == 3 and sampler.network_images == 3 * 6  # all slices at once


def test_callback_sees_every_step_of_every_slice(aid):
    data, _, _ = volume(slices=2)
    seen = []
    PosteriorSampler(aid, steps=3, callback=lambda s, i, x: seen.append((s, i, tuple(x.shape)))).sample_volume(
        *vd(data), n_samples=2, seed=0
    )
    assert seen == [(s, i, (2, 32, 32)) for s in range(2) for i in range(3)]


def test_sampler_rejects_mismatched_priors_and_options(aid, unet):
    with pytest.raises(MrireconError, match="slice_schedule"):
        PosteriorSampler(aid, slice_schedule="wavefront")
    with pytest.raises(MrireconError, match="lag"):
        PosteriorSampler(aid, slice_schedule="pipelined", lag=0)
    with pytest.raises(MrireconError, match="attention"):
        PosteriorSampler(aid, attention="causal")
    with pytest.raises(MrireconError, match="dc_steps"):
        PosteriorSampler(aid, dc_steps=-1)
    with pytest.raises(MrireconError, match="precision"):
        PosteriorSampler(unet, precision="fp16")
    with pytest.raises(MrireconError, match="batch_size"):
        PosteriorSampler(unet, batch_size=0)


# --------------------------------------------------------------------------------------------
# the pipelined schedule


def test_pipelined_with_a_lag_of_the_whole_chain_is_the_sequential_sampler(aid):
    """lag >= steps: each slice starts when the one before is done, so the draws, windows and results are identical."""
    data, _, _ = volume(slices=3)
    seq = PosteriorSampler(aid, steps=3)
    ref = seq.sample_volume(*vd(data), n_samples=2, seed=5)
    pipe = PosteriorSampler(aid, steps=3, slice_schedule="pipelined", lag=7)  # beyond the chain: capped at 3
    assert pipe.lag == 3
    out = pipe.sample_volume(*vd(data), n_samples=2, seed=5)
    assert torch.equal(out, ref)
    assert pipe.network_calls == seq.network_calls == 9


def test_pipelined_batches_the_slices_in_flight_and_conditions_on_their_estimates(aid):
    T, S, lag = 4, 4, 1
    data, _, _ = volume(slices=S)
    spy = Spy(aid)
    stops, seen = [], []
    sampler = PosteriorSampler(spy, steps=T, slice_schedule="pipelined", lag=lag,
                               callback=lambda s, i, x: seen.append((s, i)))  # fmt: skip
    out = sampler.sample_volume(*vd(data), n_samples=2, seed=0, on_slices=lambda o, stop: stops.append(stop))
    ticks = T + (S - 1) * lag
    assert sampler.network_calls == len(spy.calls) == ticks  # one batched call per tick (reference attention)
    s1 = [w for w, _, _ in spy.calls if w.shape[0] == 4][0]  # tick 1: slices 0 and 1, two samples each
    assert not s1[:2].any()  # slice 0: cold start, a zero frame
    assert s1[2:].abs().sum() > 0  # slice 1: slice 0's current estimate
    assert sampler.network_images == S * T * 2
    assert sorted(seen) == [(s, i) for s in range(S) for i in range(T)]
    assert stops == [1, 2, 3, 4]  # slices finish in order: a checkpoint can keep them
    assert out.shape == (2, S, 32, 32) and bool(torch.isfinite(out).all())
    # fewer calls than the sequential sampler, and the result differs from it (earlier slices' estimates)
    ref = PosteriorSampler(aid, steps=T).sample_volume(*vd(data), n_samples=2, seed=0)
    torch.testing.assert_close(out[:, 0], ref[:, 0])  # slice 0 sees nothing in flight
    assert not torch.allclose(out[:, 1:], ref[:, 1:])


def test_pipelined_resumes_after_finished_slices(aid):
    """``done`` slices fill the windows of the pipeline as they do the sequential sampler's."""
    data, _, _ = volume(slices=3)
    full = PosteriorSampler(aid, steps=3, slice_schedule="pipelined", lag=3).sample_volume(*vd(data), seed=2)
    resumed = PosteriorSampler(aid, steps=3, slice_schedule="pipelined", lag=3).sample_volume(*vd(data), seed=2, done=full[:, :1])
    assert torch.equal(resumed, full)


def test_pipelined_full_attention_calls_unequal_windows_apart(aid):
    """attention="full" reads every window frame: slices with 0, 1, 2 ... frames cannot share a call."""
    T, S = 3, 3
    data, _, _ = volume(slices=S)
    sampler = PosteriorSampler(aid, steps=T, slice_schedule="pipelined", lag=1, attention="full")
    sampler.sample_volume(*vd(data), seed=0)
    assert sampler.network_calls == S * T  # aid.seq_length (4) > S: every window differs
    same = PosteriorSampler(aid, steps=T, slice_schedule="pipelined", lag=T, attention="full")
    seq = PosteriorSampler(aid, steps=T, attention="full")
    assert torch.equal(same.sample_volume(*vd(data), seed=0), seq.sample_volume(*vd(data), seed=0))


def test_pipelined_is_ignored_by_single_image_priors(unet):
    sampler = PosteriorSampler(unet, steps=2, slice_schedule="pipelined")
    assert sampler.slice_schedule == "sequential" and sampler.lag is None
