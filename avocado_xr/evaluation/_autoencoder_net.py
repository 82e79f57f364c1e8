"""The autoencoder's network: construction, training loop, and the CPU state shipped to
Dask workers for imputation."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .._compat import TORCH_LOCK
from .._progress import progress

__all__ = ["AutoencoderState", "build_net", "train_net"]


@dataclass(frozen=True)
class AutoencoderState:
    """CPU NumPy weights shipped to the Dask workers once, as one task."""

    window: int
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def from_net(cls, net: torch.nn.Sequential, window: int) -> AutoencoderState:
        def cpu(t):
            return t.detach().float().cpu().numpy().copy()

        return cls(
            window, cpu(net[0].weight), cpu(net[0].bias), cpu(net[2].weight), cpu(net[2].bias)
        )

    def predict(
        self, x: np.ndarray, observed: np.ndarray, targets: list[int]
    ) -> dict[int, np.ndarray]:
        """Per target assay, the (n_windows, window) predictions of its row, that row masked.

        ``x`` is (n_windows, n_assays, window) with unobserved rows already zero. The first
        layer is computed once; masking an observed row subtracts that row's part, and the
        unobserved targets share one hidden layer.
        """
        w = self.window
        w1, b1 = torch.from_numpy(self.w1), torch.from_numpy(self.b1)
        w2, b2 = torch.from_numpy(self.w2), torch.from_numpy(self.b2)
        out = {}
        with TORCH_LOCK, torch.no_grad():
            xb = torch.from_numpy(x.reshape(len(x), -1))
            pre = xb @ w1.T + b1
            hidden_all = None
            for a in targets:
                cols = slice(a * w, (a + 1) * w)
                if observed[a]:
                    hidden = torch.relu(pre - xb[:, cols] @ w1[:, cols].T)
                else:
                    if hidden_all is None:
                        hidden_all = torch.relu(pre)
                    hidden = hidden_all
                out[a] = (hidden @ w2[cols].T + b2[cols]).numpy()
        return out


def build_net(n_in: int, n_hidden: int, generator: torch.Generator | None = None):
    """The 3-layer network; Glorot-uniform weights and zero biases (TensorFlow's defaults)."""
    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, n_hidden), torch.nn.ReLU(), torch.nn.Linear(n_hidden, n_in)
    )
    with torch.no_grad():
        for layer in (net[0], net[2]):
            torch.nn.init.xavier_uniform_(layer.weight, generator=generator)
            layer.bias.zero_()
    return net


def train_net(net, windows, rows, config, generator, device, verbose) -> list[dict]:
    x_all = torch.from_numpy(windows).to(device)
    rows_all = torch.from_numpy(rows).to(device)
    n, n_assays, window = windows.shape
    weights = [net[0].weight, net[2].weight]
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    history = []
    net.train()
    for epoch in progress(
        range(config.epochs), desc="autoencoder", total=config.epochs, verbose=verbose
    ):
        tic = time.perf_counter()
        losses, rmses = [], []
        order = torch.randperm(n, generator=generator)
        for lo in range(0, n, config.batch_size):
            idx = order[lo : lo + config.batch_size]
            keep_draw = torch.rand((len(idx), n_assays), generator=generator)
            idx = idx.to(device)
            x, obs = x_all[idx], rows_all[idx]
            keep = obs & (keep_draw.to(device) >= config.mask_prob)
            pred = net((x * keep[:, :, None]).reshape(len(idx), -1)).reshape(x.shape)
            count = obs.sum().clamp(min=1) * window
            rmse = torch.sqrt(((pred - x) ** 2 * obs[:, :, None]).sum() / count)
            loss = rmse + config.l2 * sum(w.pow(2).sum() for w in weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            rmses.append(rmse.item())
        history.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                "rmse": float(np.mean(rmses)),
                "seconds": time.perf_counter() - tic,
                "device": str(device),
            }
        )
    return history
