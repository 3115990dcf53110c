"""Reference mode against the paper's own code, run unmodified beside ours.

The paper's repository (irissun9602/Defocus-Deepfake-Detection) is not part
of this project. The test finds a checkout in ``$DEFOCUS_PAPER_CODE`` or
extracts ``util/`` and ``model/`` from a bare mirror
(``$DEFOCUS_PAPER_MIRROR``, default the workplace's mirror) into a temporary
folder, and is skipped when neither exists or when the paper's imports
(``guided-filter-pytorch``, ``opencv-python-headless``: the ``paper`` extra)
are missing. What it would catch: any change of the reference maps away
from the paper's (a changed clamp, kernel orientation, batch maximum,
border handling of the guided filter, Canny thresholds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from detector.defocus import DefocusConfig, estimate_defocus

MIRROR = "/work/.mirror/irissun9602+Defocus-Deepfake-Detection/repo"


@pytest.fixture(scope="module")
def paper_code(tmp_path_factory) -> Path:
    pytest.importorskip("guided_filter_pytorch", reason="the paper's code needs it (paper extra)")
    pytest.importorskip("cv2", reason="the paper's code imports cv2 (paper extra)")
    given = os.environ.get("DEFOCUS_PAPER_CODE")
    if given:
        root = Path(given)
        if not (root / "util" / "defocus_processing.py").is_file():
            pytest.skip(f"DEFOCUS_PAPER_CODE={given} holds no util/defocus_processing.py")
        return root
    mirror = os.environ.get("DEFOCUS_PAPER_MIRROR", MIRROR)
    if not Path(mirror).is_dir():
        pytest.skip("no checkout or mirror of the paper's code")
    root = tmp_path_factory.mktemp("paper-code")
    archive = root / "code.tar"
    with archive.open("wb") as f:
        subprocess.run(
            ["git", "--git-dir", mirror, "archive", "HEAD", "util"], stdout=f, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.fixture(scope="module")
def paper(paper_code):
    sys.path.insert(0, str(paper_code))
    try:
        import util.defocus_processing as module
    finally:
        sys.path.remove(str(paper_code))
    return module


def _paper_maps(paper, images):
    """The paper's pipeline as its model runs it (``run_defocus_pipeline``)."""
    device = torch.device("cpu")
    gray = torch.mean(images, dim=1, keepdim=True)
    edges = paper.compute_edge_map(gray, device)
    sparse = paper.estimate_sparse_blur(gray, edges, device)
    dense = paper.closed_form_matting(images, sparse, device)
    return dense, sparse, edges


@pytest.mark.parametrize("symmetric", [False, True])
def test_reference_mode_reproduces_the_papers_code(paper, photos, symmetric):
    crops = [photos[k][:256, :320] for k in ("astronaut", "coffee", "chelsea", "rocket")]
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    # the paper's loader hands the pipeline 2x - 1; ours takes x and input_range="symmetric"
    dense_p, sparse_p, _ = _paper_maps(paper, 2 * x - 1 if symmetric else x)
    config = DefocusConfig(input_range="symmetric" if symmetric else "unit")
    ours = estimate_defocus(x, config)
    # the paper's guide is the mean of the resized RGB image; ours resizes the mean
    # (equal up to float rounding), so dense maps agree to 1e-4, sparse maps exactly
    # but where R sits within rounding of a clamp (a sqrt near 0)
    torch.testing.assert_close(ours.defocus, dense_p, rtol=0, atol=1e-4)
    close = (ours.sparse - sparse_p).abs() <= 1e-4
    assert close.float().mean() >= 0.9999
