"""Checkpoints: our format round-trips; the paper's layouts load; nothing is unpickled."""

from __future__ import annotations

import collections

import pytest
import timm
import torch
from torch import nn

from detector.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from detector.models import build_detector

SIZE = 40


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on shared, oversubscribed cores this is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images(seed):
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _build(kind="defocus", backbone="resnet10t", seed=0):
    torch.manual_seed(seed)
    return build_detector(kind, backbone=backbone, image_size=SIZE).eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_gives_identical_logits(tmp_path, images, suffix):
    model = _build()
    path = save_checkpoint(model, tmp_path / f"m{suffix}", epoch=3, val={"auc": 0.9})
    again = load_checkpoint(path).eval()  # rebuilt from the stored config
    assert again.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images), rtol=0, atol=0)
    assert again.checkpoint_extra["epoch"] == 3 and again.checkpoint_extra["val"] == {"auc": 0.9}
    ckpt = read_checkpoint(path)
    assert ckpt.layout == "ours" and set(ckpt.versions) == {"defocus_forensics", "torch", "timm"}
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_load_into_a_given_model(tmp_path, images):
    src, dst = _build(seed=0), _build(seed=1)
    save_checkpoint(src, tmp_path / "m.pt")
    load_checkpoint(dst, tmp_path / "m.pt")
    maps = src.defocus_input(images)
    with torch.no_grad():
        torch.testing.assert_close(dst.classify(maps), src.classify(maps), rtol=0, atol=0)


class PaperDefocusNet(nn.Module):
    """The paper's DefocusNet parameter layout: the timm model under ``classifier``."""

    def __init__(self, backbone):
        super().__init__()
        self.classifier = timm.create_model(backbone, pretrained=False, num_classes=1)

    def forward(self, maps):  # maps already normalised, (B, 1, S, S)
        return self.classifier(maps.repeat(1, 3, 1, 1))


@pytest.mark.parametrize(
    ("backbone", "wrapped"),
    [("resnet10t", False), ("resnet10t", True), ("legacy_xception", True)],
)
def test_paper_layout_loads_and_gives_identical_logits(tmp_path, images, wrapped, backbone):
    torch.manual_seed(5)
    paper = PaperDefocusNet(backbone).eval()
    # what nn.DataParallel(model).state_dict() saves: every key under 'module.'
    state = collections.OrderedDict(("module." + k, v) for k, v in paper.state_dict().items())
    if wrapped:  # the paper's training script also stores the optimizer and epoch
        opt = torch.optim.Adam(paper.parameters(), lr=1e-4)
        state = {
            "epoch": 4,
            "model_state_dict": state,
            "optimizer_state_dict": opt.state_dict(),
            "best_val_acc": 0.93,
        }
    torch.save(state, tmp_path / "defocus_gt_xception_Deepfakes.pth")

    model = build_detector("defocus", backbone=backbone, image_size=SIZE).eval()
    load_checkpoint(model, tmp_path / "defocus_gt_xception_Deepfakes.pth")
    maps = model.defocus_input(images)
    with torch.no_grad():
        torch.testing.assert_close(model.classify(maps), paper(maps), rtol=0, atol=0)
    if wrapped:
        assert model.checkpoint_extra["epoch"] == 4
    with pytest.raises(ValueError, match="stores no model config"):
        load_checkpoint(tmp_path / "defocus_gt_xception_Deepfakes.pth")


def test_paper_multibranch_layout_loads(tmp_path, images):
    src = _build("fusion", seed=2)
    state = {"module." + k: v for k, v in src.state_dict().items()}
    torch.save(state, tmp_path / "mb.pth")
    dst = load_checkpoint(_build("fusion", seed=3), tmp_path / "mb.pth")
    x = src.model_input(images)
    with torch.no_grad():
        torch.testing.assert_close(dst.classify(x), src.classify(x), rtol=0, atol=0)


def test_mismatch_names_first_missing_and_unexpected_keys(tmp_path):
    model = _build()
    state = dict(model.state_dict())
    state.pop("backbone.fc.bias")
    state["backbone.extra_head.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError) as err:
        load_checkpoint(model, tmp_path / "bad.pt")
    msg = str(err.value)
    assert "first missing key 'backbone.fc.bias'" in msg
    assert "first unexpected key 'backbone.extra_head.weight'" in msg


def test_wrong_architecture_is_refused(tmp_path):
    save_checkpoint(_build("rgb"), tmp_path / "rgb.pt")
    with pytest.raises(ValueError, match="first missing key 'rgb_backbone"):
        load_checkpoint(_build("fusion"), tmp_path / "rgb.pt")


def test_shape_mismatch_is_named(tmp_path):
    model = _build()
    state = dict(model.state_dict())
    state["backbone.fc.weight"] = torch.zeros(2, 512)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"'backbone.fc.weight' has shape \(2, 512\)"):
        load_checkpoint(model, tmp_path / "shape.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_pickled_code_is_never_run(tmp_path, capsys):
    torch.save({"model_state_dict": {}, "payload": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="unpickling could run code"):
        read_checkpoint(tmp_path / "evil.pt")
    assert "this would have run" not in capsys.readouterr().out


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "none.pt")
    torch.save({"epoch": 1}, tmp_path / "nostate.pt")
    with pytest.raises(ValueError, match="holds no state dict"):
        read_checkpoint(tmp_path / "nostate.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a torch checkpoint|unpickling"):
        read_checkpoint(tmp_path / "text.pt")
