"""mrirecon.reconstruct / reconstruct_file on simulated scans with the tiny fixture priors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mrirecon
from mrirecon.assets import sample_scan_path
from mrirecon.data.simulate import phantom_volume, simulate_scan, write_simulated
from mrirecon.errors import MrireconError
from mrirecon.physics.masks import make_mask
from mrirecon.physics.operators import SenseOp
from mrirecon.prior import load_prior
from mrirecon.recon import classical
from mrirecon.recon.api import reconstruct, reconstruct_file
from mrirecon.recon.intensity import intensity_factor, sampling_density

from conftest import FIXTURES


@pytest.fixture(scope="module")
def scan():
    return simulate_scan(phantom_volume(3, 32, 32, seed=0), coils=4, snr_db=40, oversample=1, seed=0)


@pytest.fixture(scope="module")
def mask():
    return make_mask("equispaced", (32, 32), 3, seed=0, acs_lines=6).mask


def misfit(image, maps, mask, kspace) -> float:
    y = torch.as_tensor(kspace * mask)
    op = SenseOp(torch.as_tensor(maps), torch.as_tensor(mask))
    return float(torch.linalg.norm(op.forward(torch.as_tensor(image)) - y) / torch.linalg.norm(y))


FAST = dict(steps=3, progress=False, sens="direct")


def phase_scan(slices=3, H=32, W=32):
    """One coil with a unit-modulus map: AᴴA is a projection, one unit DC step fits exactly."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    maps = np.exp(1j * (0.8 * xx - 0.5 * yy**2))[None].astype(np.complex64)
    return simulate_scan(phantom_volume(slices, H, W, seed=1), coil_maps=maps, snr_db=30, oversample=1, seed=1)


def test_aid_reconstruction_is_data_consistent(aid, mask):
    sim = phase_scan()
    res = mrirecon.reconstruct(sim.kspace, mask, prior=aid, sens=sim.maps, steps=3, dc_steps=1, progress=False)
    assert isinstance(res.image, np.ndarray) and res.image.shape == (3, 32, 32)
    assert res.image.dtype == np.complex64 and res.std is None and res.samples is None
    assert misfit(res.image, res.maps, mask, sim.kspace) < 1e-5
    info = res.info
    assert info["method"] == "aid" and info["steps"] == 3 and info["given_slices"] == []
    assert info["acceleration"] == pytest.approx(32 * 32 / mask.sum())
    assert info["sens"]["method"] == "given" and info["network_evals"] == 3 * 3
    assert info["attention"] == "reference" and info["update"] == "reference" and info["dc_steps"] == 1
    assert set(info["timings"]) >= {"sens", "sampling", "per_slice", "total"}


def test_estimated_sensitivities(aid, scan, mask):
    res = reconstruct(scan.kspace, mask, prior=aid, **FAST)
    assert res.info["sens"]["method"] == "direct" and res.maps.shape == (3, 4, 32, 32)
    assert bool(np.isfinite(res.image).all())


def test_result_scales_with_the_input(aid, scan, mask):
    """Automatic intensity: multiplying k-space by 1000 multiplies the result by 1000."""
    kw = dict(prior=aid, sens=scan.maps, steps=2, progress=False, seed=1)
    a = reconstruct(scan.kspace, mask, **kw).image
    b = reconstruct(scan.kspace * 1000, mask, **kw).image
    np.testing.assert_allclose(b / 1000, a, rtol=1e-4, atol=1e-5 * np.abs(a).max())


def test_seeds_reproduce_and_samples_give_a_std(aid, scan, mask):
    kw = dict(prior=aid, sens=scan.maps, steps=2, progress=False, n_samples=3, return_samples=True)
    r1 = reconstruct(scan.kspace, mask, seed=5, **kw)
    r2 = reconstruct(scan.kspace, mask, seed=5, **kw)
    assert np.array_equal(r1.image, r2.image) and np.array_equal(r1.samples, r2.samples)
    assert r1.samples.shape == (3, 3, 32, 32) and r1.std.shape == (3, 32, 32)
    np.testing.assert_allclose(r1.image, r1.samples.mean(0), rtol=1e-5, atol=1e-6)
    dev = r1.samples - r1.samples.mean(0)
    np.testing.assert_allclose(r1.std, np.sqrt((np.abs(dev) ** 2).sum(0) / 2), rtol=1e-4, atol=1e-6)
    assert r1.std.max() > 0


@pytest.mark.parametrize("which", ["aid", "unet"])
@pytest.mark.parametrize("first_slice", ["cold", "given"])
def test_checkpoint_resumes_to_the_uninterrupted_result(which, first_slice, request, scan, mask, tmp_path):
    """Interrupt after slice 1 (any exception, e.g. KeyboardInterrupt), resume from the
    checkpoint: the samples equal an uninterrupted run bit for bit; the file is then gone."""
    prior = request.getfixturevalue(which)
    kw = dict(prior=prior, sens=scan.maps, steps=3, progress=False, n_samples=2, seed=4, return_samples=True,
              batch_size=2, first_slice=first_slice)  # fmt: skip
    full = reconstruct(scan.kspace, mask, **kw)
    ckpt = tmp_path / "run.h5"

    def stop_in_slice_2(s, i, x0):
        if s == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct(scan.kspace, mask, checkpoint=ckpt, callback=stop_in_slice_2, **kw)
    assert ckpt.exists()
    res = reconstruct(scan.kspace, mask, checkpoint=ckpt, **kw)
    assert res.info["resumed_slices"] == 2 and not ckpt.exists()
    assert np.array_equal(res.samples, full.samples) and np.array_equal(res.image, full.image)


def test_checkpoint_of_other_settings_is_refused(aid, scan, mask, tmp_path):
    kw = dict(prior=aid, sens=scan.maps, steps=2, progress=False)
    ckpt = tmp_path / "run.h5"

    def stop(s, i, x0):
        if s == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconstruct(scan.kspace, mask, checkpoint=ckpt, callback=stop, seed=1, **kw)
    with pytest.raises(MrireconError, match=r"run.h5' belongs to another reconstruction \(seed: 1 -> 2\)"):
        reconstruct(scan.kspace, mask, checkpoint=ckpt, seed=2, **kw)
    with pytest.raises(MrireconError, match=r"belongs to another reconstruction \(data: "):
        reconstruct(scan.kspace * 2, mask, checkpoint=ckpt, seed=1, **kw)
    ckpt.write_bytes(b"not hdf5")
    with pytest.raises(MrireconError, match="is unreadable"):
        reconstruct(scan.kspace, mask, checkpoint=ckpt, seed=1, **kw)


def test_torch_in_torch_out_and_unet_prior(unet, scan, mask):
    res = reconstruct(torch.from_numpy(scan.kspace), torch.from_numpy(mask), prior=unet, **FAST)
    assert isinstance(res.image, torch.Tensor) and res.image.shape == (3, 32, 32)
    assert res.info["method"] == "unet" and res.info["attention"] is None
    assert res.info["network_evals"] == 3  # all slices in one batch per step


@pytest.mark.parametrize("method", ["zero-filled", "sense", "l1-wavelet"])
def test_classical_methods_through_the_same_call(method, scan, mask):
    res = reconstruct(scan.kspace, mask, method=method, sens=scan.maps, lam=2e-3, iters=20, progress=False)
    A = SenseOp(torch.from_numpy(scan.maps), torch.from_numpy(mask))
    y = torch.from_numpy(scan.kspace * mask)
    peak = A.adjoint(y).abs().flatten(1).amax(1)
    direct = {
        "zero-filled": lambda: classical.zero_filled(A, y),
        "sense": lambda: classical.sense_cg(A, y, 2e-3, 20),
        "l1-wavelet": lambda: classical.l1_wavelet(A, y, 2e-3 * peak, 20),
    }[method]().numpy()
    # the same solver on the same float32 inputs: agreement to rounding
    np.testing.assert_allclose(res.image, direct, rtol=0, atol=1e-4 * np.abs(direct).max())
    assert res.info["method"] == method and res.std is None


@pytest.mark.parametrize("method", ["sense", "l1-wavelet"])
def test_classical_defaults(method, scan, mask):
    """Without lam, λ is chosen by k-space hold-out (and recorded), and the result beats zero-filling."""
    from mrirecon.recon.classical import DEFAULT_LAMBDA, HOLDOUT_GRID

    res = reconstruct(scan.kspace, mask, method=method, sens=scan.maps, progress=False)
    held = reconstruct(scan.kspace, make_mask("equispaced", (32, 32), 2, seed=0, acs_lines=4).mask, method=method,
                       sens=scan.maps, progress=False)  # fmt: skip
    assert held.info["lam_source"] == "holdout" and len(held.info["lam_holdout_error"]) >= len(HOLDOUT_GRID[method])
    assert held.info["lam"] in HOLDOUT_GRID[method] or held.info.get("lam_l2")
    # a mask with too few lines outside its calibration region keeps the fixed default
    few = make_mask("equispaced", (32, 32), 3, seed=0, acs_lines=8).mask  # 3 lines outside the ACS
    fixed = reconstruct(scan.kspace, few, method=method, sens=scan.maps, progress=False)
    assert fixed.info["lam"] == DEFAULT_LAMBDA[method] and fixed.info["lam_source"].startswith("default")
    zf = reconstruct(scan.kspace, mask, method="zero-filled", sens=scan.maps)
    truth = scan.image

    def err(x):
        return np.linalg.norm(x - truth) / np.linalg.norm(truth)

    assert err(res.image) < err(zf.image)


def test_first_slice_given_is_flagged_and_copied(aid, scan, mask):
    res = reconstruct(scan.kspace, mask, prior=aid, sens=scan.maps, first_slice="given", steps=2, progress=False)
    assert res.info["given_slices"] == [0] and res.info["first_slice"] == "given"
    full = SenseOp(torch.from_numpy(scan.maps[0]), torch.ones(32, 32)).adjoint(torch.from_numpy(scan.kspace[0]))
    np.testing.assert_allclose(res.image[0], full.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(MrireconError, match="fully sampled"):
        reconstruct(scan.kspace * mask, mask, prior=aid, sens=scan.maps, first_slice="given", progress=False)


def test_size_mismatch_is_padded_for_the_network(aid):
    """37 x 30 with a 32-px prior whose sizes must be even: padded to 38 x 30 and back."""
    sim = phase_scan(1, 37, 30)
    m = make_mask("equispaced", (37, 30), 2, seed=0, acs_lines=4).mask
    res = reconstruct(sim.kspace, m, prior=aid, sens=sim.maps, steps=2, dc_steps=1, progress=False)
    assert res.image.shape == (1, 37, 30)
    assert res.info["padded"] and res.info["network_grid"] == [38, 30]
    assert misfit(res.image, sim.maps, m, sim.kspace) < 1e-5


SAMPLE_SCAN = sample_scan_path()


@pytest.fixture(scope="module")
def brain():
    """The bundled sample scan (MNI brain phantom, 8 coils): cropped k-space, maps, true peak."""
    from mrirecon.data.fastmri import open_scan
    from mrirecon.physics.coils import estimate_sens
    from mrirecon.physics.fft import center_crop, fft2c, ifft2c

    scan = open_scan(SAMPLE_SCAN)
    k = scan.load_kspace()
    k = fft2c(center_crop(ifft2c(k), (scan.recon_size[0], k.shape[-1]))).astype(np.complex64)
    maps = estimate_sens(k, mask=None, method="direct")
    full = SenseOp(torch.from_numpy(maps), torch.ones(k.shape[-2:])).adjoint(torch.from_numpy(k))
    return k, maps, float(full.abs().max())


@pytest.mark.parametrize(
    "kind,R,kw",
    [
        ("equispaced", 4, {}),
        ("random", 8, {}),
        ("poisson", 8, {}),
        ("equispaced", 4, dict(convention="aid")),  # no calibration lines
        ("random", 8, dict(convention="aid")),
    ],
)
def test_automatic_intensity_maps_the_brain_peak_near_one(brain, kind, R, kw):
    """No hand-tuned scale: the factor takes the fully sampled image's peak to about 1."""
    k, maps, peak = brain
    m = make_mask(kind, k.shape[-2:], R, seed=0, **kw).mask
    y = torch.from_numpy(k * m)
    mt = torch.from_numpy(m)[None]
    op = SenseOp(torch.from_numpy(maps), mt[:, None])
    c = intensity_factor(op, y, mt, None, "volume")
    assert c.shape == (k.shape[0],) and bool((c == c[0]).all())  # one factor per volume
    assert 0.6 < float(c[0]) * peak < 1.3
    per_slice = intensity_factor(op, y, mt, None, "slice")
    assert bool((per_slice >= c[0]).all()) and not bool((per_slice == c[0]).all())
    # the reference's explicit scale: s / max|Aᴴy|
    zf = op.adjoint(y).abs().max()
    explicit = intensity_factor(op, y, mt, 0.3, "volume")
    assert float(explicit[0]) == pytest.approx(0.3 / float(zf), rel=1e-5)


def test_sampling_density_flattens_a_comb_and_keeps_the_centre():
    m = np.zeros((8, 64), np.float32)
    m[:, ::4] = 1
    m[:, 28:36] = 1
    d = sampling_density(m)
    assert d.shape == m.shape
    assert d[0, 32] > 0.8 and abs(d[0, 4] - 0.25) < 0.05


def test_callback_and_progress(aid, scan, mask, capsys):
    calls = []
    res = reconstruct(
        scan.kspace, mask, prior=aid, sens=scan.maps, steps=2, n_samples=2, progress=True, return_samples=True,
        callback=lambda s, i, x: calls.append((s, i, x.clone())),
    )
    assert [(s, i) for s, i, _ in calls] == [(s, i) for s in range(3) for i in range(2)]
    assert all(tuple(x.shape) == (2, 32, 32) for _, _, x in calls)
    # the last step's x̂0 is the sample, handed over in the input intensity scale
    for s, i, x in calls:
        if i == 1:
            np.testing.assert_allclose(x.numpy(), res.samples[:, s], rtol=1e-5, atol=1e-6 * np.abs(x.numpy()).max())
    assert "slice 3/3" in capsys.readouterr().err  # one bar over every step, naming the slice


def test_reconstruct_file_crops_the_readout_and_returns_the_reference(tmp_path, aid):
    sim = simulate_scan(phantom_volume(2, 32, 32, seed=4), coils=4, snr_db=40, oversample=2, seed=4)
    path = write_simulated(tmp_path / "scan.h5", sim)
    m = make_mask("equispaced", (64, 32), 2, seed=0, acs_lines=4)  # drawn for the full readout
    res = reconstruct_file(path, mask=m, method="zero-filled", sens="direct")
    assert res.image.shape == (2, 32, 32) and res.reference.shape == (2, 32, 32)
    assert res.info["readout_crop"] == [64, 32] and res.info["file"] == str(path)
    res2 = reconstruct_file(path, mask=m, prior=aid, sens="direct", slices=[1], steps=2, progress=False)
    assert res2.image.shape == (1, 32, 32) and res2.info["slices"] == [1]


def test_bad_inputs_give_one_line_errors(aid, scan, mask):
    k = scan.kspace
    cases = [
        (dict(kspace=k.real), "complex"),
        (dict(kspace=k[0]), r"\(slices, coils, kx, ky\)"),
        (dict(mask=np.ones((5, 5))), "not broadcastable"),
        (dict(mask=mask * 0.5), "0 and 1"),
        (dict(mask=np.zeros_like(mask)), "samples nothing"),
        (dict(n_samples=0), "n_samples"),
        (dict(update="ddpm"), "update"),
        (dict(dc="newton"), "dc must be one of"),
        (dict(attention="causal"), "attention"),
        (dict(first_slice="warm"), "first_slice"),
        (dict(scale=-1.0), "scale"),
        (dict(sens="walsh"), "sens"),
        (dict(sens=scan.maps[:, :2]), "sens maps"),
        (dict(sens=scan.maps * 3, dc="gradient"), "diverge"),  # CG chooses its own step sizes
        (dict(dc_steps=0), "ignores the measured data"),
        (dict(mask=np.array(1.0, np.float32)), "0-d"),
        (dict(prior=42), "prior must be"),
        (dict(device="cuda:0"), "device"),
    ]
    for override, pattern in cases:
        kw = dict(kspace=k, mask=mask, prior=aid, sens=scan.maps, steps=1, progress=False)
        kw.update(override)
        with pytest.raises(MrireconError, match=pattern) as e:
            reconstruct(**kw)
        assert "\n" not in str(e.value)
    # the step-size bound belongs to gradient steps: CG data consistency takes such maps
    res = reconstruct(k, mask, prior=aid, sens=scan.maps * 3, steps=1, dc="cg", progress=False)
    assert np.isfinite(res.image).all()


def test_magnitude_priors_and_unknown_names_are_refused(scan, mask):
    import yaml

    from mrirecon.prior import Prior, build_network

    cfg = yaml.safe_load((FIXTURES / "causal_tiny" / "config.yaml").read_text())
    cfg.update(in_channels=1, mag=True)
    torch.manual_seed(0)
    magnitude = Prior(build_network(cfg))
    with pytest.raises(MrireconError, match="in_channels=1.*complex"):
        reconstruct(scan.kspace, mask, prior=magnitude, sens=scan.maps, steps=1, progress=False)
    with pytest.raises(MrireconError, match="no-such-prior"):
        reconstruct(scan.kspace, mask, prior="no-such-prior", sens=scan.maps, steps=1, progress=False)


def test_bf16_network_precision_runs_on_cpu(aid, scan, mask):
    res = reconstruct(scan.kspace[:1], mask, prior=aid, sens=scan.maps[:1], steps=2, precision="bf16", progress=False)
    ref = reconstruct(scan.kspace[:1], mask, prior=aid, sens=scan.maps[:1], steps=2, progress=False)
    assert res.info["precision"] == "bf16" and ref.info["precision"] == "fp32" and aid.precision == "fp32"
    assert bool(np.isfinite(res.image).all()) and not np.array_equal(res.image, ref.image)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_reconstruction_is_data_consistent_and_seeded(precision):
    d = FIXTURES / "causal_tiny"
    gpu = load_prior(config=d / "config.yaml", weights=d / "model.pt", device="cuda")
    sim = phase_scan(2)
    m = make_mask("equispaced", (32, 32), 3, seed=0, acs_lines=6).mask
    kw = dict(prior=gpu, sens=sim.maps, steps=3, dc_steps=1, n_samples=2, precision=precision, progress=False)
    a = reconstruct(torch.from_numpy(sim.kspace).cuda(), torch.from_numpy(m), seed=3, **kw)
    b = reconstruct(torch.from_numpy(sim.kspace).cuda(), torch.from_numpy(m), seed=3, **kw)
    assert a.image.device.type == "cuda" and a.info["device"].startswith("cuda")
    assert misfit(a.image.cpu(), sim.maps, m, sim.kspace) < 1e-4
    torch.testing.assert_close(a.image, b.image, rtol=1e-3, atol=1e-4 * float(a.image.abs().max()))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("method", ["sense", "l1-wavelet"])
def test_cuda_classical_methods_stay_on_the_gpu_and_match_the_cpu(method):
    """Maps, operator and solver run on the GPU (L1-wavelet's wavelet too); the result equals the CPU one."""
    sim = phase_scan(2)
    m = make_mask("equispaced", (32, 32), 3, seed=0, acs_lines=8).mask
    gpu = reconstruct(torch.from_numpy(sim.kspace).cuda(), m, method=method, sens="direct", lam=1e-3, progress=False)
    cpu = reconstruct(sim.kspace, m, method=method, sens="direct", lam=1e-3, progress=False)
    assert gpu.image.device.type == "cuda" and gpu.info["device"].startswith("cuda")
    rel = float(np.linalg.norm(gpu.image.cpu().numpy() - cpu.image) / np.linalg.norm(cpu.image))
    assert rel < 1e-3, rel


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_pipelined_schedule_runs_batched():
    d = FIXTURES / "causal_tiny"
    gpu = load_prior(config=d / "config.yaml", weights=d / "model.pt", device="cuda")
    sim = phase_scan(4)
    m = make_mask("equispaced", (32, 32), 3, seed=0, acs_lines=6).mask
    kw = dict(prior=gpu, sens=sim.maps, steps=4, first_slice="cold", progress=False)
    seq = reconstruct(sim.kspace, m, **kw)
    pipe = reconstruct(sim.kspace, m, schedule="pipelined", lag=1, **kw)
    assert pipe.info["network_evals"] == 4 + 3 < seq.info["network_evals"] == 16
    assert misfit(torch.from_numpy(pipe.image), sim.maps, m, sim.kspace) < 1e-3


def test_readout_oversampled_kspace_is_reported(scan, mask):
    """Raw fastMRI k-space (2x readout) passed to reconstruct: a warning says to crop it."""
    sim = simulate_scan(phantom_volume(1, 32, 32, seed=5), coils=4, snr_db=40, oversample=2, seed=5)
    m = make_mask("equispaced", (64, 32), 3, seed=0, acs_lines=8).mask
    with pytest.warns(UserWarning, match="looks 2x oversampled"):
        res = reconstruct(sim.kspace, m, method="zero-filled", sens="direct")
    assert any("oversampled" in w for w in res.info["warnings"])
    cropped = mrirecon.data.crop_readout(sim.kspace, 32)
    with warnings_none():
        reconstruct(cropped, m[:32], method="zero-filled", sens="direct")


def warnings_none():
    import warnings

    ctx = warnings.catch_warnings()

    class _Guard:
        def __enter__(self):
            ctx.__enter__()
            warnings.simplefilter("error")

        def __exit__(self, *exc):
            return ctx.__exit__(*exc)

    return _Guard()


def test_seed_beyond_64_bits_is_refused_before_any_work(scan, mask):
    with pytest.raises(MrireconError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
        reconstruct(scan.kspace, mask, method="zero-filled", seed=2**64, progress=False)


def test_two_sets_of_maps_soft_sense_for_classical_first_set_for_priors(aid):
    """sens_options={"sets": 2}: classical methods solve soft-SENSE and return the RSS over the sets; priors use set 1."""
    sim = simulate_scan(phantom_volume(2, 32, 32, seed=0), coils=4, snr_db=40, oversample=1, seed=0)
    mask = make_mask("equispaced", (32, 32), 2, seed=0, acs_lines=12)
    res = mrirecon.reconstruct(sim.kspace, mask, method="sense", sens="espirit", sens_options={"sets": 2}, progress=False)
    assert res.image.shape == (2, 32, 32) and res.info["map_sets"] == 2 and res.maps.shape == (2, 2, 4, 32, 32)
    assert np.allclose(np.angle(res.image[np.abs(res.image) > 0]), 0)  # a magnitude image
    one = mrirecon.reconstruct(sim.kspace, mask, method="sense", sens="espirit", progress=False)
    assert np.abs(res.image).sum() > 0 and "map_sets" not in one.info
    with pytest.warns(UserWarning, match="first of the two sets"):
        pr = mrirecon.reconstruct(sim.kspace, mask, prior=aid, sens="espirit", sens_options={"sets": 2}, steps=2, progress=False)
    assert pr.maps.shape == (2, 4, 32, 32)


def test_classical_method_through_prior_is_deprecated_but_equal():
    from mrirecon import reconstruct

    sim = simulate_scan(phantom_volume(1, 32, 32, seed=0), coils=4, snr_db=None, oversample=1, seed=0)
    mask = make_mask("equispaced", (32, 32), 2, seed=0, acs_lines=8).mask
    new = reconstruct(sim.kspace, mask, method="sense", sens=sim.maps, lam=1e-2, progress=False)
    with pytest.warns(DeprecationWarning, match="use method='sense'"):
        old = reconstruct(sim.kspace, mask, "sense", sens=sim.maps, lam=1e-2, progress=False)
    np.testing.assert_array_equal(new.image, old.image)
    with pytest.raises(MrireconError, match="method must be one of"):
        reconstruct(sim.kspace, mask, method="aid", progress=False)


def test_settings_object_and_keywords_agree():
    """``settings=`` carries every option; keywords that differ from the defaults override its fields."""
    from mrirecon import reconstruct
    from mrirecon.recon import DEFAULTS, ReconSettings

    assert ReconSettings.build(None) == ReconSettings() and DEFAULTS.steps == ReconSettings().steps
    base = ReconSettings(steps=7, dc_steps=3)
    assert ReconSettings.build(base, steps=DEFAULTS.steps, dc_steps=5) == ReconSettings(steps=7, dc_steps=5)
    sim = simulate_scan(phantom_volume(1, 32, 32, seed=0), coils=4, snr_db=None, oversample=1, seed=0)
    mask = make_mask("equispaced", (32, 32), 2, seed=0, acs_lines=8).mask
    a = reconstruct(sim.kspace, mask, method="sense", sens=sim.maps, settings=ReconSettings(lam=0.05), progress=False)
    b = reconstruct(sim.kspace, mask, method="sense", sens=sim.maps, lam=0.05, progress=False)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.info["lam"] == 0.05


def test_sweep_prepares_once_and_equals_one_call_per_lambda():
    from mrirecon.recon import reconstruct_sweep

    sim = simulate_scan(phantom_volume(2, 32, 32, seed=2), coils=4, snr_db=30, oversample=1, seed=2)
    mask = make_mask("equispaced", (32, 32), 3, seed=0, acs_lines=8).mask
    lams = (1e-3, 1e-2)
    swept = reconstruct_sweep(sim.kspace, mask, "l1-wavelet", lams, sens="direct")
    for lam, res in zip(lams, swept):
        one = reconstruct(sim.kspace, mask, method="l1-wavelet", sens="direct", lam=lam, progress=False)
        np.testing.assert_array_equal(res.image, one.image)
        assert res.info["lam"] == lam and res.info["lam_source"] == "given"
    assert swept[0].maps is swept[1].maps
    with pytest.raises(MrireconError, match="sweeps 'sense' or 'l1-wavelet'"):
        reconstruct_sweep(sim.kspace, mask, "zero-filled", lams)
