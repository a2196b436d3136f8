"""Independent float64 references for the explainer tests (numpy formulas, explicit split forwards)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyCNN(nn.Module):
    """A tiny CNN with hand-set weights: conv3x3 → ReLU → conv1x1 (target) → in-place ReLU → GAP → linear."""

    def __init__(
        self, k: int = 4, classes: int = 3, dead_channel: bool = False, duplicate: bool = False, stride: int = 1
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1, stride=stride)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(3, k, 1)
        self.act2 = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(k, classes)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.linspace(-1, 1, 81).view(3, 3, 3, 3).flip(-1) * 0.7)
            self.conv1.bias.copy_(torch.tensor([0.1, -0.2, 0.05]))
            w2 = torch.tensor([[1.0, -0.5, 0.3], [-0.4, 0.9, 0.2], [0.25, 0.5, -0.75], [0.6, -0.3, 0.8]])[:k]
            if k > 4:
                w2 = torch.cat([w2, torch.linspace(-0.5, 0.5, 3 * (k - 4)).view(k - 4, 3)])
            self.conv2.weight.copy_(w2.view(k, 3, 1, 1))
            self.conv2.bias.copy_(torch.linspace(-0.1, 0.1, k))
            if dead_channel:  # channel 0 always constant (−1 → ReLU 0 downstream; constant −1 at the target layer)
                self.conv2.weight[0].zero_()
                self.conv2.bias[0] = -1.0
            if duplicate:  # channel 2 = 2 × channel 1 (same normalised map)
                self.conv2.weight[2] = 2 * self.conv2.weight[1]
                self.conv2.bias[2] = 2 * self.conv2.bias[1]
            self.fc.weight.copy_(torch.linspace(-1.5, 1.5, classes * k).view(classes, k).roll(1, 1))
            self.fc.bias.copy_(torch.linspace(0.2, -0.2, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.act2(self.conv2(self.act1(self.conv1(x))))), 1))


def tiny_acts(m: TinyCNN, x: torch.Tensor) -> torch.Tensor:
    """Target-layer activation (conv2 output) by explicit F.conv2d calls in float64."""
    x = x.double().detach()
    with torch.no_grad():
        h = torch.relu(F.conv2d(x, m.conv1.weight.double(), m.conv1.bias.double(), padding=1, stride=m.conv1.stride))
        return F.conv2d(h, m.conv2.weight.double(), m.conv2.bias.double())


def tiny_head(m: TinyCNN, a: torch.Tensor) -> torch.Tensor:
    return torch.relu(a).mean((2, 3)) @ m.fc.weight.double().T + m.fc.bias.double()


def tiny_grads(m: TinyCNN, a: torch.Tensor, c: np.ndarray) -> np.ndarray:
    """Hand-derived ∂s_c/∂A = W_ck / (h w) · 1[A > 0] (ReLU → GAP → linear)."""
    an = a.numpy()
    b, k, h, w = an.shape
    wfc = m.fc.weight.detach().double().numpy()
    g = np.zeros_like(an)
    for i in range(b):
        g[i] = wfc[c[i]][:, None, None] / (h * w) * (an[i] > 0)
    return g


def ref_map(method: str, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The papers' formulas in float64 numpy (loops where a division needs a zero check)."""
    if method == "gradcam":
        w = g.mean((2, 3))
        m = np.einsum("bk,bkhw->bhw", w, a)
    elif method in ("gradcam++", "smoothgradcam++"):
        g1, g2, g3 = g if isinstance(g, tuple) else (g, g**2, g**3)
        s = a.sum((2, 3))
        alpha = np.zeros_like(g1)
        b, k, h, w_ = g1.shape
        for i in range(b):
            for j in range(k):
                den = 2 * g2[i, j] + s[i, j] * g3[i, j]
                nz = den != 0
                alpha[i, j][nz] = g2[i, j][nz] / den[nz]
        w = (alpha * np.maximum(g1, 0)).sum((2, 3))
        m = np.einsum("bk,bkhw->bhw", w, a)
    elif method == "xgradcam":
        s = a.sum((2, 3))
        num = (a * g).sum((2, 3))
        w = np.zeros_like(s)
        nz = s != 0
        w[nz] = num[nz] / s[nz]
        m = np.einsum("bk,bkhw->bhw", w, a)
    elif method == "layercam":
        m = (np.maximum(g, 0) * a).sum(1)
    else:
        raise ValueError(method)
    return np.maximum(m, 0)


def softmax_valid(s: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros_like(s)
    for i in range(s.shape[0]):
        v = valid[i]
        if v.any():
            e = np.exp(s[i, v] - s[i, v].max())
            out[i, v] = e / e.sum()
    return out


def minmax(m: torch.Tensor) -> torch.Tensor:
    """Per-map min-max of (N, H, W) float64, constant → 0 (written independently of wsolkit.cams)."""
    out = torch.zeros_like(m)
    for i in range(m.shape[0]):
        lo, hi = m[i].min(), m[i].max()
        if hi > lo:
            out[i] = (m[i] - lo) / (hi - lo)
    return out


def raw(method: nn.Module, x: torch.Tensor, labels=None) -> torch.Tensor:
    """The raw ``(B, h, w)`` map of an explainer's output (``out.cams[:, 0]``)."""
    out = method(x, labels)
    assert out.cams.ndim == 4 and out.cams.shape[1] == 1
    return out.cams[:, 0]
