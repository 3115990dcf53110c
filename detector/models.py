"""Deepfake detectors: a timm backbone on defocus maps, on RGB images, or on both.

Three kinds, one surface (``build_detector(kind, ...)``):

``"defocus"``
    image -> defocus map (:func:`detector.defocus.estimate_defocus`, no
    gradient) -> resized to ``image_size`` -> per-sample min-max
    ``(m - min) / (max - min + 1e-8)`` -> repeated to 3 channels -> backbone
    -> 1 logit. This is the paper's ``DefocusNet``.
``"rgb"``
    image -> resized to ``image_size`` -> (``[-1, 1]`` by default, as the
    paper's loader normalises) -> backbone -> 1 logit.
``"fusion"``
    the paper's ``MultiBranchDefocusNet``: an RGB backbone and a one-channel
    defocus backbone, pooled features multiplied elementwise, then a linear
    layer -> 1 logit. Its parameter names match the paper's
    (``rgb_backbone.``, ``defocus_backbone.``, ``classifier.``).

Every detector exposes

- ``model_input(images)``: what :meth:`classify` takes, computed without
  gradient: ``(B, 1, S, S)`` maps (defocus), ``(B, 3, S, S)`` images (rgb),
  ``(B, 4, S, S)`` images and map stacked (fusion);
- ``classify(x) -> (B, 1)`` logits: the function attributions explain;
- ``features_from_input(x) -> (B, D)`` pooled penultimate features;
- ``defocus_input(images) -> (B, 1, S, S)``, ``features(images) -> (B, D)``,
  ``forward(images) -> (B, 1)``;
- ``config``: a plain dict that :func:`build_detector` accepts back
  (``build_detector(**model.config)``), stored in checkpoints.

Nothing is downloaded: backbones are built with ``pretrained=False``;
``pretrained`` may name a local weights file for the backbone.

:func:`load_checkpoint` builds the detector a checkpoint describes (or
loads weights into a given one); the file format (checksums, the paper's
layouts, one-line :class:`~detector.checkpoint_format.CheckpointError`)
lives in :mod:`detector.checkpoint_format`, which this module imports;
:mod:`detector.checkpoints` builds on both and never the other way round.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from detector.checkpoint_format import (
    CheckpointError,
    load_weights,
    read_checkpoint,
    read_state_dict,
    save_checkpoint,
    strip_prefix,
)

__all__ = [
    "KINDS",
    "DefocusDetector",
    "Detector",
    "FusionDetector",
    "RGBDetector",
    "build_detector",
    "load_checkpoint",
    "normalize_per_sample",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

#: The detector kinds :func:`build_detector` knows.
KINDS: tuple[str, ...] = ("defocus", "rgb", "fusion")

_INPUT_RANGES = ("unit", "symmetric")


def normalize_per_sample(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min-max normalise each sample over all its elements.

    Parameters
    ----------
    x : torch.Tensor of shape (B, ...)
        Any batch, e.g. defocus maps ``(B, 1, H, W)``.
    eps : float
        Added to ``max - min`` so a constant sample maps to zeros.

    Returns
    -------
    torch.Tensor of the same shape
        ``(x - min) / (max - min + eps)`` with min and max per sample.
    """
    if x.dim() < 2:
        raise ValueError(
            f"x must have a batch axis and at least one more, got shape {tuple(x.shape)}"
        )
    flat = x.reshape(x.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo + eps)).reshape(x.shape)


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _create_backbone(name: str, num_classes: int, in_chans: int = 3) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise ValueError(f"unknown timm backbone {name!r}: {err}") from err


def _load_backbone_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load local backbone weights (any head is ignored) into ``backbone``."""
    state = read_state_dict(path)
    head = {k for k in backbone.state_dict() if k.split(".")[0] in _head_names(backbone)}
    own = backbone.state_dict()
    keep = {
        k: v
        for k, v in state.items()
        if k in own and k not in head and tuple(v.shape) == tuple(own[k].shape)
    }
    missing = sorted(set(own) - set(keep) - head)
    if missing:
        raise ValueError(
            f"pretrained weights {os.fspath(path)!r} do not fit backbone "
            f"{type(backbone).__name__}: first missing key {missing[0]!r} "
            f"({len(missing)} missing)"
        )
    backbone.load_state_dict(keep, strict=False)


def _head_names(backbone: nn.Module) -> set[str]:
    cfg = getattr(backbone, "default_cfg", None) or {}
    name = cfg.get("classifier", "fc")
    names = {name} if isinstance(name, str) else set(name)
    return {n.split(".")[0] for n in names}


def _feature_dim(backbone: nn.Module) -> int:
    """Width ``D`` of a timm backbone's pooled pre-logits features.

    timm's ``num_features`` is the width before a conv head (MobileNetV3:
    288); the features the classifier sees have ``head_hidden_size`` (1024).
    """
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


class Detector(nn.Module):
    """Base class of the three detector kinds (see the module docstring).

    Parameters
    ----------
    image_size : int
        Side ``S`` of the square input the backbone sees.
    defocus_config : DefocusConfig, dict or None
        Settings of the defocus estimator; None means
        ``DefocusConfig(mode="reference", size=image_size)``.
    """

    kind: str = ""

    def __init__(self, image_size: int, defocus_config: Any = None) -> None:
        super().__init__()
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
        self.image_size = image_size
        self._defocus_config = defocus_config
        self.config: dict[str, Any] = {}

    # -- defocus map ------------------------------------------------------------------------
    @property
    def defocus_config(self):
        """The :class:`detector.defocus.DefocusConfig` of this detector."""
        from detector.defocus import DefocusConfig

        cfg = self._defocus_config
        if cfg is None:
            cfg = DefocusConfig(mode="reference", size=self.image_size)
        elif isinstance(cfg, dict):
            cfg = DefocusConfig(**cfg)
        self._defocus_config = cfg
        return cfg

    def _defocus_config_dict(self) -> dict[str, Any] | None:
        cfg = self._defocus_config
        if cfg is None or isinstance(cfg, dict):
            return cfg
        return cfg.to_dict()

    @torch.no_grad()
    def defocus_input(self, images: torch.Tensor) -> torch.Tensor:
        """Return the normalised defocus map the classifier sees.

        Parameters
        ----------
        images : torch.Tensor of shape (B, 3, H, W)
            Float images in [0, 1].

        Returns
        -------
        torch.Tensor of shape (B, 1, S, S)
            The defocus map resized to ``S = image_size`` (bilinear,
            ``align_corners=False``) and min-max normalised per sample to
            [0, 1]; computed without gradient.
        """
        from detector.defocus import estimate_defocus

        _check_images(images)
        maps = estimate_defocus(images.float(), self.defocus_config).defocus
        maps = _resize(maps.to(images.device, torch.float32), self.image_size)
        return normalize_per_sample(maps)

    # -- the common surface -----------------------------------------------------------------
    def model_input(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Return what :meth:`classify` takes, computed from ``(B, 3, H, W)`` images."""
        raise NotImplementedError

    def classify(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Return ``(B, 1)`` logits from the output of :meth:`model_input`."""
        raise NotImplementedError

    def features_from_input(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Return ``(B, D)`` pooled penultimate features from :meth:`model_input` output."""
        raise NotImplementedError

    def classify_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return :meth:`classify` and :meth:`features_from_input` of ``x`` together.

        Subclasses compute both from one pass through the backbone (the logit
        is the last linear layer applied to the features), equal to the two
        separate calls in eval mode.

        Returns
        -------
        (torch.Tensor of shape (B, 1), torch.Tensor of shape (B, D))
        """
        return self.classify(x), self.features_from_input(x)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features.

        Parameters
        ----------
        images : torch.Tensor of shape (B, 3, H, W)
            Float images in [0, 1].

        Returns
        -------
        torch.Tensor of shape (B, D)
            ``D = self.num_features``.
        """
        return self.features_from_input(self.model_input(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of "fake" for a batch of images.

        Parameters
        ----------
        images : torch.Tensor of shape (B, 3, H, W)
            Float images in [0, 1].

        Returns
        -------
        torch.Tensor of shape (B, 1)
        """
        return self.classify(self.model_input(images))

    def _check_input(self, x: torch.Tensor, channels: int, what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(
                f"{self.kind} detector classifies {what} of shape (B, {channels}, S, S), "
                f"got {tuple(x.shape)}"
            )


class _SingleBackbone(Detector):
    """A detector made of one timm backbone with a one-logit head."""

    def __init__(
        self,
        backbone: str,
        image_size: int,
        defocus_config: Any = None,
        pretrained: bool | str | os.PathLike = False,
    ) -> None:
        super().__init__(image_size, defocus_config)
        self.backbone = _create_backbone(backbone, num_classes=1)
        if pretrained:
            _load_backbone_weights(self.backbone, pretrained)
        self.num_features = _feature_dim(self.backbone)

    def _backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def classify_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, 1)`` and features ``(B, D)`` from one backbone pass (eval mode).

        timm heads end in ``classifier(dropout(pre_logits))``; with dropout
        off the logit is the classifier applied to the features. In training
        mode (dropout on) this falls back to the two separate calls.
        """
        if self.training:
            return super().classify_with_features(x)
        feats = self._backbone_features(self._prepare(x))
        return self.backbone.get_classifier()(feats), feats


class DefocusDetector(_SingleBackbone):
    """Backbone on per-sample normalised defocus maps (the paper's ``DefocusNet``).

    See :func:`build_detector` for the parameters.
    """

    kind = "defocus"

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Return :meth:`defocus_input`: ``(B, 1, S, S)`` maps in [0, 1]."""
        return self.defocus_input(images)

    def _prepare(self, maps: torch.Tensor) -> torch.Tensor:
        self._check_input(maps, 1, "maps")
        return maps.repeat(1, 3, 1, 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from normalised defocus maps.

        Parameters
        ----------
        x : torch.Tensor of shape (B, 1, S, S)
            Maps as :meth:`defocus_input` returns them; repeated to 3
            channels inside, so gradients flow back to the one channel.

        Returns
        -------
        torch.Tensor of shape (B, 1)
        """
        return self.backbone(self._prepare(x))

    def features_from_input(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(B, D)`` from ``(B, 1, S, S)`` maps."""
        return self._backbone_features(self._prepare(x))


class RGBDetector(_SingleBackbone):
    """Backbone on RGB images.

    See :func:`build_detector` for the parameters; ``rgb_input_range``
    ``"symmetric"`` maps [0, 1] images to [-1, 1] inside :meth:`classify`
    (the paper's loader normalisation), ``"unit"`` leaves them.
    """

    kind = "rgb"

    def __init__(self, *args, rgb_input_range: str = "symmetric", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if rgb_input_range not in _INPUT_RANGES:
            raise ValueError(
                f"rgb_input_range must be one of {_INPUT_RANGES}, got {rgb_input_range!r}"
            )
        self.rgb_input_range = rgb_input_range

    @torch.no_grad()
    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Return the images resized to ``(B, 3, S, S)``, still in [0, 1]."""
        _check_images(images)
        return _resize(images.float(), self.image_size)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x, 3, "images")
        return x * 2.0 - 1.0 if self.rgb_input_range == "symmetric" else x

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from ``(B, 3, S, S)`` images in [0, 1]; returns ``(B, 1)``."""
        return self.backbone(self._prepare(x))

    def features_from_input(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(B, D)`` from ``(B, 3, S, S)`` images."""
        return self._backbone_features(self._prepare(x))


class FusionDetector(Detector):
    """RGB and defocus branches, features multiplied, then linear (``MultiBranchDefocusNet``).

    The input of :meth:`classify` is ``(B, 4, S, S)``: channels 0-2 the RGB
    image in [0, 1], channel 3 the normalised defocus map. The defocus
    branch takes the one-channel map (``in_chans=1``), as in the paper.
    """

    kind = "fusion"

    def __init__(
        self,
        backbone: str,
        image_size: int,
        defocus_config: Any = None,
        pretrained: bool | str | os.PathLike = False,
        defocus_backbone: str | None = None,
        rgb_input_range: str = "symmetric",
    ) -> None:
        super().__init__(image_size, defocus_config)
        if rgb_input_range not in _INPUT_RANGES:
            raise ValueError(
                f"rgb_input_range must be one of {_INPUT_RANGES}, got {rgb_input_range!r}"
            )
        self.rgb_input_range = rgb_input_range
        self.rgb_backbone = _create_backbone(backbone, num_classes=0)
        self.defocus_backbone = _create_backbone(defocus_backbone or backbone, 0, in_chans=1)
        if pretrained:
            _load_backbone_weights(self.rgb_backbone, pretrained)
        d_rgb, d_def = _feature_dim(self.rgb_backbone), _feature_dim(self.defocus_backbone)
        if d_rgb != d_def:
            raise ValueError(
                f"fusion needs branches with equal feature sizes, got rgb {d_rgb} and "
                f"defocus {d_def} (backbones {backbone!r}, {defocus_backbone!r})"
            )
        self.num_features = int(d_rgb)
        self.classifier = nn.Linear(self.num_features, 1)

    @torch.no_grad()
    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Return ``(B, 4, S, S)``: resized RGB in [0, 1] and the normalised map."""
        _check_images(images)
        rgb = _resize(images.float(), self.image_size)
        return torch.cat([rgb, self.defocus_input(images)], dim=1)

    def features_from_input(self, x: torch.Tensor) -> torch.Tensor:
        """Fused features ``(B, D)``: the product of the two branches' pooled features."""
        self._check_input(x, 4, "inputs")
        rgb = x[:, :3] * 2.0 - 1.0 if self.rgb_input_range == "symmetric" else x[:, :3]
        return self.rgb_backbone(rgb) * self.defocus_backbone(x[:, 3:])

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1)`` from ``(B, 4, S, S)`` stacked RGB and map."""
        return self.classifier(self.features_from_input(x))

    def classify_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, 1)`` and fused features ``(B, D)`` from one pass."""
        feats = self.features_from_input(x)
        return self.classifier(feats), feats


def build_detector(
    kind: str,
    backbone: str = "legacy_xception",
    pretrained: bool | str | os.PathLike = False,
    image_size: int = 299,
    defocus_config: Any = None,
    **kw: Any,
) -> Detector:
    """Build a detector (see the module docstring for the three kinds).

    Parameters
    ----------
    kind : {"defocus", "rgb", "fusion"}
    backbone : str
        A timm model name; the paper uses ``"legacy_xception"`` at 299 px.
        For fusion this is the RGB branch.
    pretrained : bool or path
        False (default), or the path of a local weights file for the
        backbone (its classifier head is ignored). True is refused: nothing
        is downloaded.
    image_size : int
        Side ``S`` of the backbone's square input.
    defocus_config : DefocusConfig, dict or None
        Estimator settings; None means ``DefocusConfig(mode="reference",
        size=image_size)`` (the map is computed at the size the classifier
        sees, as the paper does at 299 px).
    **kw
        ``rgb_input_range`` ("symmetric" default, or "unit") for rgb and
        fusion; ``defocus_backbone`` (default: ``backbone``) for fusion.

    Returns
    -------
    Detector
        In training mode, on the CPU; ``model.config`` rebuilds it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if pretrained is True:
        raise ValueError(
            "pretrained=True would download weights; pass the path of a local weights file instead"
        )
    if pretrained and not os.path.isfile(pretrained):
        raise ValueError(f"pretrained weights file not found: {os.fspath(pretrained)!r}")
    if defocus_config is not None and not isinstance(defocus_config, dict):
        if not hasattr(defocus_config, "to_dict"):
            raise ValueError(
                f"defocus_config must be a DefocusConfig, a dict or None, got {defocus_config!r}"
            )
    allowed = {"rgb": {"rgb_input_range"}, "fusion": {"rgb_input_range", "defocus_backbone"}}
    unknown = sorted(set(kw) - allowed.get(kind, set()))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for a {kind!r} detector")
    common = dict(image_size=image_size, defocus_config=defocus_config, pretrained=pretrained)
    if kind == "defocus":
        model: Detector = DefocusDetector(backbone, **common)
    elif kind == "rgb":
        model = RGBDetector(backbone, **common, **kw)
    else:
        model = FusionDetector(backbone, **common, **kw)
    if kind != "rgb" and defocus_config is None:
        try:  # resolve the default now so that the config records it
            model._defocus_config = model.defocus_config
        except ImportError:  # pragma: no cover - estimator not installed
            pass
    config = {
        "kind": kind,
        "backbone": backbone,
        "image_size": image_size,
        "defocus_config": None if kind == "rgb" else model._defocus_config_dict(),
        **kw,
    }
    # plain JSON types (tuples become lists), so that the config survives any checkpoint
    model.config = json.loads(json.dumps(config))
    return model


def _warn_if_not_the_papers_input(model: nn.Module, path: str) -> None:
    """Warn when foreign (the paper's) weights go into a detector fed other inputs than its."""
    kind = getattr(model, "kind", "")
    differences = []
    if kind in ("defocus", "fusion"):
        cfg = model.defocus_config
        if cfg.input_range != "symmetric":
            differences.append(
                f"defocus input_range {cfg.input_range!r} (the paper's: 'symmetric')"
            )
        if cfg.mode != "reference" or cfg.size != 299:
            differences.append(f"{cfg.mode} maps at {cfg.size} px (the paper's: reference at 299)")
    if kind in ("rgb", "fusion") and getattr(model, "rgb_input_range", "") != "symmetric":
        differences.append("RGB input in [0, 1] (the paper's: [-1, 1])")
    if differences:
        log.warning(
            "%r holds the paper's weights (no model config), loaded into a %s detector with "
            "%s: its logits will not be the paper's; `defocus import-checkpoint` makes a "
            "checkpoint with the paper's input pipeline",
            path,
            kind,
            "; ".join(differences),
        )


def load_checkpoint(
    model_or_path: nn.Module | str | os.PathLike,
    path: str | os.PathLike | None = None,
    map_location: Any = "cpu",
) -> nn.Module:
    """Load weights into a model, or build the detector a checkpoint describes.

    Parameters
    ----------
    model_or_path : torch.nn.Module or path
        A model to load into (then ``path`` is the file), or the file itself
        (then the detector is built from the config stored in it; only our
        format stores one: ``defocus import-checkpoint`` converts the
        paper's files).
    path : str or path-like, optional
    map_location : str or torch.device
        Where the tensors are read to.

    Returns
    -------
    torch.nn.Module
        The model, with the weights loaded; ``model.checkpoint_extra`` holds
        the file's extra values.

    Raises
    ------
    CheckpointError
        If the file cannot be read or fails its checksum, the weights do not
        fit the model (the message names the first missing and first
        unexpected keys), or the file has no usable config and no model was
        given.
    """
    if isinstance(model_or_path, nn.Module):
        if path is None:
            raise ValueError("load_checkpoint(model, path): path is missing")
        ckpt = load_weights(model_or_path, path, map_location)
        keys = set(strip_prefix(ckpt.state_dict, "module."))
        if ckpt.layout != "ours" and keys != set(model_or_path.state_dict()):
            # keys renamed from the paper's DefocusNet or bare timm layout
            _warn_if_not_the_papers_input(model_or_path, ckpt.path)
        return model_or_path
    if path is not None:
        raise ValueError("give either load_checkpoint(model, path) or load_checkpoint(path)")
    ckpt = read_checkpoint(model_or_path, map_location)
    if not ckpt.config:
        raise CheckpointError(
            model_or_path,
            f"stores no model config ({ckpt.layout} layout, e.g. the paper's released "
            "weights); convert it once with `defocus import-checkpoint SRC --kind defocus|rgb "
            "--out DST`, or build the model and call load_checkpoint(model, path)",
        )
    if not isinstance(ckpt.config, dict):
        raise CheckpointError(model_or_path, f"stores a model config that is not a dict: "
                              f"{type(ckpt.config).__name__}")  # fmt: skip
    try:
        model = build_detector(**ckpt.config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            model_or_path, f"stores a model config that cannot be built: {err}"
        ) from None
    load_weights(model, ckpt)
    return model
