"""``defocus figures``: every figure type from a cache, PDF + PNG, and the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cache import CacheWriter, open_cache
from defocus_forensics.cli import main
from defocus_forensics.figures import FIGURE_TYPES, FigureParams, draw_figures

S = 16


def _tiny_cache(path, rng, n=6):
    """Reals and fakes paired by id, with only the fields the mask figures need."""
    real = rng.random((n, S, S)).astype(np.float16)
    fake = np.clip(real.astype(np.float32) + 0.3 * (rng.random((n, S, S)) > 0.7), 0, 1)
    w = CacheWriter(path, config={"test": "figures"})
    ids = [f"r{i}" for i in range(n)]
    w.write_shard("real", {"id": ids, "group": ["real"] * n, "label": np.zeros(n, np.int8),
                           "pair_id": [""] * n, "defocus": real})  # fmt: skip
    w.write_shard("swap", {"id": [f"f{i}" for i in range(n)], "group": ["swap"] * n,
                           "label": np.ones(n, np.int8), "pair_id": ids,
                           "defocus": fake.astype(np.float16)})  # fmt: skip
    return open_cache(path)


def test_params_validation():
    assert FigureParams().to_dict()["thresholds"][0] == 0.1
    with pytest.raises(ValueError, match=r"gallery_threshold must be in \(0, 1\), got 1.5"):
        FigureParams(gallery_threshold=1.5)
    with pytest.raises(ValueError, match="window must be odd, got 14"):
        FigureParams(window=14)
    with pytest.raises(ValueError, match="perplexities must be positive"):
        FigureParams(perplexities=(0,))
    with pytest.raises(ValueError, match="n_boot must be a positive integer"):
        FigureParams(n_boot=0)


def test_stems_are_unique_and_descriptive():
    stems = [t.stem for t in FIGURE_TYPES]
    assert len(stems) == len(set(stems)) >= 10
    assert all(t.stem.startswith(t.section.rstrip("s")[:5]) or t.section == "attributions"
               for t in FIGURE_TYPES)  # fmt: skip
    paper = {t.section for t in FIGURE_TYPES if t.paper}
    assert paper == {"attributions", "masks", "variance", "embedding", "alignment"}


def test_mask_figures_from_a_tiny_cache(tmp_path, rng):
    cache = _tiny_cache(tmp_path / "cache", rng)
    params = FigureParams(gallery_threshold=0.2, n_boot=10, n_permutations=5, perplexities=(2,))
    manifest = draw_figures(cache, tmp_path / "figs", params=params, only=["masks"],
                            progress=False)  # fmt: skip
    stems = [f["stem"] for f in manifest["figures"]]
    assert stems == ["masks_binary_gallery_T0.2", "masks_threshold_sweep"]
    on_disk = json.loads((tmp_path / "figs" / "figures_manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["groups"] == ["real", "swap"] and manifest["n_samples"] == 12
    assert len(manifest["cache_manifest_sha256"]) == 64
    for entry in manifest["figures"]:
        assert entry["fields"] == ["defocus", "pair_id"] and entry["unavailable"] is None
        assert entry["missing_fields"] == (["mask"] if "gallery" in entry["stem"] else [])
        pdf = tmp_path / "figs" / entry["pdf"]
        assert pdf.read_bytes()[:5] == b"%PDF-"
        with Image.open(tmp_path / "figs" / entry["png"]) as img:
            assert img.size[0] > 100 and img.size[1] > 100


def test_figures_missing_fields_are_marked_unavailable(tmp_path, rng):
    cache = _tiny_cache(tmp_path / "cache", rng)
    manifest = draw_figures(cache, tmp_path / "figs", only=["embedding"], progress=False,
                            params=FigureParams(n_boot=10, n_permutations=5))  # fmt: skip
    assert [f["unavailable"] for f in manifest["figures"]] == [
        "the cache has no 'features_defocus' field",
        "the cache has no 'features_rgb' field",
    ]


def test_figures_cli_errors(tmp_path, capsys):
    assert main(["figures", "--cache", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "defocus figures:" in capsys.readouterr().err
    assert main(["figures", "--cache", str(tmp_path), "--out", str(tmp_path),
                 "--window", "4"]) == 2  # fmt: skip
    assert "window must be odd" in capsys.readouterr().err


# ------------------------------------------------------------- the demo's cache


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The quick demo, run once per session (reruns reuse the finished stages)."""
    from defocus_forensics.demo import DemoConfig, run_demo

    out = tmp_path_factory.getbasetemp() / "demo-quick"
    return run_demo(DemoConfig(out=out, quick=True, progress=False))


@pytest.mark.slow
def test_demo_drew_every_figure_type(demo_run):
    figs = demo_run.out / "figures"
    manifest = json.loads((figs / "figures_manifest.json").read_text())
    stems = [f["stem"] for f in manifest["figures"]]
    assert stems == [
        "masks_binary_gallery_T0.1" if t.stem == "masks_binary_gallery" else t.stem
        for t in FIGURE_TYPES
    ]
    for entry in manifest["figures"]:
        # with the models at hand every figure type is drawn, none is a marker
        assert entry["unavailable"] is None, entry
        assert entry["missing_fields"] == []
        for name in entry["files"].values():
            assert (figs / name).stat().st_size > 1000
    assert manifest["cache"] == str((demo_run.out / "cache").resolve())


@pytest.mark.slow
def test_figures_cli_on_demo_cache(demo_run, tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["figures", "--cache", str(demo_run.out / "cache"), "--out", str(out),
                 "--only", "variance", "localisation", "--n-boot", "20",
                 "--n-permutations", "5", "--perplexities", "5", "--quiet"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    manifest = json.loads((out / "figures_manifest.json").read_text())
    assert {f["section"] for f in manifest["figures"]} == {"variance", "localisation"}
    # without the models the deletion curves are a marker that says why
    deletion = next(f for f in manifest["figures"] if f["stem"] == "localisation_deletion_curves")
    assert "predict" in deletion["unavailable"]
    assert "marked unavailable" in text and "localisation_deletion_curves" in text


@pytest.mark.slow
def test_figures_explorer_and_report_need_no_torch(tmp_path, rng):
    """A meta-path finder makes any ``import torch`` raise ImportError.

    (``sys.modules['torch'] = None`` would also break scipy, which probes
    ``sys.modules`` for array libraries.)
    """
    import subprocess
    import sys

    _tiny_cache(tmp_path / "cache", rng)
    code = f"""
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
from defocus_forensics.figures import FigureParams, draw_figures
from defocus_forensics.explorer import Explorer
from defocus_forensics.report import build_report
m = draw_figures({str(tmp_path / "cache")!r}, {str(tmp_path / "run" / "figures")!r},
                 only=["masks"], progress=False, params=FigureParams(n_boot=10))
view = Explorer({str(tmp_path / "cache")!r}).view("swap", 0, 0.2)
build_report({str(tmp_path / "run")!r})
assert "torch" not in sys.modules
print("ok", len(m["figures"]), int(view.mask.sum()))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok 2 ")
    assert (tmp_path / "run" / "report.html").is_file()
