"""Detector models: shapes, the defocus input pipeline, and each kind's forward by hand."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from detector.defocus import DefocusConfig, estimate_defocus
from detector.models import build_detector, normalize_per_sample

SIZE = 48  # small inputs keep these tests fast; resnet10t works at this size


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on shared, oversubscribed cores this is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 56, 56, generator=g)


def _build(kind, **kw):
    torch.manual_seed(0)
    model = build_detector(kind, backbone="resnet10t", image_size=SIZE, **kw)
    return model.eval()


def test_normalize_per_sample_matches_formula():
    x = torch.tensor([[[[1.0, 3.0], [2.0, 5.0]]], [[[-1.0, -1.0], [-1.0, -1.0]]]])
    out = normalize_per_sample(x)
    expected0 = (x[0] - 1.0) / (4.0 + 1e-8)
    torch.testing.assert_close(out[0], expected0, rtol=0, atol=1e-7)
    torch.testing.assert_close(out[1], torch.zeros_like(x[1]), rtol=0, atol=0)


def test_defocus_input_is_the_resized_min_max_map(images):
    model = _build("defocus", defocus_config=DefocusConfig(mode="reference", size=40))
    got = model.defocus_input(images)
    # independent reference: docs/algorithm.md section 1 step 8
    maps = estimate_defocus(images, DefocusConfig(mode="reference", size=40)).defocus
    maps = F.interpolate(maps, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    flat = maps.reshape(2, -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    expected = ((flat - lo) / (hi - lo + 1e-8)).reshape(2, 1, SIZE, SIZE)
    assert got.shape == (2, 1, SIZE, SIZE) and not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_defocus_forward_is_classify_of_defocus_input(images):
    model = _build("defocus")
    maps = model.defocus_input(images)
    with torch.no_grad():
        logits = model(images)
        by_hand = model.backbone(maps.repeat(1, 3, 1, 1))
    assert logits.shape == (2, 1)
    torch.testing.assert_close(logits, by_hand, rtol=0, atol=0)
    torch.testing.assert_close(model.classify(maps).detach(), by_hand, rtol=0, atol=0)


@pytest.mark.parametrize(("kind", "channels"), [("defocus", 1), ("rgb", 3), ("fusion", 4)])
def test_classify_gradient_matches_finite_differences(kind, channels, seed):
    # catches a classify whose gradient is cut (a detach or no_grad around the repeat to 3
    # channels or the [-1, 1] step) or wrong; attributions explain exactly this function
    torch.manual_seed(seed)
    model = build_detector(kind, backbone="resnet10t", image_size=16).double().eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, channels, 16, 16, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        model.classify, (x,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True
    )
    (grad,) = torch.autograd.grad(model.classify(x).sum(), x)
    assert grad.abs().sum() > 0  # not a function that ignores its input


def test_features_are_pooled_penultimate(images):
    model = _build("defocus")
    with torch.no_grad():
        feats = model.features(images)
        # the head applied to the features gives the logits
        logits = model.backbone.fc(feats)
    assert feats.shape == (2, model.num_features) == (2, 512)
    torch.testing.assert_close(logits, model(images).detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "backbone"),
    [
        ("defocus", "resnet10t"),
        ("rgb", "resnet10t"),
        ("rgb", "mobilenetv3_small_050"),
        ("defocus", "efficientnet_b0"),
        ("fusion", "resnet10t"),
        ("fusion", "mobilenetv3_small_050"),  # features of width head_hidden_size (1024)
    ],
)
def test_classify_with_features_is_the_two_calls(images, kind, backbone):
    torch.manual_seed(0)
    model = build_detector(kind, backbone=backbone, image_size=SIZE).eval()
    x = model.model_input(images)
    with torch.no_grad():
        logits, feats = model.classify_with_features(x)
        torch.testing.assert_close(logits, model.classify(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(feats, model.features_from_input(x), rtol=0, atol=0)
    assert logits.shape == (2, 1) and feats.shape == (2, model.num_features)
    # training mode (dropout would be on): the two separate calls are made
    model.train()
    torch.manual_seed(1)
    logits, feats = model.classify_with_features(x)
    assert logits.shape == (2, 1) and feats.shape == (2, model.num_features)


@pytest.mark.parametrize("rng_range", ["symmetric", "unit"])
def test_rgb_classify_normalises_as_configured(images, rng_range):
    model = _build("rgb", rgb_input_range=rng_range)
    x = model.model_input(images)
    assert x.shape == (2, 3, SIZE, SIZE)
    expected_x = F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x, expected_x, rtol=0, atol=0)
    with torch.no_grad():
        ref = model.backbone(x * 2 - 1 if rng_range == "symmetric" else x)
        torch.testing.assert_close(model.classify(x), ref, rtol=0, atol=0)
        torch.testing.assert_close(model(images), ref, rtol=0, atol=0)


def test_fusion_multiplies_branch_features(images):
    model = _build("fusion")
    x = model.model_input(images)
    assert x.shape == (2, 4, SIZE, SIZE)
    torch.testing.assert_close(x[:, 3:], model.defocus_input(images), rtol=0, atol=0)
    with torch.no_grad():
        f_rgb = model.rgb_backbone(x[:, :3] * 2 - 1)
        f_def = model.defocus_backbone(x[:, 3:])
        expected = f_rgb * f_def @ model.classifier.weight.T + model.classifier.bias
        torch.testing.assert_close(model.classify(x), expected, rtol=1e-5, atol=1e-6)
        assert model.features(images).shape == (2, 512)
    # the paper's MultiBranchDefocusNet parameter names
    prefixes = {k.split(".")[0] for k in model.state_dict()}
    assert prefixes == {"rgb_backbone", "defocus_backbone", "classifier"}


def test_config_rebuilds_the_same_architecture():
    model = _build("defocus")
    cfg = model.config
    assert cfg["kind"] == "defocus" and cfg["backbone"] == "resnet10t"
    # stored as plain JSON types (tuples as lists) so that it survives any checkpoint format
    expected = json.loads(json.dumps(DefocusConfig(mode="reference", size=SIZE).to_dict()))
    assert cfg["defocus_config"] == expected
    assert DefocusConfig(**cfg["defocus_config"]) == DefocusConfig(mode="reference", size=SIZE)
    again = build_detector(**cfg)
    assert again.config == cfg
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "depth"}, "kind must be one of"),
        ({"kind": "rgb", "pretrained": True}, "would download"),
        ({"kind": "rgb", "pretrained": "/no/such/file.pt"}, "not found"),
        ({"kind": "defocus", "defocus_backbone": "resnet10t"}, "unknown option"),
        ({"kind": "rgb", "rgb_input_range": "half"}, "rgb_input_range"),
        ({"kind": "rgb", "backbone": "no_such_net"}, "unknown timm backbone"),
        ({"kind": "rgb", "image_size": 4}, "image_size"),
    ],
)
def test_build_errors(kwargs, match):
    kwargs = {"backbone": "resnet10t", "image_size": SIZE, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_detector(**kwargs)


def test_classify_rejects_wrong_shapes(images):
    model = _build("defocus")
    with pytest.raises(ValueError, match=r"maps of shape \(B, 1, S, S\)"):
        model.classify(images)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(images[:, :1])


def test_pretrained_backbone_from_local_file(tmp_path):
    import timm

    torch.manual_seed(1)
    source = timm.create_model("resnet10t", num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "imagenet.pth")
    model = build_detector(
        "rgb", backbone="resnet10t", image_size=SIZE, pretrained=tmp_path / "imagenet.pth"
    )
    own = model.backbone.state_dict()
    src = source.state_dict()
    for key in ("conv1.0.weight", "layer4.0.conv2.weight", "bn1.running_mean"):
        torch.testing.assert_close(own[key], src[key], rtol=0, atol=0)
    assert own["fc.weight"].shape == (1, 512)  # the 1000-class head is not taken
