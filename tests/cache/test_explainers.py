"""Attribution guarantees: linear closed form, completeness, exact Shapley, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cache.explainers import EXPLAINERS, ExplainerConfig, get_explainer
from cache.sampling import draw_points, sample_seed
from cache.testing import (
    LinearModel,
    MultilinearGroupModel,
    TinyDetector,
    exact_shapley_groups,
)

SHAPE = (1, 6, 6)


@pytest.fixture
def linear(seed):
    gen = torch.Generator().manual_seed(seed)
    model = LinearModel(torch.randn(SHAPE, generator=gen), bias=0.7).eval()
    background = torch.rand((5, *SHAPE), generator=gen)
    inputs = torch.rand((3, *SHAPE), generator=gen)
    return model, background, inputs


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(0, "a") == sample_seed(0, "a")
    assert len({sample_seed(0, "a"), sample_seed(1, "a"), sample_seed(0, "b")}) == 3
    # the derivation is part of the format: sha256("0\x00real-000")[:4] little-endian
    import hashlib

    digest = hashlib.sha256(b"0\x00real-000").digest()
    assert sample_seed(0, "real-000") == int.from_bytes(digest[:4], "little")
    with pytest.raises(ValueError, match="run_seed must be an integer"):
        sample_seed("0", "a")


@pytest.mark.parametrize("scheme", ["shap", "iid", "stratified"])
@pytest.mark.parametrize(("n", "m"), [(200, 10), (7, 10), (25, 4)])
def test_draw_points(scheme, n, m):
    index, t, w = draw_points(scheme, n, m, seed=3)
    assert index.shape == t.shape == w.shape == (n,)
    assert index.min() >= 0 and index.max() < m and t.min() >= 0 and t.max() < 1
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-12)
    if scheme == "stratified" and n >= m:
        # every background image carries total weight 1/M, its t one per stratum
        for b in range(m):
            np.testing.assert_allclose(w[index == b].sum(), 1 / m, rtol=1e-12)
            tb = np.sort(t[index == b])
            np.testing.assert_array_equal(np.floor(tb * len(tb)), np.arange(len(tb)))


@pytest.mark.parametrize("m", [1, 2, 3, 7, 10, 100, 12345])
def test_draw_points_shap_reproduces_shaps_generator(m):
    index, t, _ = draw_points("shap", 300, m, seed=11)
    np.random.seed(11)  # what shap.GradientExplainer.shap_values(..., rseed=11) does
    for k in range(300):
        assert index[k] == np.random.choice(m)
        assert t[k] == np.random.uniform()


def test_linear_model_closed_form_stratified(linear):
    model, background, inputs = linear
    e = get_explainer("shap-gradient", model, background, nsamples=20, sampling="stratified")
    attr, comp = e.attribute(inputs, ["a", "b", "c"], return_completeness=True)
    want = model.weight.detach() * (inputs - background.mean(0))
    # float32 inputs, float64 accumulation: a few float32 ulps
    torch.testing.assert_close(attr, want, rtol=1e-5, atol=1e-6)
    assert comp.shape == (3,) and comp.abs().max() < 1e-4


def test_linear_model_shap_sampling_uses_the_drawn_backgrounds(linear):
    model, background, inputs = linear
    e = get_explainer("shap-gradient", model, background, nsamples=50, seed=4)
    attr = e.attribute(inputs, ["a", "b", "c"])
    for j, sid in enumerate("abc"):
        index, _, _ = draw_points("shap", 50, 5, sample_seed(4, sid))
        want = model.weight.detach() * (inputs[j] - background[index].mean(0))
        torch.testing.assert_close(attr[j], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", EXPLAINERS)
def test_every_explainer_shapes_seeding_and_batch_independence(name):
    model = TinyDetector("defocus", size=12, width=4, seed=1).eval()
    gen = torch.Generator().manual_seed(0)
    background = torch.rand((4, 1, 12, 12), generator=gen)
    x = torch.rand((5, 1, 12, 12), generator=gen)
    ids = [f"s{i}" for i in range(5)]
    params = {"nsamples": 16, "n_steps": 4, "window": 4, "stride": 4, "seed": 7}
    params = {k: v for k, v in params.items() if k in ExplainerConfig(name=name).to_dict()}
    params["seed"] = 7
    e = get_explainer(name, model.classify, background, **params)
    full, comp = e.attribute(x, ids, return_completeness=True)
    assert full.shape == x.shape and full.dtype == torch.float32 and comp.shape == (5,)
    assert torch.isfinite(full).all() and full.abs().sum() > 0
    # the same samples in other batches, in another order: equal to float rounding
    parts = torch.cat([e.attribute(x[[3, 1]], [ids[3], ids[1]]), e.attribute(x[[0]], ids[:1])])
    torch.testing.assert_close(parts, full[[3, 1, 0]], rtol=1e-5, atol=1e-7)
    again = get_explainer(name, model.classify, background, **params)
    torch.testing.assert_close(again.attribute(x[4:], ids[4:]), full[4:], rtol=1e-5, atol=1e-7)
    assert e.to_dict()["name"] == name and e.to_dict()["seed"] == 7


def test_other_seed_changes_random_explainers():
    model = TinyDetector("defocus", size=12, width=4, seed=1).eval()
    background = torch.rand((4, 1, 12, 12), generator=torch.Generator().manual_seed(0))
    x = background[:2] * 0.5 + 0.2
    a = get_explainer("shap-gradient", model.classify, background, nsamples=8, seed=0)
    b = get_explainer("shap-gradient", model.classify, background, nsamples=8, seed=1)
    assert not torch.allclose(a.attribute(x, ["p", "q"]), b.attribute(x, ["p", "q"]))


def test_native_shap_gradient_equals_shap_gradientexplainer():
    model = TinyDetector("defocus", size=10, width=4, seed=2).eval()
    gen = torch.Generator().manual_seed(1)
    background = torch.rand((6, 1, 10, 10), generator=gen)
    x = torch.rand((2, 1, 10, 10), generator=gen)
    ids = ["img-1", "img-2"]
    native = get_explainer("shap-gradient", model.classify, background, nsamples=40, seed=3)
    ref = get_explainer(
        "shap-gradient", model.classify, background, nsamples=40, seed=3, backend="shap"
    )
    a, b = native.attribute(x, ids), ref.attribute(x, ids)
    # identical draws and arithmetic: equal to float rounding (bit-equal on this machine)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def _multilinear_setup(seed, n_groups=9, side=6):
    gen = torch.Generator().manual_seed(seed)
    groups = torch.randint(0, n_groups, (1, side, side), generator=gen)
    groups.view(-1)[:n_groups] = torch.arange(n_groups)  # every group present
    model = MultilinearGroupModel(groups, seed=seed).eval()
    background = torch.rand((3, 1, side, side), generator=gen) / side
    x = torch.rand((1, 1, side, side), generator=gen) / side
    z_x = model.group_sums(x).double().numpy()[0]
    z_bg = model.group_sums(background).double().numpy()

    def value(z):
        with torch.no_grad():
            return model.double().of_sums(torch.from_numpy(z)).numpy()

    phi = exact_shapley_groups(value, z_x, z_bg)
    model.float()
    onehot = model.onehot.numpy()
    return model, background, x, phi, onehot


def _group_sum(attr, onehot):
    return attr[0].double().numpy().reshape(-1) @ onehot.reshape(-1, onehot.shape[-1])


def test_exact_shapley_by_enumeration_checks_itself(seed):
    model, background, x, phi, _ = _multilinear_setup(seed)
    with torch.no_grad():
        gap = float(model(x)[0, 0] - model(background).mean())
    np.testing.assert_allclose(phi.sum(), gap, rtol=1e-5)  # efficiency of the enumeration


def test_ig_over_background_equals_exact_shapley(seed):
    # f is a cubic polynomial in t along each path; 4-point Gauss-Legendre is exact for it
    model, background, x, phi, onehot = _multilinear_setup(seed)
    e = get_explainer("captum-ig", model, background, n_steps=4, ig_method="gausslegendre")
    got = _group_sum(e.attribute(x, ["x"]), onehot)
    np.testing.assert_allclose(got, phi, rtol=1e-4, atol=1e-5 * np.abs(phi).max())
    assert abs(float(e.last_delta[0])) < 1e-4


def test_expected_gradients_converge_to_exact_shapley(seed):
    model, background, x, phi, onehot = _multilinear_setup(seed)
    e = get_explainer(
        "shap-gradient", model, background, nsamples=3 * 400, sampling="stratified", seed=seed
    )
    got = _group_sum(e.attribute(x, ["x"]), onehot)
    # stratified t with 400 points per background (measured error ~1e-6 of max |phi|)
    np.testing.assert_allclose(got, phi, atol=1e-4 * np.abs(phi).max())
    shap_draws = get_explainer("shap-gradient", model, background, nsamples=2000, seed=seed)
    got = _group_sum(shap_draws.attribute(x, ["x"]), onehot)
    # shap's iid draws: Monte Carlo error; 2000 draws give a few % of max |phi|
    np.testing.assert_allclose(got, phi, atol=0.1 * np.abs(phi).max())


def test_completeness_of_gradient_methods_on_a_relu_net():
    model = TinyDetector("defocus", size=12, width=4, seed=5).eval()
    gen = torch.Generator().manual_seed(2)
    background = torch.rand((4, 1, 12, 12), generator=gen)
    x = torch.rand((3, 1, 12, 12), generator=gen)
    with torch.no_grad():
        scale = float((model.classify(x) - model.classify(background).mean()).abs().max())
    ig = get_explainer("captum-ig", model.classify, background, n_steps=64)
    _, comp = ig.attribute(x, list("abc"), return_completeness=True)
    assert comp.abs().max() < 0.05 * scale, (comp, scale)
    dl = get_explainer("captum-deeplift", model.classify, background)
    _, comp = dl.attribute(x, list("abc"), return_completeness=True)
    assert comp.abs().max() < 1e-4 * max(scale, 1.0)  # DeepLift's summation-to-delta


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "lime"}, "explainer must be one of"),
        ({"nsamples": 0}, "nsamples must be a positive integer"),
        ({"sampling": "sobol"}, "sampling must be one of"),
        ({"backend": "shap", "sampling": "stratified"}, "backend='shap'"),
        ({"baseline": "blur"}, "baseline must be"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExplainerConfig(**kwargs)


def test_attribute_errors(linear):
    model, background, inputs = linear
    e = get_explainer("shap-gradient", model, background, nsamples=4)
    with pytest.raises(ValueError, match="got 2 ids for 3 inputs"):
        e.attribute(inputs, ["a", "b"])
    with pytest.raises(ValueError, match=r"inputs must have shape \(B, 1, 6, 6\)"):
        e.attribute(inputs[:, :, :3], ["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown explainer parameters"):
        get_explainer("shap-gradient", model, background, n_sample=4)
    with pytest.raises(ValueError, match="one logit per sample"):
        get_explainer("shap-gradient", lambda x: x.flatten(1), background)


class _BNNet(torch.nn.Module):
    """Conv-BN-ReLU twice and a linear head; optionally a path around the first conv."""

    def __init__(self, prefix: str = "", seed: int = 0):
        super().__init__()
        nn = torch.nn
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(6)
            self.act1 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(6, 6, 3, stride=2, padding=1)
            self.bn2 = nn.BatchNorm2d(6)
            self.act2 = nn.Hardswish(inplace=True)
            self.head = nn.Linear(6, 1)
            for bn in (self.bn1, self.bn2):
                bn.running_mean.normal_(0, 0.3)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.data.normal_(1, 0.3)
                bn.bias.data.normal_(0, 0.3)
        self.prefix = prefix

    def classify(self, x):
        h = x * x if self.prefix == "square" else x * 2.0 - 1.0
        h = self.act1(self.bn1(self.conv1(h)))
        h = self.act2(self.bn2(self.conv2(h)))
        out = self.head(h.mean(dim=(2, 3)))
        if self.prefix == "skip":  # the input reaches the logit around the first conv
            out = out + 3.0 * x.mean(dim=(1, 2, 3))[:, None]
        return out


def _bn_data():
    gen = torch.Generator().manual_seed(5)
    return torch.rand((4, 1, 12, 12), generator=gen), torch.rand((3, 1, 12, 12), generator=gen)


def test_fold_batchnorm_keeps_the_function_and_the_attributions():
    from cache.explainers import fold_batchnorm

    model = _BNNet().eval()
    background, x = _bn_data()
    folded, n = fold_batchnorm(model, background)
    assert n == 2 and folded is not model
    assert isinstance(model.bn1, torch.nn.BatchNorm2d)  # the model itself is unchanged
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    # the in-place hard-swish (its gradient needs its input) is out-of-place in the copy only
    assert model.act2.inplace and not folded.act2.inplace
    assert folded.act1.inplace  # ReLU's gradient needs only its output: left in place
    with torch.no_grad():
        torch.testing.assert_close(folded.classify(x), model.classify(x), rtol=1e-5, atol=1e-6)
    ids = ["a", "b", "c"]
    kw = {"nsamples": 32, "seed": 2}
    a, ca = get_explainer("shap-gradient", model.classify, background, **kw).attribute(
        x, ids, return_completeness=True
    )
    eb = get_explainer("shap-gradient", folded.classify, background, **kw)
    b, cb = eb.attribute(x, ids, return_completeness=True)
    assert eb._stem is folded.conv1  # the shortcut, now with an in-place ReLU on its output
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * float(a.abs().max()))
    torch.testing.assert_close(cb, ca, rtol=1e-3, atol=1e-5)
    # in training mode nothing is folded
    assert fold_batchnorm(_BNNet().train(), background)[1] == 0


@pytest.mark.parametrize("prefix", ["", "square", "skip"])
@pytest.mark.parametrize("sampling", ["shap", "stratified"])
def test_stem_shortcut_equals_the_full_backward_pass(prefix, sampling):
    model = _BNNet(prefix).eval()
    background, x = _bn_data()
    ids = ["a", "b", "c"]
    kw = {"nsamples": 24, "seed": 1, "sampling": sampling, "batch_points": 10}
    short = get_explainer("shap-gradient", model.classify, background, **kw)
    full = get_explainer("shap-gradient", model.classify, background, **kw)
    full.stem_shortcut = False
    a, b = short.attribute(x, ids), full.attribute(x, ids)
    # used only where exact: affine map to the first conv's output, all gradient through it
    assert (short._stem is model.conv1) == (prefix == "")
    assert full._stem is False  # never probed
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


def test_fold_batchnorm_leaves_a_convolution_whose_output_is_also_used_elsewhere():
    from cache.explainers import fold_batchnorm

    class Shared(_BNNet):
        def classify(self, x):
            h = self.conv1(x)
            h = self.act1(self.bn1(h) + h)  # the raw conv output is used twice
            return self.head(h.mean(dim=(2, 3)))

    model = Shared().eval()
    background, _ = _bn_data()
    folded, n = fold_batchnorm(model, background)
    assert n == 0 and folded is model


def test_balanced_passes_cover_every_point_once_in_near_equal_passes():
    from cache.explainers import _balanced_passes

    for n, per_pass in [(200, 64), (200, 50), (7, 3), (1, 64), (64, 64), (65, 64), (0, 8)]:
        passes = _balanced_passes(n, per_pass)
        sizes = [p.stop - p.start for p in passes]
        assert sum(sizes) == n and all(0 < s <= per_pass for s in sizes)
        assert [p.start for p in passes] == [sum(sizes[:i]) for i in range(len(sizes))]
        assert len(passes) == -(-n // per_pass) and (not sizes or max(sizes) - min(sizes) <= 1)
    assert [p.stop - p.start for p in _balanced_passes(200, 64)] == [50, 50, 50, 50]


@pytest.mark.parametrize("channels_last", [False, True])
def test_sums_by_group_equal_a_loop_of_sums(channels_last):
    from cache.explainers import _sums_by_group

    gen = torch.Generator().manual_seed(3)
    values = torch.randn((9, 4, 5, 6), generator=gen)
    if channels_last:
        values = values.contiguous(memory_format=torch.channels_last)
    group = torch.tensor([0, 0, 2, 2, 2, 3, 3, 3, 3])  # group 1 is empty
    out = _sums_by_group(values, group, 5)
    want = torch.stack([values[group == j].sum(0) for j in range(5)])
    assert out.shape == (5, 4, 5, 6)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    assert float(out[1].abs().max()) == 0.0 and float(out[4].abs().max()) == 0.0
    flat = _sums_by_group(values.reshape(9, -1), group, 4)  # any trailing shape
    torch.testing.assert_close(flat, want[:4].reshape(4, -1), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- captum adapters
# Closed forms, not shapes: on f(x) = w . x + c every path method with one reference b
# gives w * (x - b), and occlusion of one element gives f(x) - f(x with x_i = b_i).


def _linear_one_background(seed, shape=(2, 5, 5)):
    gen = torch.Generator().manual_seed(seed)
    model = LinearModel(torch.randn(shape, generator=gen), bias=-0.4).eval()
    background = torch.rand((1, *shape), generator=gen)
    inputs = torch.rand((3, *shape), generator=gen)
    return model, background, inputs


def _f64(model, x):
    with torch.no_grad():
        return model(x.double()).reshape(len(x)).double()


def test_captum_gradientshap_on_a_linear_model_is_w_times_x_minus_b(seed):
    # catches: a scaled (e.g. doubled) result, a flipped sign, a zero or wrong baseline
    model, background, inputs = _linear_one_background(seed)
    e = get_explainer("captum-gradientshap", model, background, nsamples=7, seed=seed)
    attr, comp = e.attribute(inputs, ["a", "b", "c"], return_completeness=True)
    w = model.weight.detach().double()
    want = w * (inputs.double() - background.double())
    torch.testing.assert_close(attr.double(), want, rtol=1e-5, atol=1e-6)
    # completeness: the attributions sum to f(x) - f(b)
    gap = _f64(model.double(), inputs) - _f64(model, background)
    model.float()
    torch.testing.assert_close(attr.double().flatten(1).sum(1), gap, rtol=1e-5, atol=1e-5)
    assert comp.abs().max() < 1e-5 * max(1.0, float(gap.abs().max()))
    assert e.reference == "mean f(background)"


def test_captum_gradientshap_on_a_quadratic_is_the_path_gradient_at_the_mean_draw(seed):
    # f = a.x + (c.x)^2: grad f(b + t (x - b)) = a + 2 c (c.b) + 2 c (c.(x - b)) t is affine
    # in t, so GradientShap with one reference is exactly A + tau B with tau the mean of the
    # n drawn t in [0, 1]. Catches a doubled or sign-flipped result (not of that form), a
    # wrong baseline and points not on the segment from b to x.
    gen = torch.Generator().manual_seed(seed)
    shape = (1, 6, 6)
    a, c = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen) / 6

    class Quadratic(torch.nn.Module):
        def forward(self, x):
            return ((x * a).flatten(1).sum(1) + (x * c).flatten(1).sum(1) ** 2)[:, None]

    background = torch.rand((1, *shape), generator=gen)
    inputs = torch.rand((4, *shape), generator=gen)
    n = 48
    e = get_explainer("captum-gradientshap", Quadratic(), background, nsamples=n, seed=seed)
    attr = e.attribute(inputs, list("wxyz")).double()
    a64, c64, b = a.double(), c.double(), background.double()[0]
    for j in range(len(inputs)):
        d = inputs[j].double() - b
        base = (a64 + 2 * c64 * (c64 * b).sum()) * d
        slope = 2 * c64 * (c64 * d).sum() * d
        tau = float(((attr[j] - base) * slope).sum() / (slope * slope).sum())
        # mean of n uniform draws: 0.5 within 5 standard deviations sqrt(1 / (12 n))
        assert abs(tau - 0.5) < 5 * (12 * n) ** -0.5, tau
        torch.testing.assert_close(attr[j], base + tau * slope, rtol=0, atol=1e-5)


@pytest.mark.parametrize("baseline", ["mean", "zeros"])
def test_captum_occlusion_window_1_on_a_linear_model_is_w_times_x_minus_baseline(seed, baseline):
    # catches: a zero baseline where the mean was asked for (and the reverse), a flipped
    # sign, a scaled result; with 3 backgrounds, "mean" must use their mean image. One
    # channel: a window spans every channel (see the next test)
    gen = torch.Generator().manual_seed(seed)
    shape = (1, 5, 5)
    model = LinearModel(torch.randn(shape, generator=gen), bias=0.3).eval()
    background = torch.rand((3, *shape), generator=gen)
    inputs = torch.rand((2, *shape), generator=gen)
    e = get_explainer("captum-occlusion", model, background, window=1, stride=1, baseline=baseline)
    attr, comp = e.attribute(inputs, ["p", "q"], return_completeness=True)
    ref = background.double().mean(0) if baseline == "mean" else torch.zeros(shape).double()
    want = model.weight.detach().double() * (inputs.double() - ref)
    torch.testing.assert_close(attr.double(), want, rtol=1e-5, atol=1e-6)
    # completeness against f(baseline): exact for a linear model
    assert comp.abs().max() < 1e-5 and e.reference == f"f(baseline={baseline})"


def test_captum_occlusion_windows_and_strides_on_a_linear_model():
    # a window of 2 at stride 1 over (C, 6, 6): every window position deletes
    # sum_window w (x - b) over all channels, and each element gets the mean of the
    # deltas of the windows that cover it. Catches a wrong window, stride or channel span.
    gen = torch.Generator().manual_seed(4)
    shape, k = (3, 6, 6), 2
    model = LinearModel(torch.randn(shape, generator=gen), bias=0.0).eval()
    background = torch.rand((2, *shape), generator=gen)
    x = torch.rand((1, *shape), generator=gen)
    e = get_explainer("captum-occlusion", model, background, window=k, stride=1)
    got = e.attribute(x, ["x"])[0].double().numpy()
    contrib = model.weight.detach().double() * (x[0].double() - background.double().mean(0))
    contrib = contrib.numpy().sum(0)  # (6, 6): a window spans every channel
    total, count = np.zeros((6, 6)), np.zeros((6, 6))
    for i in range(6 - k + 1):
        for j in range(6 - k + 1):
            total[i : i + k, j : j + k] += contrib[i : i + k, j : j + k].sum()
            count[i : i + k, j : j + k] += 1
    want = np.broadcast_to(total / count, shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_captum_occlusion_window_1_on_a_relu_net_equals_one_element_deletions():
    # f(x) - f(x with element i set to the baseline), computed in float64 one element at
    # a time: catches any baseline, sign or bookkeeping error on a non-linear model
    model = TinyDetector("defocus", size=8, width=4, seed=3).eval()
    gen = torch.Generator().manual_seed(6)
    background = torch.rand((2, 1, 8, 8), generator=gen)
    x = torch.rand((2, 1, 8, 8), generator=gen)
    e = get_explainer("captum-occlusion", model.classify, background, window=1, stride=1)
    got = e.attribute(x, ["u", "v"]).double()
    m64 = TinyDetector("defocus", size=8, width=4, seed=3).double().eval()
    base = background.double().mean(0)
    want = torch.empty_like(got)
    with torch.no_grad():
        for j in range(len(x)):
            xj = x[j].double()
            fx = float(m64.classify(xj[None]))
            deleted = xj.expand(64, 1, 8, 8).clone()
            for p in range(64):
                deleted[p, 0, p // 8, p % 8] = base[0, p // 8, p % 8]
            want[j, 0] = (fx - m64.classify(deleted)[:, 0]).reshape(8, 8)
    assert want.abs().max() > 1e-3  # the deletions do move the logit
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_fold_batchnorm_weights_equal_the_float64_formula():
    # w' = w g / sqrt(v + eps), b' = (b - m) g / sqrt(v + eps) + beta, computed here in
    # float64: catches a missing eps, mean, bias or scale (below the output check's rtol)
    from cache.explainers import fold_batchnorm

    model = _BNNet().eval()
    model.conv2.bias.data.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    for bn in (model.bn1, model.bn2):
        bn.eps = 0.05  # large enough that dropping it changes the weights visibly
    background, _ = _bn_data()
    folded, n = fold_batchnorm(model, background)
    assert n == 2
    for conv, bn, new in ((model.conv1, model.bn1, folded.conv1), (model.conv2, model.bn2,
                          folded.conv2)):  # fmt: skip
        g = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        b = conv.bias.double() if conv.bias is not None else torch.zeros_like(g)
        want_w = conv.weight.double() * g[:, None, None, None]
        want_b = (b - bn.running_mean.double()) * g + bn.bias.double()
        torch.testing.assert_close(new.weight.double(), want_w, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(new.bias.double(), want_b, rtol=1e-6, atol=1e-7)
