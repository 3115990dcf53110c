"""The HTML report: structure, self-containedness, and every image loading in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defocus_forensics.cli import main
from defocus_forensics.report import build_report, flatten, load_run

# --------------------------------------------------------------------- helpers

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
]

# Injected into a copy of the report (the report itself carries no test code):
# after the load event, record for every <img> whether it decoded.
_CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var r = [];
  document.querySelectorAll("img").forEach(function (i) {
    r.push({src: i.getAttribute("src").slice(0, 40), ok: i.complete && i.naturalWidth > 0,
            w: i.naturalWidth});
  });
  var p = document.createElement("pre");
  p.id = "img-check";
  p.textContent = JSON.stringify(r);
  document.body.appendChild(p);
});
</script>
"""


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def load_images_in_browser(report: Path, tmp_path: Path) -> list[dict]:
    """Open ``report`` (a copy with a checking script, same folder) and report each <img>."""
    browser = _browser()
    if browser is None:
        pytest.skip("no headless browser: install Debian's 'chromium' (the CI does) to run this")
    probe = report.with_name(report.stem + ".imgcheck.html")
    text = report.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
    try:
        proc = subprocess.run(
            [browser, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]
            + ["--dump-dom", probe.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        probe.unlink()
    match = re.search(r'<pre id="img-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"the page did not finish loading in {browser}: {proc.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _png(path: Path, rng: np.random.Generator, size=(40, 30)) -> bytes:
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


@pytest.fixture
def run_dir(tmp_path, rng) -> Path:
    """A minimal run folder: three figures in two sections, summary, run config, cache manifest."""
    run = tmp_path / "run"
    figs = run / "figures"
    figs.mkdir(parents=True)
    entries = []
    for name, section in [("masks_threshold_curve", "masks"), ("masks_pairs", "masks"),
                          ("variance_pairs", "variance")]:  # fmt: skip
        _png(figs / f"{name}.png", rng)
        entries.append(
            {
                "png": f"{name}.png",
                "pdf": f"{name}.pdf",
                "title": name.replace("_", " "),
                "caption": f"caption of {name}",
                "section": section,
            }
        )
    (figs / "figures_manifest.json").write_text(json.dumps({"figures": entries}))
    (run / "summary.json").write_text(
        json.dumps(
            {
                "headline": {"auc_defocus": 0.8125, "ks_pvalue": 3.9e-8},
                "alignment": {"defocus": {"mean": 0.41, "std": 0.05}},
                "table": [
                    {
                        "analysis": "masks",
                        "group": "pasted_region",
                        "metric": "mean@T=0.1",
                        "value": 812.5,
                    },
                    {
                        "analysis": "variance",
                        "group": "all_in_focus",
                        "metric": "ks_pvalue",
                        "value": None,
                    },
                ],
            }
        )
    )
    (run / "run.json").write_text(json.dumps({"seed": 7, "stages": {"train": {"seconds": 1.5}}}))
    (run / "cache").mkdir()
    (run / "cache" / "manifest.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "model_fingerprints": {"defocus": "ab" * 32},
                "shards": [
                    {"name": "00000-real", "file": "shards/00000-real.npz", "sha256": "cd" * 32}
                ],
            }
        )
    )
    return run


# ------------------------------------------------------------------------ unit


def test_flatten_nested():
    rows = flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": 3}], "f": "x"})
    assert rows == [("a.b", 1), ("a.c", [1, 2]), ("d[0].e", 3), ("f", "x")]


def test_load_run_reads_manifest_in_order(run_dir):
    inputs = load_run(run_dir)
    assert [f.path.name for f in inputs.figures] == [
        "masks_threshold_curve.png",
        "masks_pairs.png",
        "variance_pairs.png",
    ]
    assert [f.section for f in inputs.figures] == ["masks", "masks", "variance"]
    assert inputs.summary["headline"]["auc_defocus"] == 0.8125
    assert "shards" not in inputs.config
    assert inputs.fingerprints["model_fingerprints.defocus"] == "ab" * 32
    assert inputs.fingerprints["format_version"] == 1
    assert inputs.fingerprints["shard 00000-real"] == "cd" * 32


def test_report_embeds_every_figure_byte_for_byte(run_dir):
    out = build_report(run_dir)
    assert out == run_dir / "report.html"
    text = out.read_text()
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == 3
    for src, name in zip(
        sources, ["masks_threshold_curve", "masks_pairs", "variance_pairs"], strict=True
    ):
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert (
            base64.b64decode(src[len(prefix) :])
            == (run_dir / "figures" / f"{name}.png").read_bytes()
        )
    # summary, config and fingerprints are in the page
    assert "auc_defocus" in text and "0.812" in text and "3.9e-08" in text
    assert "alignment.defocus.mean" in text
    # the long table is one row per record, columns from the keys
    rows = re.findall(r'<table class="records">(.*?)</table>', text, re.S)[0].split("<tr>")[1:]
    assert len(rows) == 3
    assert "<th>analysis</th><th>group</th><th>metric</th><th>value</th>" in rows[0]
    assert "<td>masks</td><td>pasted_region</td><td>mean@T=0.1</td><td>812.5</td>" in rows[1]
    assert rows[2].endswith("<td>ks_pvalue</td><td></td></tr>\n")
    assert "ab" * 32 in text and "cd" * 32 in text
    assert 'id="config"' in text and "format_version" in text


def test_report_link_mode_uses_relative_paths(run_dir, tmp_path):
    out = build_report(run_dir, tmp_path / "elsewhere" / "r.html", inline=False)
    for src in re.findall(r'<img src="([^"]+)"', out.read_text()):
        assert not src.startswith("data:")
        assert (out.parent / src).resolve().is_file(), src


def test_report_without_optional_parts(tmp_path, rng):
    figs = tmp_path / "figures"
    figs.mkdir()
    _png(figs / "only.png", rng)
    text = build_report(tmp_path).read_text()
    assert text.count("<img ") == 1
    assert "no summary.json" in text and "no fingerprints" in text


def test_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        load_run(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no figures"):
        load_run(tmp_path)


def test_report_cli(run_dir, capsys):
    assert main(["report", "--run", str(run_dir)]) == 0
    assert (run_dir / "report.html").is_file()
    assert "report:" in capsys.readouterr().out
    assert main(["report", "--run", str(run_dir / "nope")]) == 2
    assert "run folder not found" in capsys.readouterr().err


# --------------------------------------------------------------------- browser


@pytest.mark.browser
@pytest.mark.parametrize("inline", [True, False], ids=["inline", "linked"])
def test_every_image_loads_in_chromium(run_dir, tmp_path, inline):
    out = build_report(run_dir, inline=inline)
    images = load_images_in_browser(out, tmp_path)
    assert len(images) == 3
    assert all(img["ok"] and img["w"] == 30 for img in images), images


@pytest.mark.browser
def test_browser_check_detects_a_broken_image(run_dir, tmp_path):
    """Negative control: the check must be able to fail."""
    out = build_report(run_dir, inline=False)
    (run_dir / "figures" / "masks_pairs.png").write_bytes(b"not a png")
    images = load_images_in_browser(out, tmp_path)
    assert [img["ok"] for img in images] == [True, False, True]


# ------------------------------------------------------ the demo's own report


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The quick demo, run once per session (reruns reuse the finished stages)."""
    from defocus_forensics.demo import DemoConfig, run_demo

    return run_demo(DemoConfig(out=tmp_path_factory.getbasetemp() / "demo-quick", quick=True))


@pytest.mark.slow
@pytest.mark.browser
def test_demo_report_loads_in_chromium(demo_run, tmp_path):
    report = demo_run.out / "report.html"
    manifest = json.loads((demo_run.out / "figures" / "figures_manifest.json").read_text())
    images = load_images_in_browser(report, tmp_path)
    assert len(images) == len(manifest["figures"]) >= 8
    broken = [img for img in images if not img["ok"]]
    assert not broken, broken
    text = report.read_text()
    assert "auc" in text.lower() and "fingerprint" in text.lower()


def test_report_says_when_its_numbers_cannot_be_read_much_into(run_dir):
    """A --quick run, tiny groups and coarse permutation tests each get a banner."""
    clean = build_report(run_dir).read_text()
    assert "Read with care" not in clean
    (run_dir / "run.json").write_text(
        json.dumps({"config": {"quick": True, "n_permutations": 20}, "stages": {}})
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["headline"]["alignment_defocus_pasted"] = {"mean": 0.8, "std": 0.1, "n": 16}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    text = build_report(run_dir).read_text()
    assert text.count("Read with care") == 3
    assert "used --quick" in text and "n = 16 samples" in text and "1/21 = 0.048" in text


def test_report_warns_on_figures_of_another_cache(run_dir, caplog):
    manifest = json.loads((run_dir / "figures" / "figures_manifest.json").read_text())
    manifest["cache_manifest_sha256"] = "0" * 64
    (run_dir / "figures" / "figures_manifest.json").write_text(json.dumps(manifest))
    text = build_report(run_dir).read_text()
    assert "were drawn from another cache" in text
    assert "were drawn from another cache" in caplog.text


def test_report_folds_the_config_and_rounds_one_way(run_dir):
    text = build_report(run_dir).read_text()
    assert re.search(r"<details><summary>run.json \(\d+ settings\)", text)
    assert "<details open>" not in text
    assert "0.812" in text and "0.8125" not in text  # 3 decimals everywhere
    assert "3.9e-08" in text  # small values keep 3 significant digits


def test_report_never_presents_an_edited_manifest_as_true(run_dir):
    from cache.integrity import seal

    path = run_dir / "cache" / "manifest.json"
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "integrity": seal(body)}))
    assert "was edited" not in build_report(run_dir).read_text()
    sealed = json.loads(path.read_text())
    sealed["format_version"] = 7
    path.write_text(json.dumps(sealed))
    text = build_report(run_dir).read_text()
    assert "was edited after it was written (changed format_version)" in text
    # bookkeeping is not shown as config
    assert "leaves_sha256" not in text


# ------------------------------------------------ headline table, sanity flag, one config


def _headline_run(run_dir, flagged: bool) -> None:
    """Give the minimal run a headline as the demo writes it, and a randomisation check."""
    import numpy as np

    from analysis.sanity import SanityResult, write_sanity

    config = {"n_permutations": 999, "n_boot": 1000, "unit": "video"}
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["analysis_config"] = config
    summary["headline"] = {
        "auc_defocus": {"auc": 0.8125, "ci_low": 0.7, "ci_high": 0.9, "n": 64, "n_real": 32,
                        "n_fake": 32, "n_units": 20, "level": "video"},
        "alignment_defocus_pasted": {
            "mean": 0.81, "ci_low": 0.79, "ci_high": 0.83, "n": 40, "n_units": 10, "floor": 0.79,
            "skill_mean": 0.1, "skill_ci_low": 0.02, "skill_ci_high": 0.18, "skill_p": 0.004,
            "n_permutations": 999, "p_min": 0.001, "p_floor": 0.001, "level": "video",
        },
        "paired_pasted": {"model_a": "defocus", "model_b": "rgb", "n": 40, "n_units": 10,
                          "skill_mean_diff": 0.07, "skill_ci_low": -0.01, "skill_ci_high": 0.15,
                          "skill_p": 0.09, "score_mean_diff": 0.01, "score_p": 0.2,
                          "n_permutations": 999, "p_min": 0.001, "p_floor": 0.002,
                          "level": "video"},
        "ks_mean_local_variance_pasted": {"D": 0.0527, "p": 0.94, "p_holm": 0.94, "delta": 0.02,
                                          "n": 200, "n_real": 200, "n_fake": 200,
                                          "n_real_frames": 6400, "n_fake_frames": 6400,
                                          "level": "video", "padding": "zeros"},
        "level": "video",
        "confidence": 0.95,
        "analysis_config": config,
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary))
    stages = [
        {"name": "top-1", "n_layers": 1, "layers": ["fc"], "lowest": "fc"},
        {"name": "all", "n_layers": 3, "layers": ["fc", "b", "a"], "lowest": "a"},
    ]
    rho = np.array([[0.95, 0.9, 0.97], [0.9, 0.8, 0.85]]) if flagged else np.full((2, 3), 0.1)
    (run_dir / "sanity").mkdir()
    write_sanity([SanityResult("defocus", ["a", "b", "c"], stages, rho, 0.5)], run_dir / "sanity")


@pytest.mark.parametrize("flagged", [True, False], ids=["flagged", "passes"])
def test_report_headline_table_says_what_each_number_measures(run_dir, flagged):
    _headline_run(run_dir, flagged)
    text = build_report(run_dir).read_text()
    table = re.search(r'<table class="headline">(.*?)</table>', text, re.S).group(1)
    assert "<th>quantity</th><th>value with CI</th><th>what it measures</th>" in table
    rows = re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td><td[^>]*>(.*?)</td></tr>", table)
    by = {q: (v, m) for q, v, m in rows}
    assert by["test AUC, defocus model"][0] == "0.812 [0.700, 0.900]"
    value, measures = by["alignment skill, defocus model, pasted"]
    # the p-value with its resolution, the unit of inference
    assert value.startswith("0.100 [0.020, 0.180], p = 0.004 (one-sided sign flip")
    assert "999 permutations: p ≥ 0.001" in value
    assert "video-level: 10 videos" in measures and "0 = no better than a constant" in measures
    assert (
        by["alignment, raw score, defocus model, pasted"][0] == "0.810 [0.790, 0.830]; floor 0.790"
    )
    value, _ = by["paired difference, skill, defocus model - RGB model, pasted"]
    assert "with 10 units, p ≥ about 0.002" in value
    value, measures = by["KS test, mean local variance, real vs pasted"]
    assert value.startswith("D = 0.053, p = 0.940") and "6400 and 6400 frames" in measures
    assert "floor: what a constant attribution scores on the same pairs" in text  # the legend
    assert "Intervals and tests: video-level" in text and "1/1000 = 0.001" in text
    # the randomisation check: a row, and a banner at the top when the model is flagged
    assert "randomisation check, defocus model" in by
    banner = text.index("Attributions flagged") if flagged else -1
    assert (banner != -1) == flagged
    if flagged:
        assert banner < text.index('<h2 id="summary">')
        assert "defocus model FLAGGED" in text
    # the analysis config is folded with the run config, not in the summary
    assert re.search(r"<details><summary>analysis settings \(AnalysisConfig", text)


def test_report_warns_when_outputs_used_different_analysis_configs(run_dir):
    _headline_run(run_dir, False)
    manifest = json.loads((run_dir / "figures" / "figures_manifest.json").read_text())
    manifest["analysis_config"] = {"n_permutations": 20}
    (run_dir / "figures" / "figures_manifest.json").write_text(json.dumps(manifest))
    text = build_report(run_dir).read_text()
    assert (
        "the analysis settings of figures_manifest.json differ from those of summary.json" in text
    )


def test_report_says_when_p_below_001_cannot_be_reached(run_dir):
    _headline_run(run_dir, False)
    summary = json.loads((run_dir / "summary.json").read_text())
    for entry in summary["headline"].values():
        if isinstance(entry, dict) and "p_floor" in entry:
            entry["p_floor"] = 0.031
    (run_dir / "summary.json").write_text(json.dumps(summary))
    text = build_report(run_dir).read_text()
    assert "cannot reach p &lt; 0.01" in text and "about 0.031" in text
