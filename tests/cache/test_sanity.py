"""The torch side of the model-randomisation check: layers, stages, seeded re-initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analysis.sanity import sanity_result
from cache.explainers import ExplainerConfig
from cache.sanity import (
    cascade_stages,
    parameter_layers,
    randomisation_attributions,
    reinitialise,
)
from cache.testing import TinyDataset, TinyDetector


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core machine
    yield
    torch.set_num_threads(before)


def test_layers_and_cascade_stages():
    model = TinyDetector("defocus", 16, 4)
    assert parameter_layers(model) == ["conv1", "conv2", "head"]
    stages = cascade_stages(parameter_layers(model))
    assert [s["name"] for s in stages] == ["top-1", "top-2", "all"]
    assert stages[0]["layers"] == ["head"] and stages[-1]["lowest"] == "conv1"
    deep = nn.Sequential(*[nn.Linear(3, 3) for _ in range(10)])
    got = cascade_stages(parameter_layers(deep), max_stages=4)
    assert [s["n_layers"] for s in got] == [1, 4, 7, 10] and got[-1]["name"] == "all"
    with pytest.raises(ValueError, match="no layer"):
        cascade_stages([])


def test_reinitialise_is_seeded_per_layer_and_leaves_the_original():
    model = TinyDetector("defocus", 16, 4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    one = reinitialise(model, ["head"], seed=3)
    two = reinitialise(model, ["head", "conv2"], seed=3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the original is untouched
    assert not torch.equal(one.head.weight, model.head.weight)
    assert torch.equal(one.head.weight, two.head.weight)  # same layer, same random weights
    assert torch.equal(one.conv2.weight, model.conv2.weight)  # not in the stage
    assert not torch.equal(two.conv2.weight, model.conv2.weight)
    other = reinitialise(model, ["head"], seed=4)
    assert not torch.equal(other.head.weight, one.head.weight)
    with pytest.raises(ValueError, match="no layer"):
        reinitialise(model, ["nothere"])


def _trained_tiny_detector():
    """A TinyDetector trained to tell TinyDataset's fakes (a blurred square) from reals."""
    ds = TinyDataset(64, 16, seed=1)
    model = TinyDetector("defocus", 16, 8, seed=0)
    x = torch.cat([model.model_input(ds[i]["image"][None]) for i in range(len(ds))])
    y = torch.tensor([float(ds[i]["label"]) for i in range(len(ds))])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    torch.manual_seed(0)
    for _ in range(120):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model.classify(x)[:, 0], y)
        loss.backward()
        opt.step()
    model.eval()
    accuracy = float(((model.classify(x)[:, 0] > 0).float() == y).float().mean())
    return model, x, y, ds, accuracy


class _WeightBlind(nn.Module):
    """``f(x) = w * sum(x**2) + b``, whose attributions ignore the weights.

    Expected gradients are ``E[(x - r) * 2 w (r + a (x - r))] = w (x**2 - E[r**2])``
    (background ``r``, ``a`` uniform), so ``|attr|`` ranks the pixels the same for any ``w``.
    """

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def classify(self, x):
        return self.lin((x**2).flatten(1).sum(1, keepdim=True))


@pytest.mark.slow
def test_check_separates_a_trained_model_from_its_randomised_copy():
    model, x, y, ds, accuracy = _trained_tiny_detector()
    assert accuracy == 1.0
    fakes = torch.nonzero(y == 1)[:8, 0]
    ids = [ds[int(i)]["id"] for i in fakes]
    background = x[torch.nonzero(y == 0)[:4, 0]]
    cfg = ExplainerConfig(nsamples=16, seed=0)
    stages = cascade_stages(parameter_layers(model))
    trained, randomised = randomisation_attributions(
        model, x[fakes], ids, background, cfg, stages, seed=0
    )
    res = sanity_result("defocus", ids, trained, randomised, stages)
    assert not res.flagged and res.full_median < 0.5
    # the same model "re-initialised" nowhere gives the same maps (the pipeline itself is exact)
    same, _ = randomisation_attributions(model, x[fakes], ids, background, cfg, [], seed=0)
    np.testing.assert_array_equal(same, trained)
    # a model whose attributions ignore its weights is flagged
    blind = _WeightBlind().eval()
    b_stages = cascade_stages(parameter_layers(blind))
    tb, rb = randomisation_attributions(blind, x[fakes], ids, background, cfg, b_stages, seed=0)
    res_blind = sanity_result("blind", ids, tb, rb, b_stages)
    assert res_blind.flagged and res_blind.full_median > 0.9
