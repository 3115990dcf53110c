"""Shared fixtures: a visible seed, temporary run folders, real photos."""

from __future__ import annotations

import os

import numpy as np
import pytest

#: Seed of every random test; override with DEFOCUS_TEST_SEED=N to explore.
TEST_SEED = int(os.environ.get("DEFOCUS_TEST_SEED", "0"))


@pytest.fixture
def seed(request) -> int:
    """The seed of this test; it is printed in the report when the test fails."""
    request.node._defocus_seed = TEST_SEED
    return TEST_SEED


@pytest.fixture
def rng(seed) -> np.random.Generator:
    """A numpy generator seeded with :func:`seed`."""
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    seed_value = getattr(item, "_defocus_seed", None)
    if seed_value is not None and report.failed:
        report.sections.append(
            ("seed", f"this test ran with seed {seed_value} (DEFOCUS_TEST_SEED={seed_value})")
        )


def pytest_report_header(config):
    return f"defocus-forensics test seed: {TEST_SEED} (set DEFOCUS_TEST_SEED to change)"


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real RGB photos that ship with scikit-image and scikit-learn, uint8 (H, W, 3)."""
    from skimage import data

    out = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
    }
    try:
        from sklearn.datasets import load_sample_images

        china, flower = load_sample_images().images
        out["china"], out["flower"] = china, flower
    except Exception:  # pragma: no cover - sklearn without its sample images
        pass
    return out
