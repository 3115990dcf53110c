"""Cache tests run torch on one thread: on a shared 2-core machine OpenMP spinning
across two threads made tiny convolutions 20x slower (measured 8.5 s vs 0.34 s)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
