"""Checkpoints: our format round-trips and is checksummed; the paper's layouts load; bad
files give one-line typed errors; nothing is unpickled."""

from __future__ import annotations

import collections
import json
import logging

import numpy as np
import pytest
import timm
import torch
from torch import nn

from detector.checkpoints import (
    CheckpointError,
    checkpoint_digest,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
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
    assert ckpt.checksum.startswith("sha256:") and len(ckpt.checksum) == 7 + 64
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]  # written atomically


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
    with pytest.raises(CheckpointError, match="stores no model config.*import-checkpoint"):
        load_checkpoint(tmp_path / "defocus_gt_xception_Deepfakes.pth")


class PaperMultiBranchDefocusNet(nn.Module):
    """The paper's MultiBranchDefocusNet, written here from its description (not our code).

    An RGB timm model and a one-channel defocus timm model, both headless with
    average pooling; their features multiplied elementwise, then one linear layer.
    """

    def __init__(self, backbone):
        super().__init__()
        self.rgb_backbone = timm.create_model(backbone, pretrained=False, num_classes=0,
                                              global_pool="avg")  # fmt: skip
        self.defocus_backbone = timm.create_model(
            backbone, pretrained=False, in_chans=1, num_classes=0, global_pool="avg"
        )
        self.classifier = nn.Linear(self.rgb_backbone.num_features, 1)

    def forward(self, rgb, defocus_map):  # rgb in [-1, 1] as its loader gives it
        return self.classifier(self.rgb_backbone(rgb) * self.defocus_backbone(defocus_map))


def test_paper_multibranch_layout_loads(tmp_path, images):
    # catches: keys of the paper's fusion model mapped wrongly on load, or a fusion forward
    # that differs from the paper's (e.g. concatenated features, RGB not in [-1, 1])
    torch.manual_seed(2)
    paper = PaperMultiBranchDefocusNet("resnet10t").eval()
    state = {"module." + k: v for k, v in paper.state_dict().items()}  # DataParallel keys
    torch.save({"epoch": 1, "model_state_dict": state}, tmp_path / "mb.pth")
    ours = load_checkpoint(_build("fusion", seed=3), tmp_path / "mb.pth")
    x = ours.model_input(images)  # (B, 4, S, S): RGB in [0, 1] and the normalised map
    with torch.no_grad():
        expected = paper(x[:, :3] * 2 - 1, x[:, 3:])
        torch.testing.assert_close(ours.classify(x), expected, rtol=1e-5, atol=1e-6)
    assert ours.checkpoint_extra == {"epoch": 1}


def test_mismatch_names_first_missing_and_unexpected_keys(tmp_path):
    model = _build()
    state = dict(model.state_dict())
    state.pop("backbone.fc.bias")
    state["backbone.extra_head.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
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
    with pytest.raises(CheckpointError, match="unpickling could run code"):
        read_checkpoint(tmp_path / "evil.pt")
    assert "this would have run" not in capsys.readouterr().out


def test_torch_load_is_always_weights_only(tmp_path, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    model = _build()
    save_checkpoint(model, tmp_path / "m.pt")
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    load_checkpoint(tmp_path / "m.pt")
    load_checkpoint(_build(), tmp_path / "bare.pt")
    assert calls == [True, True]


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "none.pt")
    torch.save({"epoch": 1}, tmp_path / "nostate.pt")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_checkpoint(tmp_path / "nostate.pt")


# -- files that are not checkpoints: one line, the file named, a typed error -----------------


def _bad_files(folder, seed):
    """Name -> (path, what the message must say)."""
    model = _build()
    good = save_checkpoint(model, folder / "good.pt")
    good_st = save_checkpoint(model, folder / "good.safetensors")
    rng = np.random.default_rng(seed)
    files = {
        "empty": (b"", "is empty"),
        "text": (b"epoch,loss\n1,0.69\n", "is a text file"),
        "truncated": (good.read_bytes()[: good.stat().st_size // 2], "is truncated or corrupt"),
        "random": (rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), "is not a checkpoint"),
        "truncated_st": (good_st.read_bytes()[:-4000], "truncated or corrupt"),
    }
    out = {}
    for name, (data, says) in files.items():
        path = folder / (name.replace("_st", "") + (".safetensors" if "_st" in name else ".pt"))
        path.write_bytes(data)
        out[name] = (path, says)
    (folder / "a_folder.pt").mkdir()
    out["folder"] = (folder / "a_folder.pt", "is a folder")
    return out


@pytest.mark.parametrize("name", ["empty", "text", "truncated", "random", "truncated_st", "folder"])
def test_bad_files_give_one_line_typed_errors(tmp_path, seed, name):
    # catches EOFError / KeyError / UnpicklingError tracebacks reaching the user
    path, says = _bad_files(tmp_path, seed)[name]
    for load in (read_checkpoint, load_checkpoint, lambda p: load_checkpoint(_build(), p)):
        with pytest.raises(CheckpointError) as err:
            load(path)
        msg = str(err.value)
        assert says in msg and repr(str(path)) in msg and "\n" not in msg, msg
        assert isinstance(err.value, ValueError) and err.value.path == str(path)


def _flip_tensor_byte(path, tensor):
    """Flip one bit of ``tensor``'s stored bytes inside the file at ``path``."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    at = data.find(raw[:64])
    assert at > 0, "tensor bytes not found in the file"
    data[at + 10] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_flipped_tensor_bytes_are_refused(tmp_path, suffix, images):
    # catches a checkpoint whose weights changed on disk loading silently
    model = _build()
    path = save_checkpoint(model, tmp_path / f"m{suffix}", epoch=2)
    weight = model.state_dict()["backbone.layer2.0.conv1.weight"]
    _flip_tensor_byte(path, weight)
    for load in (read_checkpoint, load_checkpoint, lambda p: load_checkpoint(_build(), p)):
        with pytest.raises(CheckpointError, match="fails its checksum") as err:
            load(path)
        assert repr(str(path)) in str(err.value)


def test_edited_config_in_safetensors_metadata_is_refused(tmp_path):
    path = save_checkpoint(_build(), tmp_path / "m.safetensors")
    data = path.read_bytes()
    edited = data.replace(b'\\"image_size\\": 40', b'\\"image_size\\": 48', 1)
    assert edited != data and len(edited) == len(data)
    path.write_bytes(edited)
    with pytest.raises(CheckpointError, match="fails its checksum"):
        load_checkpoint(path)


def test_edited_optimizer_state_is_refused(tmp_path):
    # the checksum covers the extra values too: a damaged Adam moment would corrupt a resume
    model = _build()
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 3, SIZE, SIZE)).sum().backward()
    opt.step()
    path = save_checkpoint(model, tmp_path / "last.pt", optimizer=opt.state_dict())
    moment = opt.state_dict()["state"][3]["exp_avg_sq"]
    _flip_tensor_byte(path, moment)
    with pytest.raises(CheckpointError, match="fails its checksum"):
        read_checkpoint(path)


def test_checkpoints_without_a_checksum_load_with_a_warning(tmp_path, images, caplog):
    # what save_checkpoint wrote before checksums (format version 1)
    model = _build()
    torch.save(
        {
            "format": "defocus-forensics/checkpoint",
            "format_version": 1,
            "state_dict": model.state_dict(),
            "config": model.config,
            "versions": {},
            "extra": {"epoch": 5},
        },
        tmp_path / "old.pt",
    )
    with caplog.at_level(logging.WARNING, logger="detector"):
        again = load_checkpoint(tmp_path / "old.pt").eval()
    assert "without a checksum" in caplog.text and "old.pt" in caplog.text
    with torch.no_grad():
        torch.testing.assert_close(again(images), model(images), rtol=0, atol=0)
    assert read_checkpoint(tmp_path / "old.pt").checksum is None


def test_a_newer_format_is_refused(tmp_path):
    torch.save(
        {"format": "defocus-forensics/checkpoint", "format_version": 99, "state_dict": {}},
        tmp_path / "new.pt",
    )
    with pytest.raises(CheckpointError, match="format version 99, newer"):
        read_checkpoint(tmp_path / "new.pt")


def test_digest_sees_every_bit_and_ignores_order_and_layout():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(4, 6, generator=g)
    state = {"a.weight": w, "a.bias": torch.zeros(6), "n": torch.tensor(3)}
    base = checkpoint_digest(state, {"kind": "rgb"}, {}, {"epoch": 1})
    # dict order and memory layout do not matter
    same = {"n": state["n"], "a.bias": state["a.bias"], "a.weight": w.t().contiguous().t()}
    assert checkpoint_digest(same, {"kind": "rgb"}, {}, {"epoch": 1}) == base
    # any one flipped bit, dtype, shape, name or plain value does
    for i in range(w.numel() * 4 * 8):
        flipped = w.clone().reshape(-1).view(torch.uint8)
        flipped[i // 8] ^= 1 << (i % 8)
        other = dict(state, **{"a.weight": flipped.view(torch.float32).reshape(4, 6)})
        assert checkpoint_digest(other, {"kind": "rgb"}, {}, {"epoch": 1}) != base, i
    changes = [
        (dict(state, **{"a.weight": w.view(torch.int32)}), {"kind": "rgb"}, {"epoch": 1}),
        (dict(state, **{"a.weight": w.reshape(6, 4)}), {"kind": "rgb"}, {"epoch": 1}),
        ({"b.weight" if k == "a.weight" else k: v for k, v in state.items()}, {"kind": "rgb"},
         {"epoch": 1}),
        (state, {"kind": "defocus"}, {"epoch": 1}),
        (state, {"kind": "rgb"}, {"epoch": 2}),
        (state, {"kind": "rgb"}, {"epoch": 1.0}),
    ]  # fmt: skip
    for st, cfg, extra in changes:
        assert checkpoint_digest(st, cfg, {}, extra) != base


def test_safetensors_extras_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(_build(), tmp_path / "m.safetensors", payload=object())
    assert not list(tmp_path.iterdir())


def test_config_that_cannot_be_built_is_named(tmp_path):
    model = _build()
    model.config = dict(model.config, kind="depth")
    save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="cannot be built: kind must be one of"):
        load_checkpoint(tmp_path / "m.pt")
    model.config = json.loads(json.dumps(_build().config)) | {"colour": "blue"}
    save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="cannot be built"):
        load_checkpoint(tmp_path / "m.pt")


def test_paper_weights_into_another_input_pipeline_warn(tmp_path, caplog):
    # the r = 0.41 trap: the paper's DefocusNet weights in a default-built detector
    from detector.checkpoints import paper_detector

    torch.manual_seed(1)
    torch.save(PaperDefocusNet("resnet10t").state_dict(), tmp_path / "paper.pth")
    with caplog.at_level(logging.WARNING, logger="detector"):
        load_checkpoint(paper_detector("defocus", "resnet10t"), tmp_path / "paper.pth")
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING, logger="detector"):
        load_checkpoint(_build(), tmp_path / "paper.pth")
    assert "input_range 'unit'" in caplog.text and "import-checkpoint" in caplog.text
