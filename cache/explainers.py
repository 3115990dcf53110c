"""Attribution methods behind one interface, seeded per sample (torch).

>>> e = get_explainer("shap-gradient", model.classify, background, nsamples=200, seed=0)
>>> attr = e.attribute(maps, ids)                    # same shape as maps   # doctest: +SKIP
>>> attr, completeness = e.attribute(maps, ids, return_completeness=True)  # doctest: +SKIP

``model_fn`` maps a batch ``(B, *shape)`` to one logit per sample, ``(B,)`` or
``(B, 1)``; ``background`` is ``(M, *shape)``. Every explainer works on one
sample at a time with that sample's own seed, derived from ``(seed, id)``
by :func:`cache.sampling.sample_seed`, and batches internally over
interpolation points, baselines or occlusion windows. So a sample's
attributions do not depend on the batch it came in, the shard layout or the
worker count.

Methods
-------
``shap-gradient``
    Expected gradients, as ``shap.GradientExplainer`` (the paper's choice).
    ``backend="native"`` (default) is a batched reimplementation that draws
    exactly shap's points for ``sampling="shap"`` (the tests check it agrees
    with ``shap.GradientExplainer(...).shap_values(x, nsamples, rseed=seed)``
    to float rounding); ``backend="shap"`` calls shap itself, one sample at a
    time with ``rseed`` = the sample seed. ``sampling="stratified"`` is the
    faster scheme of :mod:`cache.sampling`.
``captum-gradientshap``
    ``captum.attr.GradientShap`` with the background as baseline distribution.
``captum-ig``
    ``captum.attr.IntegratedGradients``; ``baseline="background"`` averages
    IG over every background image (``n_steps`` each), so it estimates the
    same quantity as expected gradients deterministically; ``"mean"`` and
    ``"zeros"`` use one baseline. Captum's convergence delta is recorded.
``captum-deeplift``
    ``captum.attr.DeepLiftShap`` (DeepLift averaged over the background).
    Needs a model built from ``torch.nn`` modules (non-linearities as
    modules, not reused, not in-place).
``captum-occlusion``
    ``captum.attr.Occlusion`` with a square window replaced by the baseline.

Completeness is ``sum(attr) - (f(x) - f_ref)`` per sample, with
``f_ref = mean f(background)`` for the background-based methods and
``f(baseline)`` for a single baseline (``Explainer.reference`` says which).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from cache.sampling import SCHEMES, draw_points, sample_seed

__all__ = [
    "EXPLAINERS",
    "ExplainerConfig",
    "Explainer",
    "completeness_reference",
    "fold_batchnorm",
    "get_explainer",
]

#: Names accepted by :func:`get_explainer`.
EXPLAINERS = (
    "shap-gradient",
    "captum-gradientshap",
    "captum-ig",
    "captum-deeplift",
    "captum-occlusion",
)

_PARAMS = {
    "shap-gradient": ("nsamples", "sampling", "backend"),
    "captum-gradientshap": ("nsamples",),
    "captum-ig": ("n_steps", "ig_method", "baseline"),
    "captum-deeplift": (),
    "captum-occlusion": ("window", "stride", "baseline"),
}


@dataclass(frozen=True)
class ExplainerConfig:
    """Settings of an explainer; :meth:`to_dict` goes into the cache manifest.

    Parameters
    ----------
    name : str
        One of :data:`EXPLAINERS`.
    seed : int
        Run seed; each sample's seed derives from it and the sample id.
    nsamples : int
        Gradient evaluations per sample (``shap-gradient``, ``captum-gradientshap``).
    sampling : {"shap", "iid", "stratified"}
        Sampling scheme of ``shap-gradient`` (see :mod:`cache.sampling`).
    backend : {"native", "shap"}
        ``shap-gradient`` implementation.
    n_steps : int
        Integration steps per baseline of ``captum-ig``.
    ig_method : str
        Captum's integration rule for ``captum-ig`` (``"gausslegendre"``,
        ``"riemann_trapezoid"``, ...).
    baseline : {"background", "mean", "zeros"}
        Reference of ``captum-ig`` and ``captum-occlusion``: every background
        image (averaged), their mean image, or zeros. Occlusion accepts only
        ``"mean"`` and ``"zeros"`` (``"background"`` means ``"mean"`` there).
    window, stride : int
        Occlusion window side and stride in pixels (last two axes).
    batch_points : int or None
        Model evaluations per forward/backward pass; ``None`` (default)
        picks ``2**18 / (H * W)`` on the CPU (``2**22 / (H * W)`` on CUDA),
        clipped to [4, 512]: 64 points per pass at 64x64, the best or near
        it for the small CNNs we measured (larger passes overflow the CPU
        caches; the best value depends on the model's activation sizes).
        Changes results only at float rounding, so it is not part of
        :meth:`to_dict`.
    """

    name: str = "shap-gradient"
    seed: int = 0
    nsamples: int = 200
    sampling: str = "shap"
    backend: str = "native"
    n_steps: int = 20
    ig_method: str = "gausslegendre"
    baseline: str = "background"
    window: int = 8
    stride: int = 4
    batch_points: int | None = None

    def __post_init__(self):
        if self.name not in EXPLAINERS:
            raise ValueError(f"explainer must be one of {EXPLAINERS}, got {self.name!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for key in ("nsamples", "n_steps", "window", "stride", "batch_points"):
            value = getattr(self, key)
            if key == "batch_points" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if self.sampling not in SCHEMES:
            raise ValueError(f"sampling must be one of {SCHEMES}, got {self.sampling!r}")
        if self.backend not in ("native", "shap"):
            raise ValueError(f"backend must be 'native' or 'shap', got {self.backend!r}")
        if self.backend == "shap" and self.sampling != "shap":
            raise ValueError(
                f"backend='shap' draws shap's own points; sampling must be 'shap', "
                f"got {self.sampling!r}"
            )
        if self.baseline not in ("background", "mean", "zeros"):
            raise ValueError(
                f"baseline must be 'background', 'mean' or 'zeros', got {self.baseline!r}"
            )
        methods = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right")
        if self.ig_method not in methods + ("riemann_middle",):
            raise ValueError(f"ig_method must be one of {methods}, got {self.ig_method!r}")

    def to_dict(self) -> dict:
        """Return the name, seed and the parameters this explainer uses."""
        full = asdict(self)
        return {"name": self.name, "seed": int(self.seed)} | {
            k: full[k] for k in _PARAMS[self.name]
        }


def completeness_reference(config: ExplainerConfig) -> str:
    """Return what ``f_ref`` in an explainer's completeness is, for the manifest."""
    if config.name == "captum-occlusion" or (
        config.name == "captum-ig" and config.baseline != "background"
    ):
        return f"f(baseline={config.baseline})"
    return "mean f(background)"


class _Forward(nn.Module):
    """``model_fn`` as a module returning ``(B,)`` (or ``(B, 1)`` with ``keepdim``).

    When ``model_fn`` is a bound method of a module (``model.classify``) or a
    module, that module is registered as a child so that DeepLift's hooks see
    its layers.
    """

    def __init__(self, model_fn: Callable, keepdim: bool = False):
        super().__init__()
        owner = model_fn if isinstance(model_fn, nn.Module) else getattr(model_fn, "__self__", None)
        if isinstance(owner, nn.Module):
            self.owner = owner
        self._fn = model_fn
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._fn(x)
        if out.ndim == 0 or out.shape[0] != x.shape[0] or out[0].numel() != 1:
            raise ValueError(
                f"model_fn must return one logit per sample, shape (B,) or (B, 1); "
                f"got {tuple(out.shape)} for a batch of {x.shape[0]}"
            )
        out = out.reshape(x.shape[0])
        return out[:, None] if self.keepdim else out


def _bn_replacement(bn: nn.Module) -> nn.Module | None:
    """Return what is left of a batch norm folded into its convolution (``None``: unknown)."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    # timm's BatchNormAct2d: batch norm, then dropout and activation modules
    if type(bn).__name__ == "BatchNormAct2d" and isinstance(getattr(bn, "act", None), nn.Module):
        return nn.Sequential(getattr(bn, "drop", nn.Identity()), bn.act)
    return None


#: activations whose in-place form makes autograd copy the input (their gradient needs it)
_INPUT_SAVING_ACTIVATIONS = (nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Mish)


def fold_batchnorm(
    model: nn.Module, example: torch.Tensor, method: str = "classify", rtol: float = 1e-4
) -> tuple[nn.Module, int]:
    """Return a copy of an eval-mode ``model`` with batch norms folded into their convolutions.

    A ``Conv2d`` whose output goes straight into an eval-mode ``BatchNorm2d``
    (or timm's ``BatchNormAct2d``), each called once in ``model.<method>``,
    gets weights ``w * g / sqrt(v + eps)`` and bias ``(b - m) g / sqrt(v + eps) + beta``,
    and the batch norm is dropped (its activation kept): the same function up
    to float rounding, with fewer operations in the forward and backward
    passes. The pairs are found by running ``model.<method>(example)`` once
    with hooks. In the copy, in-place ``Hardswish``, ``Hardsigmoid``, ``SiLU``
    and ``Mish`` modules are made out-of-place: under autograd an in-place
    activation whose gradient needs its input copies that input first (for
    MobileNetV3 at 64x64 px, 3 MB per pass of 50 points). The copy is checked
    against the model on ``example`` and the model itself is returned (with
    0) if they differ by more than ``rtol`` relative to the largest output,
    or if nothing can be folded.

    Parameters
    ----------
    model : torch.nn.Module
        In ``eval()`` mode; it is not changed.
    example : torch.Tensor
        A batch of inputs of ``model.<method>``, e.g. the background.
    method : str
        The method to fold for (``"classify"``).
    rtol : float
        Tolerance of the check.

    Returns
    -------
    (torch.nn.Module, int)
        The folded copy and the number of batch norms folded.
    """
    import copy

    if model.training:
        return model, 0
    folded = copy.deepcopy(model)
    produced: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    calls: dict[nn.Module, int] = {}
    fed_by: dict[nn.Module, nn.Module | None] = {}

    def conv_hook(module, inputs, output):
        calls[module] = calls.get(module, 0) + 1
        produced[id(output)] = (module, output)  # the tensor is kept: its id is not reused

    def bn_hook(module, inputs, output):
        calls[module] = calls.get(module, 0) + 1
        source = produced.get(id(inputs[0]))
        fed_by[module] = source[0] if source is not None and source[1] is inputs[0] else None

    hooks = [
        (m, conv_hook if type(m) is nn.Conv2d else bn_hook)
        for m in folded.modules()
        if type(m) is nn.Conv2d or isinstance(m, nn.BatchNorm2d)
    ]
    with _forward_hooks(hooks), torch.no_grad():
        getattr(folded, method)(example)
    produced.clear()
    parents = {}
    for parent in folded.modules():
        for name, child in parent.named_children():
            parents.setdefault(child, []).append((parent, name))
    n = 0
    for bn, conv in fed_by.items():
        replacement = _bn_replacement(bn)
        if (
            conv is None
            or replacement is None
            or calls.get(bn) != 1
            or calls.get(conv) != 1
            or bn.training
            or bn.running_mean is None
            or bn.running_var is None
            or len(parents.get(bn, ())) != 1
        ):
            continue
        with torch.no_grad():
            w = conv.weight
            scale = torch.rsqrt(bn.running_var.double() + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight.double()
            shift = -bn.running_mean.double() * scale
            if bn.bias is not None:
                shift = shift + bn.bias.double()
            if conv.bias is not None:
                shift = shift + conv.bias.double() * scale
            fmt = _format_of(w)
            new_w = (w.double() * scale.reshape(-1, 1, 1, 1)).to(w.dtype)
            grad = w.requires_grad
            conv.weight = nn.Parameter(new_w.contiguous(memory_format=fmt), requires_grad=grad)
            conv.bias = nn.Parameter(shift.to(w.dtype), requires_grad=grad)
        parent, name = parents[bn][0]
        setattr(parent, name, replacement)
        n += 1
    if n == 0:
        return model, 0
    for m in folded.modules():
        if type(m) in _INPUT_SAVING_ACTIVATIONS and getattr(m, "inplace", False):
            m.inplace = False
    with torch.no_grad():
        want = getattr(model, method)(example).double()
        got = getattr(folded, method)(example).double()
    scale = float(want.abs().max()) if want.numel() else 0.0
    if want.shape != got.shape or float((got - want).abs().max()) > rtol * max(scale, 1e-6):
        return model, 0
    return folded, n


def _sums_by_group(values: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Return ``out[j] = values[group == j].sum(0)``, shape ``(n_groups, *values.shape[1:])``.

    One matrix product with a 0/1 matrix (several times faster on CPU than
    ``index_add_`` or a loop of sums); a 4-D channels-last ``values`` is
    summed in that layout and the result keeps it.
    """
    onehot = values.new_zeros((n_groups, len(values)))
    onehot[group, torch.arange(len(values), device=values.device)] = 1
    if values.ndim == 4 and _format_of(values) is torch.channels_last:
        _, c, h, w = values.shape
        flat = values.permute(0, 2, 3, 1).reshape(len(values), -1)
        return (onehot @ flat).reshape(n_groups, h, w, c).permute(0, 3, 1, 2)
    return (onehot @ values.reshape(len(values), -1)).reshape(n_groups, *values.shape[1:])


def _balanced_passes(n: int, per_pass: int) -> list[slice]:
    """Split ``n`` points into the fewest passes of at most ``per_pass``, sizes within one.

    ``_balanced_passes(200, 64)`` gives four passes of 50 rather than 64, 64, 64
    and 8 (a small last pass costs nearly as much per pass as a full one).
    """
    per_pass = max(1, int(per_pass))
    k = -(-n // per_pass)
    if k <= 0:
        return []
    base, extra = divmod(n, k)
    out, start = [], 0
    for i in range(k):
        size = base + (i < extra)
        out.append(slice(start, start + size))
        start += size
    return out


@contextlib.contextmanager
def _forward_hooks(pairs):
    """Register ``(module, hook)`` forward hooks for the duration of a ``with`` block."""
    handles = []
    try:
        for module, hook in pairs:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def _format_of(t: torch.Tensor) -> torch.memory_format:
    """Return ``channels_last`` for a 4-D tensor in that layout, else ``contiguous_format``."""
    if t.ndim == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed numpy's global generator and torch's CPU generator, restoring both after."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


class Explainer:
    """Base class: validates inputs, loops over samples with their seeds, records completeness.

    Parameters
    ----------
    model_fn : callable
        ``(B, *shape)`` tensor to ``(B,)`` or ``(B, 1)`` logits.
    background : torch.Tensor of shape (M, *shape)
        Reference samples (e.g. real training images or their defocus maps).
    config : ExplainerConfig
        The settings.
    """

    def __init__(self, model_fn: Callable, background: torch.Tensor, config: ExplainerConfig):
        if not callable(model_fn):
            raise ValueError(f"model_fn must be callable, got {type(model_fn).__name__}")
        background = torch.as_tensor(background)
        if background.ndim < 2 or background.shape[0] < 1:
            raise ValueError(
                f"background must have shape (M, *shape) with M >= 1, got {tuple(background.shape)}"
            )
        if not background.is_floating_point():
            raise ValueError(f"background must be a float tensor, got {background.dtype}")
        self.config = config
        #: Feed 4-D interpolation points in channels-last layout (faster CPU convolutions
        #: when the model's weights are channels-last too; equal up to float rounding).
        self.channels_last = False
        self.forward = _Forward(model_fn)
        self.background = background.detach().float()
        self.shape = tuple(self.background.shape[1:])
        self.ref_value = self._reference_value()

    @property
    def device(self) -> torch.device:
        """Device of the background (inputs are moved there)."""
        return self.background.device

    @property
    def reference(self) -> str:
        """What ``f_ref`` of the completeness is (see :func:`completeness_reference`)."""
        return completeness_reference(self.config)

    def to_dict(self) -> dict:
        """Return the parameters for the manifest (with the completeness reference)."""
        return self.config.to_dict() | {"completeness_reference": self.reference}

    @property
    def points_per_pass(self) -> int:
        """Model evaluations per forward/backward pass (``config.batch_points`` or automatic)."""
        if self.config.batch_points is not None:
            return int(self.config.batch_points)
        spatial = int(np.prod(self.shape[-2:])) if len(self.shape) >= 2 else int(self.shape[-1])
        budget = 2**22 if self.device.type == "cuda" else 2**18
        return int(min(512, max(4, budget // max(spatial, 1))))

    @torch.no_grad()
    def _f(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``f(x)`` in chunks of :attr:`points_per_pass`, shape ``(B,)``, float64."""
        step = self.points_per_pass
        return torch.cat([self.forward(x[i : i + step]).double() for i in range(0, len(x), step)])

    def _reference_value(self) -> torch.Tensor:
        return self._f(self.background).mean()

    def attribute(
        self,
        inputs: torch.Tensor,
        ids: Sequence[str],
        return_completeness: bool = False,
    ):
        """Attribute ``f(inputs)`` to the input elements.

        Parameters
        ----------
        inputs : torch.Tensor of shape (B, *shape)
            Same per-sample shape as the background.
        ids : sequence of str
            One id per sample; with the run seed it seeds the sample's draws.
        return_completeness : bool
            Also return ``sum(attr) - (f(x) - f_ref)`` per sample.

        Returns
        -------
        attr : torch.Tensor of shape (B, *shape), float32
        completeness : torch.Tensor of shape (B,), float32
            Only with ``return_completeness``.
        """
        inputs = torch.as_tensor(inputs)
        if tuple(inputs.shape[1:]) != self.shape:
            raise ValueError(
                f"inputs must have shape (B, {', '.join(map(str, self.shape))}) like the "
                f"background, got {tuple(inputs.shape)}"
            )
        ids = [str(i) for i in ids]
        if len(ids) != inputs.shape[0]:
            raise ValueError(f"got {len(ids)} ids for {inputs.shape[0]} inputs")
        x = inputs.detach().float().to(self.device)
        out = torch.empty_like(x)
        for j, sid in enumerate(ids):
            out[j] = self._attribute_one(x[j : j + 1], sample_seed(self.config.seed, sid))[0]
        if not return_completeness:
            return out
        fx = self._f(x)
        total = out.double().reshape(len(x), -1).sum(1)
        return out, (total - (fx - self._ref_for(x))).float()

    def _ref_for(self, x: torch.Tensor) -> torch.Tensor:
        return self.ref_value.expand(len(x))

    def _attribute_one(self, x: torch.Tensor, seed: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class _Tap(torch.autograd.Function):
    """Identity on a tensor (marked as changed in place) that records its gradient.

    The backward pass stops there: the gradient is appended to ``store`` and
    none flows further back, so a forward hook can tap a layer's output
    without copying it (later layers may still work in place on it).
    """

    @staticmethod
    def forward(ctx, x, anchor, store):
        ctx.mark_dirty(x)
        ctx.store = store
        return x

    @staticmethod
    def backward(ctx, grad):
        ctx.store.append(grad)
        return None, grad.new_zeros(()), None


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the first convolution has run."""


class ExpectedGradients(Explainer):
    """``shap-gradient``: expected gradients, batched, with shap's or a stratified sampling.

    Attributes
    ----------
    stem_shortcut : bool
        Allow the exact shortcut through an affine stem (default ``True``).
        When every gradient path from the input to the logit goes through the
        first ``Conv2d`` called and the map from the input to that
        convolution's output is affine (both checked on the first call), the
        backward passes stop at that output; the gradients there are summed
        per background image and taken back to the input once per background
        image, not once per point. The Jacobian of an affine map is
        constant, so the result is the same up to float rounding.
    """

    def __init__(self, model_fn, background, config):
        super().__init__(model_fn, background, config)
        self._shap = None
        self.stem_shortcut = True
        self._stem: nn.Module | None | bool = False  # False: not probed yet
        if config.backend == "shap":
            import shap

            self._shap = shap.GradientExplainer(
                _Forward(model_fn, keepdim=True), self.background, batch_size=self.points_per_pass
            )

    # ----------------------------------------------------------- the stem shortcut

    def _stem_output(self, points: torch.Tensor, stem: nn.Module) -> torch.Tensor:
        """Return the output of ``stem`` for ``points`` (the forward pass stops there)."""
        got = []

        def stop(module, inputs, output):
            got.append(output)
            raise _StopForward

        with _forward_hooks([(stem, stop)]):
            try:
                self.forward(points)
            except _StopForward:
                pass
        if len(got) != 1:
            raise RuntimeError("the stem convolution did not run exactly once")
        return got[0]

    def _find_stem(self) -> nn.Module | None:
        """Return the first convolution if the shortcut is exact for this model, else ``None``."""
        owner = getattr(self.forward, "owner", None)
        if owner is None:
            return None
        convs = [m for m in owner.modules() if type(m) is nn.Conv2d]
        if not convs:
            return None
        order: list[nn.Module] = []
        probe = self.background[:2]
        with _forward_hooks([(m, lambda module, i, o: order.append(module)) for m in convs]):
            with torch.no_grad():
                self.forward(probe)
        if not order or order.count(order[0]) != 1:
            return None
        stem = order[0]

        # 1. every gradient path from the input to the logit goes through the stem's output
        def cut(module, inputs, output):
            return output.detach().requires_grad_(True).clone()  # later layers may work in place

        p = probe.clone().requires_grad_(True)
        with torch.enable_grad(), _forward_hooks([(stem, cut)]):
            out = self.forward(p)
            (g,) = torch.autograd.grad(out.sum(), p, allow_unused=True)
        if g is not None:
            return None
        # 2. the map from the input to the stem's output is affine (checked off the data,
        #    with weights summing to one but outside [0, 1])
        gen = torch.Generator(device="cpu").manual_seed(0)
        lo, hi = float(self.background.min()), float(self.background.max())
        span = max(hi - lo, 1e-3)
        a, b, c = (
            (lo + span * torch.randn((1, *self.shape), generator=gen)).to(self.device)
            for _ in range(3)
        )
        with torch.no_grad():
            za, zb, zc = (self._stem_output(v, stem).double() for v in (a, b, c))
            mix = self._stem_output(1.7 * a - 1.1 * b + 0.4 * c, stem).double()
        want = 1.7 * za - 1.1 * zb + 0.4 * zc
        scale = max(float(za.abs().max()), float(zb.abs().max()), float(zc.abs().max()), 1e-12)
        if float((mix - want).abs().max()) > 1e-4 * scale:
            return None
        # 3. the shortcut reproduces the full gradient on two background images
        p = probe.clone().requires_grad_(True)
        with torch.enable_grad():
            (full,) = torch.autograd.grad(self.forward(p).sum(), p)
        return stem if self._check_shortcut(stem, probe, full) else None

    def _check_shortcut(self, stem, probe, full) -> bool:
        gz = self._stem_grads(probe, stem, torch.ones(len(probe), device=self.device))
        short = self._input_grads(stem, gz)
        scale = max(float(full.abs().max()), 1e-12)
        return float((short - full).abs().max()) <= 1e-3 * scale

    def _stem_grads(self, points, stem, w) -> torch.Tensor:
        """Return the gradient of ``sum_k w_k f(points_k)`` at the stem's output."""
        store: list[torch.Tensor] = []
        anchor = torch.zeros((), device=self.device, requires_grad=True)

        def tap(module, inputs, output):
            return _Tap.apply(output, anchor, store)

        with torch.enable_grad(), _forward_hooks([(stem, tap)]):
            out = self.forward(points)
            torch.autograd.grad(out, anchor, grad_outputs=w.to(out.dtype))
        if len(store) != 1:
            raise RuntimeError("the stem convolution did not run exactly once")
        return store[0]

    def _input_grads(self, stem, gz: torch.Tensor) -> torch.Tensor:
        """Take gradients at the stem's output back to the input (the map is affine)."""
        p = self.background[:1].expand(len(gz), *self.shape).clone().requires_grad_(True)
        with torch.enable_grad():
            z = self._stem_output(p, stem)
            (g,) = torch.autograd.grad(
                z, p, grad_outputs=gz.to(z.dtype).contiguous(memory_format=_format_of(z))
            )
        return g

    # ----------------------------------------------------------- attribution

    def _attribute_one(self, x, seed):
        cfg = self.config
        if self._shap is not None:
            state = np.random.get_state()
            try:
                vals = self._shap.shap_values(x, nsamples=cfg.nsamples, rseed=seed)
            finally:
                np.random.set_state(state)
            vals = np.asarray(vals)
            return torch.from_numpy(vals.reshape(x.shape)).float()
        stem = None
        if self.stem_shortcut:
            if self._stem is False:  # probed on the first call
                try:
                    self._stem = self._find_stem()
                except Exception:  # noqa: BLE001 - a model the probe cannot handle: no shortcut
                    self._stem = None
            stem = self._stem
        index, t, weight = draw_points(cfg.sampling, cfg.nsamples, len(self.background), seed)
        # the points in order of their background image (a fixed function of the draws);
        # then sum_k w_k g_k (x - b_k) = sum_j (x - b_j) G_j, where G_j sums the weighted
        # gradients w_k g_k of background j's points (the weights seed the backward pass)
        order = np.argsort(index, kind="stable")
        index, t, weight = index[order], t[order], weight[order]
        fmt = self._memory_format()
        bg = self._background_in(fmt)
        xf = x.contiguous(memory_format=fmt)
        grads = None
        index_t = torch.from_numpy(index).to(self.device)
        for sl in _balanced_passes(cfg.nsamples, self.points_per_pass):
            tt = torch.from_numpy(t[sl]).float().to(self.device).reshape(-1, *[1] * len(self.shape))
            # t x + (1 - t) b, with two fresh tensors instead of four (same float operations)
            b = bg[index_t[sl]].mul_(1 - tt)
            points = torch.mul(tt, xf).add_(b).contiguous(memory_format=fmt)
            del b
            w = torch.from_numpy(weight[sl]).float().to(self.device)
            if stem is not None:
                # gradients at the stem's output; to the input once per background image below
                grad = self._stem_grads(points, stem, w)
            else:
                points.requires_grad_(True)
                with torch.enable_grad():
                    out = self.forward(points)
                    (grad,) = torch.autograd.grad(out, points, grad_outputs=w.to(out.dtype))
            # per background image, the sum of this pass's weighted gradients (float32, as
            # a sum over the pass would be), accumulated over passes in float64
            part = _sums_by_group(grad, index_t[sl], len(bg))
            grads = part.double() if grads is None else grads.add_(part)
        if stem is not None:
            grads = self._input_grads(stem, grads.float()).double()
        diff = (xf - bg).double()
        return (grads * diff).sum(0, keepdim=True).float()

    def _memory_format(self) -> torch.memory_format:
        if self.channels_last and len(self.shape) == 3:
            return torch.channels_last
        return torch.contiguous_format

    def _background_in(self, fmt: torch.memory_format) -> torch.Tensor:
        """Return the background in memory layout ``fmt`` (kept for the next sample)."""
        cached = getattr(self, "_bg_layout", None)
        if cached is None or cached[0] != fmt:
            cached = (fmt, self.background.contiguous(memory_format=fmt))
            self._bg_layout = cached
        return cached[1]


class CaptumGradientShap(Explainer):
    """``captum-gradientshap``: captum's GradientShap, seeded per sample."""

    def __init__(self, model_fn, background, config):
        super().__init__(model_fn, background, config)
        from captum.attr import GradientShap

        self._method = GradientShap(self.forward)

    def _attribute_one(self, x, seed):
        with _seeded(seed):
            attr = self._method.attribute(
                x, baselines=self.background, n_samples=self.config.nsamples, stdevs=0.0
            )
        return attr.detach().float()


class CaptumIG(Explainer):
    """``captum-ig``: integrated gradients from each background image (averaged) or one baseline.

    Attributes
    ----------
    last_delta : torch.Tensor of shape (B,)
        Captum's convergence delta of the last :meth:`attribute` call (mean
        over baselines for ``baseline="background"``).
    """

    def __init__(self, model_fn, background, config):
        super().__init__(model_fn, background, config)
        from captum.attr import IntegratedGradients

        self._method = IntegratedGradients(self.forward)
        self._deltas: list[float] = []

    def _baselines(self) -> torch.Tensor:
        if self.config.baseline == "background":
            return self.background
        if self.config.baseline == "mean":
            return self.background.mean(0, keepdim=True)
        return torch.zeros_like(self.background[:1])

    def _reference_value(self):
        return self._f(self._baselines()).mean()

    def attribute(self, inputs, ids, return_completeness=False):
        """Attribute as :meth:`Explainer.attribute`; sets :attr:`last_delta`."""
        self._deltas = []
        result = super().attribute(inputs, ids, return_completeness)
        self.last_delta = torch.tensor(self._deltas, dtype=torch.float32)
        return result

    def _attribute_one(self, x, seed):
        base = self._baselines()
        k = len(base)
        per_pass = self.points_per_pass
        attr, delta = self._method.attribute(
            x.expand(k, *self.shape),
            baselines=base,
            n_steps=self.config.n_steps,
            method=self.config.ig_method,
            internal_batch_size=per_pass,
            return_convergence_delta=True,
        )
        self._deltas.append(float(delta.double().mean()))
        return attr.detach().double().mean(0, keepdim=True).float()


class CaptumDeepLift(Explainer):
    """``captum-deeplift``: DeepLift averaged over the background (captum's DeepLiftShap)."""

    def __init__(self, model_fn, background, config):
        super().__init__(model_fn, background, config)
        from captum.attr import DeepLift, DeepLiftShap

        # DeepLiftShap needs at least two baselines; with one it is plain DeepLift
        many = len(self.background) > 1
        self._method = DeepLiftShap(self.forward) if many else DeepLift(self.forward)

    def _attribute_one(self, x, seed):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
            attr = self._method.attribute(x, baselines=self.background)
        return attr.detach().float()


class CaptumOcclusion(Explainer):
    """``captum-occlusion``: a sliding square window replaced by the baseline."""

    def __init__(self, model_fn, background, config):
        super().__init__(model_fn, background, config)
        from captum.attr import Occlusion

        self._method = Occlusion(self.forward)
        if len(self.shape) < 2:
            raise ValueError(f"occlusion needs inputs with two spatial axes, got {self.shape}")

    def _baseline(self) -> torch.Tensor:
        if self.config.baseline == "zeros":
            return torch.zeros_like(self.background[:1])
        return self.background.mean(0, keepdim=True)

    def _reference_value(self):
        return self._f(self._baseline()).mean()

    def _attribute_one(self, x, seed):
        w, s = self.config.window, self.config.stride
        lead = tuple(self.shape[:-2])
        attr = self._method.attribute(
            x,
            sliding_window_shapes=lead + (min(w, self.shape[-2]), min(w, self.shape[-1])),
            strides=(1,) * len(lead) + (s, s) if lead else (s, s),
            baselines=self._baseline(),
            perturbations_per_eval=self.points_per_pass,
        )
        return attr.detach().float()


_CLASSES = {
    "shap-gradient": ExpectedGradients,
    "captum-gradientshap": CaptumGradientShap,
    "captum-ig": CaptumIG,
    "captum-deeplift": CaptumDeepLift,
    "captum-occlusion": CaptumOcclusion,
}


def get_explainer(name: str, model_fn: Callable, background: torch.Tensor, **params) -> Explainer:
    """Build an explainer by name.

    Parameters
    ----------
    name : str
        One of :data:`EXPLAINERS`.
    model_fn : callable
        ``(B, *shape)`` tensor to ``(B,)`` or ``(B, 1)`` logits, e.g.
        ``model.classify``. Put the model in ``eval()`` mode first.
    background : torch.Tensor of shape (M, *shape)
        Reference samples.
    **params
        Fields of :class:`ExplainerConfig` (``nsamples``, ``seed``, ``sampling``...).

    Returns
    -------
    Explainer
        With ``.attribute(inputs, ids, return_completeness=False)`` and ``.to_dict()``.
    """
    if name not in _CLASSES:
        raise ValueError(f"explainer must be one of {EXPLAINERS}, got {name!r}")
    unknown = sorted(set(params) - set(ExplainerConfig.__dataclass_fields__) - {"name"})
    if unknown:
        raise ValueError(
            f"unknown explainer parameters {unknown}; known: "
            f"{sorted(set(ExplainerConfig.__dataclass_fields__) - {'name'})}"
        )
    config = ExplainerConfig(name=name, **params)
    return _CLASSES[name](model_fn, background, config)
