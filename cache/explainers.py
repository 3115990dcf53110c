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


class ExpectedGradients(Explainer):
    """``shap-gradient``: expected gradients, batched, with shap's or a stratified sampling."""

    def __init__(self, model_fn, background, config):
        super().__init__(model_fn, background, config)
        self._shap = None
        if config.backend == "shap":
            import shap

            self._shap = shap.GradientExplainer(
                _Forward(model_fn, keepdim=True), self.background, batch_size=self.points_per_pass
            )

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
        index, t, weight = draw_points(cfg.sampling, cfg.nsamples, len(self.background), seed)
        acc = torch.zeros(x.shape[1:], dtype=torch.float64, device=self.device)
        step = self.points_per_pass
        for s in range(0, cfg.nsamples, step):
            sl = slice(s, s + step)
            b = self.background[torch.from_numpy(index[sl]).to(self.device)]
            tt = torch.from_numpy(t[sl]).float().to(self.device).reshape(-1, *[1] * len(self.shape))
            points = (tt * x + (1 - tt) * b).detach()
            if self.channels_last and points.ndim == 4:
                points = points.contiguous(memory_format=torch.channels_last)
            points.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self.forward(points).sum(), points)
            w = torch.from_numpy(weight[sl]).to(self.device).reshape(tt.shape)
            acc += (grad.double() * (x - b).double() * w).sum(0)
        return acc.float()[None]


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
