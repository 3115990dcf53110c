"""Up-front memory checks: exact arithmetic on given budgets, the machine's own figure."""

from __future__ import annotations

import pytest

from detector.memory import (
    InsufficientMemoryError,
    available_memory,
    format_bytes,
    largest_fitting,
    require_memory,
)


def test_require_memory_on_a_given_budget():
    require_memory(800, "x", available=1000)  # exactly 80 %: fits
    with pytest.raises(InsufficientMemoryError,
                       match=r"--size 50000 needs about 2.0 KiB of memory, but only 1000 B is "
                       r"available; --size 300 would fit"):  # fmt: skip
        require_memory(2000, "--size 50000", hint="--size 300 would fit", available=1000)
    assert issubclass(InsufficientMemoryError, ValueError)  # one line, exit 2 at the CLI


def test_largest_fitting_is_the_boundary():
    # 12 bytes per unit squared, budget 0.8 * 10_000 = 8000 -> n = 25 (7500), 26 (8112)
    assert largest_fitting(lambda n: 12 * n * n, 10_000, available=10_000) == 25
    assert largest_fitting(lambda n: 12 * n * n, 10, available=10_000) == 10
    assert largest_fitting(lambda n: 1e9, 10, available=10_000) is None


def test_machine_figure_and_formatting():
    avail = available_memory()
    assert avail is None or 0 < avail < 2**50
    assert format_bytes(512) == "512 B" and format_bytes(3 * 2**30) == "3.0 GiB"
