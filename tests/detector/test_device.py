"""``resolve_device``: names a user may type, refused in one line when not usable here."""

from __future__ import annotations

import pytest
import torch

from detector.device import resolve_device


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("gpu", "device must be"),
        ("tpu", "device must be"),
        (3, "device must be a string"),
        pytest.param(
            "cuda", "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here"),
        ),
        pytest.param(
            "mps", "MPS is not available",
            marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is here"),
        ),
    ],
)  # fmt: skip
def test_unusable_devices_are_refused(name, match):
    # caught: 'mps' or 'tpu' accepted here and failing later, mid-run, with a traceback
    with pytest.raises(ValueError, match=match):
        resolve_device(name)
