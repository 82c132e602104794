"""Prior-only sequence generation (mrirecon.recon.generate) with the tiny fixture priors."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from mrirecon.errors import MrireconError
from mrirecon.recon import generate_sequence



class Spy:
    """Delegates to a real prior and records the windows and positions it is called with."""

    def __init__(self, prior):
        self._prior = prior
        self.calls = []

    def __getattr__(self, name):
        return getattr(self._prior, name)

    def epsilon(self, noisy, t, context=None, attention="reference"):
        self.calls.append((context.frames.clone(), context.position))
        return self._prior.epsilon(noisy, t, context, attention=attention)


def test_cold_start_shapes_range_and_seeds(aid):
    a = generate_sequence(aid, 3, steps=3, seed=0)
    assert isinstance(a, torch.Tensor) and a.shape == (3, 2, 32, 32) and a.dtype == torch.float32
    assert float(a.abs().max()) <= 1.0  # the last step returns the clipped x̂0
    assert torch.equal(a, generate_sequence(aid, 3, steps=3, seed=0))
    assert not torch.allclose(a, generate_sequence(aid, 3, steps=3, seed=1))
    # η > 0 injects noise, still reproducible
    b = generate_sequence(aid, 2, steps=3, eta=1.0, seed=0)
    assert torch.equal(b, generate_sequence(aid, 2, steps=3, eta=1.0, seed=0))


def test_cold_start_conditions_each_frame_on_the_one_before(aid):
    """Unlike the reference's sample.py (which reads a still-zero window slot), frame n reads
    the slot holding frame n-1; only frame 0 sees a zero frame."""
    T = aid.seq_length
    spy = Spy(aid)
    frames = generate_sequence(spy, T + 2, steps=1, seed=0)
    assert len(spy.calls) == T + 2
    for n, (window, position) in enumerate(spy.calls):
        if n == 0:
            assert position == 0 and not window.any()
            continue
        assert position == min(n, T) - 1
        torch.testing.assert_close(window[0, position], frames[n - 1])
        first = max(0, n - T)
        torch.testing.assert_close(window[0, : n - first], frames[first:n])


def test_warm_start_reference_mode_reads_the_last_frame_only(aid):
    g = torch.Generator().manual_seed(0)
    last = torch.rand((1, 2, 32, 32), generator=g) * 2 - 1
    early1 = torch.rand((2, 2, 32, 32), generator=g) * 2 - 1
    early2 = torch.rand((2, 2, 32, 32), generator=g) * 2 - 1
    ref = [generate_sequence(aid, 2, warm_start=torch.cat([e, last]), steps=2, seed=0) for e in (early1, early2)]
    assert torch.equal(ref[0], ref[1])
    full = [
        generate_sequence(aid, 2, warm_start=torch.cat([e, last]), steps=2, seed=0, attention="full")
        for e in (early1, early2)
    ]
    assert not torch.allclose(full[0], full[1], rtol=1e-4, atol=1e-6)
    # numpy in -> numpy out; a different last frame changes the result
    out = generate_sequence(aid, 1, warm_start=torch.cat([early1, -last]).numpy(), steps=2, seed=0)
    assert isinstance(out, np.ndarray) and not np.allclose(out, ref[0][:1].numpy())


def test_warm_start_longer_than_the_window_keeps_the_newest_frames(aid):
    T = aid.seq_length
    warm = torch.rand((T + 3, 2, 32, 32), generator=torch.Generator().manual_seed(1)) * 2 - 1
    spy = Spy(aid)
    generate_sequence(spy, 1, warm_start=warm, steps=1, seed=0)
    window, position = spy.calls[0]
    assert position == T - 1
    torch.testing.assert_close(window[0], warm[-T:])


def test_unet_prior_generates_independent_frames(unet):
    three = generate_sequence(unet, 3, steps=2, seed=5)
    one = generate_sequence(unet, 1, steps=2, seed=5)
    torch.testing.assert_close(three[:1], one)
    assert three.shape == (3, 2, 32, 32)


def test_bad_arguments(aid):
    with pytest.raises(MrireconError, match="n_frames"):
        generate_sequence(aid, 0)
    with pytest.raises(MrireconError, match="warm_start"):
        generate_sequence(aid, 1, warm_start=np.zeros((2, 32, 32)))
    with pytest.raises(MrireconError, match="attention"):
        generate_sequence(aid, 1, attention="causal")
    with pytest.raises(MrireconError, match="multiple"):
        generate_sequence(aid, 1, image_size=33)
    with pytest.raises(MrireconError, match="prior"):
        generate_sequence("default", 1)
