"""Toy models with closed-form attributions, and tiny detectors with the detector surface (torch).

Used by the tests, the benchmarks and small demos. The tiny detectors have
the methods the extraction job calls on ``detector.models`` detectors
(``defocus_input``, ``classify``, ``features``, ``forward``, ``config``),
so the cache stage can be exercised in seconds on a CPU.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LinearModel",
    "MultilinearGroupModel",
    "TinyDataset",
    "TinyDetector",
    "exact_shapley_groups",
]


class LinearModel(nn.Module):
    """``f(x) = sum(w * x) + b``; expected gradients are ``w * (x - E[background])``.

    Parameters
    ----------
    weight : torch.Tensor of shape (*shape)
        The weights ``w``.
    bias : float
        The bias ``b``.
    """

    def __init__(self, weight: torch.Tensor, bias: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(weight.clone().float())
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B, 1)`` outputs for ``(B, *shape)`` inputs."""
        return ((x * self.weight).flatten(1).sum(1) + self.bias)[:, None]


class MultilinearGroupModel(nn.Module):
    """A multilinear function of group sums, whose Aumann-Shapley values are Shapley values.

    With ``z_g = sum of x over the pixels of group g`` (``G <= 10`` groups),
    ``f(x) = a . z + sum_{g<h} B_gh z_g z_h + c z_0 z_1 z_2``. ``f`` is affine
    in each ``z_g``, so along the straight path from ``b`` to ``x`` it equals
    the multilinear extension of the game ``v(S) = f(x_S, b_rest)`` on the
    diagonal; by Owen (1972) the path integral of its gradient (integrated or
    expected gradients) is then exactly the Shapley value of the groups.

    Parameters
    ----------
    groups : torch.Tensor of shape (*shape), int
        Group index of each input element, in ``0..G-1``.
    seed : int
        Seed of the coefficients ``a``, ``B``, ``c``.
    """

    def __init__(self, groups: torch.Tensor, seed: int = 0):
        super().__init__()
        n_groups = int(groups.max()) + 1
        if n_groups > 10:
            raise ValueError(f"at most 10 groups, got {n_groups}")
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("onehot", F.one_hot(groups.long(), n_groups).float())
        self.a = nn.Parameter(torch.randn(n_groups, generator=gen))
        self.B = nn.Parameter(torch.triu(torch.randn(n_groups, n_groups, generator=gen), 1) * 0.5)
        self.c = nn.Parameter(torch.tensor(0.3))
        self.n_groups = n_groups

    def group_sums(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``z`` of shape ``(B, G)`` for ``(B, *shape)`` inputs."""
        return torch.einsum("b...,...g->bg", x, self.onehot)

    def of_sums(self, z: torch.Tensor) -> torch.Tensor:
        """Return ``f`` of shape ``(B,)`` from group sums ``(B, G)``."""
        out = z @ self.a + torch.einsum("bg,gh,bh->b", z, self.B, z)
        if self.n_groups >= 3:
            out = out + self.c * z[:, 0] * z[:, 1] * z[:, 2]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B, 1)`` outputs for ``(B, *shape)`` inputs."""
        return self.of_sums(self.group_sums(x))[:, None]


def exact_shapley_groups(value_of_sums, z_x: np.ndarray, z_background: np.ndarray) -> np.ndarray:
    """Exact interventional Shapley values of ``G`` groups by enumerating all subsets.

    ``v(S) = mean over backgrounds b of f(z with groups in S from x, the rest from b)``;
    ``phi_g = sum_{S not containing g} |S|! (G-|S|-1)! / G! (v(S + g) - v(S))``.

    Parameters
    ----------
    value_of_sums : callable
        ``(K, G)`` float64 array of group sums to ``(K,)`` outputs.
    z_x : ndarray of shape (G,)
        Group sums of the explained input.
    z_background : ndarray of shape (M, G)
        Group sums of the background samples.

    Returns
    -------
    ndarray of shape (G,)
        Shapley value of each group; they sum to ``f(x) - mean f(background)``.
    """
    n_groups = len(z_x)
    subsets = np.array(list(itertools.product([0, 1], repeat=n_groups)), dtype=bool)  # (2^G, G)
    mixed = np.where(subsets[:, None, :], z_x[None, None, :], z_background[None, :, :])
    values = np.asarray(value_of_sums(mixed.reshape(-1, n_groups))).reshape(len(subsets), -1)
    v = values.mean(1)
    index = {tuple(s): k for k, s in enumerate(subsets.tolist())}
    phi = np.zeros(n_groups)
    for k, s in enumerate(subsets):
        size = int(s.sum())
        for g in np.flatnonzero(~s):
            with_g = s.copy()
            with_g[g] = True
            weight = math.factorial(size) * math.factorial(n_groups - size - 1)
            phi[g] += weight / math.factorial(n_groups) * (v[index[tuple(with_g)]] - v[k])
    return phi


class TinyDetector(nn.Module):
    """A few-thousand-parameter CNN with the surface of ``detector.models`` detectors.

    Parameters
    ----------
    kind : {"defocus", "rgb"}
        ``"defocus"`` classifies ``(B, 1, S, S)`` maps, ``"rgb"`` ``(B, 3, S, S)`` images.
    size : int
        Side ``S`` of the classifier input.
    width : int
        Channels of the hidden convolutions (the feature width ``D``).
    seed : int
        Seed of the initial weights.

    Notes
    -----
    ``defocus_input`` is a stand-in for a real defocus estimator: the
    gradient magnitude of the grey image, resized to ``S`` and min-max
    normalised per sample (sharp regions bright), ``(B, 1, S, S)`` in [0, 1].
    """

    def __init__(self, kind: str = "defocus", size: int = 16, width: int = 8, seed: int = 0):
        super().__init__()
        if kind not in ("defocus", "rgb"):
            raise ValueError(f"kind must be 'defocus' or 'rgb', got {kind!r}")
        self.kind, self.size = kind, int(size)
        channels = 1 if kind == "defocus" else 3
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
            self.act1 = nn.ReLU()
            self.conv2 = nn.Conv2d(width, width, 3, padding=1, stride=2)
            self.act2 = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(width, 1)
        self.config = {"kind": kind, "backbone": "tiny", "image_size": self.size, "width": width}

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def defocus_input(self, images: torch.Tensor) -> torch.Tensor:
        """Return the normalised ``(B, 1, S, S)`` map of ``(B, 3, H, W)`` images in [0, 1]."""
        gray = images.mean(1, keepdim=True)
        gx = gray[..., :, 1:] - gray[..., :, :-1]
        gy = gray[..., 1:, :] - gray[..., :-1, :]
        mag = F.pad(gx.abs(), (0, 1)) + F.pad(gy.abs(), (0, 0, 0, 1))
        m = self._resize(mag)
        lo = m.amin(dim=(1, 2, 3), keepdim=True)
        hi = m.amax(dim=(1, 2, 3), keepdim=True)
        return (m - lo) / (hi - lo + 1e-8)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act2(self.conv2(self.act1(self.conv1(x))))).flatten(1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B, 1)`` logits of classifier inputs ``(B, C, S, S)``."""
        return self.head(self._trunk(x))

    @torch.no_grad()
    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Return what :meth:`classify` takes: ``(B, 1, S, S)`` maps or ``(B, 3, S, S)`` images."""
        return self.defocus_input(images) if self.kind == "defocus" else self._resize(images)

    def features_from_input(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B, D)`` pooled penultimate features of classifier inputs."""
        return self._trunk(x)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Return ``(B, D)`` pooled penultimate features of ``(B, 3, H, W)`` images."""
        return self._trunk(self.model_input(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return ``(B, 1)`` logits of ``(B, 3, H, W)`` images."""
        return self.classify(self.model_input(images))


class TinyDataset(torch.utils.data.Dataset):
    """Random-texture images with the item layout of ``detector.data`` datasets.

    Sample ``i`` is real when ``i`` is even (group ``"real"``) and a fake of
    group ``"fake_a"`` or ``"fake_b"`` otherwise, paired with sample ``i - 1``;
    fakes carry a square ground-truth mask where the texture was blurred.

    Parameters
    ----------
    n : int
        Number of samples.
    size : int
        Image side.
    seed : int
        Seed of the pixels (sample ``i`` uses ``(seed, i)``).
    broken : sequence of int
        Indices whose ``__getitem__`` raises ``OSError`` (an unreadable file).
    """

    def __init__(self, n: int = 12, size: int = 16, seed: int = 0, broken=()):
        from types import SimpleNamespace

        self.n, self.size, self.seed, self.broken = int(n), int(size), int(seed), set(broken)
        self.has_masks = True
        self.samples = []
        for i in range(self.n):
            fake = i % 2 == 1
            group = ("fake_a" if i % 4 == 1 else "fake_b") if fake else "real"
            self.samples.append(
                SimpleNamespace(
                    id=f"s{i:04d}",
                    label=int(fake),
                    group=group,
                    pair_id=f"s{i - 1:04d}" if fake else "",
                    path="",
                    mask_path="",
                )
            )

    def __len__(self) -> int:
        return self.n

    def describe(self) -> dict:
        """Return a plain-dict summary."""
        return {"dataset": "TinyDataset", "n": self.n, "size": self.size, "seed": self.seed}

    def __getitem__(self, index: int) -> dict:
        if index in self.broken:
            raise OSError(f"cannot identify image file for sample s{index:04d}")
        rec = self.samples[index]
        gen = torch.Generator().manual_seed(self.seed * 100003 + index)
        img = torch.rand((3, self.size, self.size), generator=gen)
        img = F.avg_pool2d(img[None], 3, 1, 1)[0]
        mask = torch.zeros((1, self.size, self.size))
        if rec.label:
            q = self.size // 4
            img[:, q : 3 * q, q : 3 * q] = F.avg_pool2d(
                img[None, :, q : 3 * q, q : 3 * q], 5, 1, 2
            )[0]
            mask[:, q : 3 * q, q : 3 * q] = 1.0
        return {
            "image": img,
            "mask": mask,
            "label": rec.label,
            "id": rec.id,
            "group": rec.group,
            "pair_id": rec.pair_id,
            "index": index,
        }
