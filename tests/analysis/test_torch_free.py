"""The whole analysis path runs where torch cannot be imported at all."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CODE = r"""
import sys, importlib.abc

class NoTorch(importlib.abc.MetaPathFinder):
    # behaves like an environment without torch installed (ImportError on import);
    # unlike sys.modules["torch"] = None it does not trip scipy's array-API probes
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, NoTorch())
sys.path.insert(0, sys.argv[2])
from conftest import write_cache
from cache import open_cache
from analysis.summary import summarise_cache, write_summary
from analysis import masks, variance, alignment, localisation, embedding, overlays
from analysis.style import save_figure

write_cache(sys.argv[1] + "/cache")
c = open_cache(sys.argv[1] + "/cache")
df, an = summarise_cache(
    c, n_boot=20, n_permutations=5, null_samples=4, perplexities=(2,), return_analyses=True
)
write_summary(df, sys.argv[1])
png = dict(formats=("png",), dpi=40)
save_figure(masks.plot_mask_gallery(an["masks"], n=1), sys.argv[1] + "/g", **png)
save_figure(variance.plot_variance_ecdf(an["variance"]), sys.argv[1] + "/e", **png)
save_figure(embedding.plot_embedding_sweep(an["embedding"]), sys.argv[1] + "/t", **png)
assert "torch" not in sys.modules, "torch was imported"
print("ok", len(df))
"""


@pytest.mark.slow
def test_full_analysis_without_torch(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "g.png").exists()
