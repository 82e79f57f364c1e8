"""The Avocado network: multi-scale embeddings concatenated into a ReLU MLP (PyTorch only)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import AvocadoConfig

__all__ = ["AvocadoNet", "GENOME_TABLES"]

#: names of the genome embedding tables, finest scale first
GENOME_TABLES = ("genome_25bp", "genome_250bp", "genome_5kbp")


class AvocadoNet(nn.Module):
    """Deep tensor factorization: five embedding tables feeding a feed-forward network.

    A prediction for (cell type ``c``, assay ``a``, position ``p``) is
    ``MLP([E_c[c], E_a[a], G25[p], G250[idx250[p]], G5k[idx5k[p]]])``.

    Parameters
    ----------
    n_celltypes, n_assays : int
        Rows of the cell type and assay tables.
    index_250bp, index_5kbp : array_like of int
        Coarse-bin number of every 25-bp position (see :func:`avocado_xr.genome.scale_index`).
    config : AvocadoConfig
        Sizes and regularisation.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from avocado_xr.config import AvocadoConfig
    >>> net = AvocadoNet(3, 2, np.arange(20) // 10, np.zeros(20, int),
    ...                  AvocadoConfig(n_layers=1, n_nodes=8))
    >>> net(torch.tensor([0, 2]), torch.tensor([1, 1]), torch.tensor([0, 19])).shape
    torch.Size([2])
    """

    def __init__(
        self,
        n_celltypes: int,
        n_assays: int,
        index_250bp,
        index_5kbp,
        config: AvocadoConfig,
    ):
        super().__init__()
        index_250bp = torch.as_tensor(np.asarray(index_250bp), dtype=torch.long)
        index_5kbp = torch.as_tensor(np.asarray(index_5kbp), dtype=torch.long)
        if index_250bp.shape != index_5kbp.shape or index_250bp.ndim != 1:
            raise ValueError("index_250bp and index_5kbp must be 1-D and of equal length")
        self.config = config
        self.register_buffer("index_250bp", index_250bp, persistent=False)
        self.register_buffer("index_5kbp", index_5kbp, persistent=False)
        n_positions = len(index_250bp)
        self.celltype = nn.Embedding(n_celltypes, config.n_celltype_factors)
        self.assay = nn.Embedding(n_assays, config.n_assay_factors)
        sizes = (n_positions, int(index_250bp.max()) + 1, int(index_5kbp.max()) + 1)
        widths = (config.n_25bp_factors, config.n_250bp_factors, config.n_5kbp_factors)
        for name, rows, width in zip(GENOME_TABLES, sizes, widths, strict=True):
            setattr(self, name, nn.Embedding(rows, width))
        width = config.n_celltype_factors + config.n_assay_factors + config.n_genome_factors
        hidden = []
        for _ in range(config.n_layers):
            hidden.append(nn.Linear(width, config.n_nodes))
            width = config.n_nodes
        self.hidden = nn.ModuleList(hidden)
        self.output = nn.Linear(width, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings U(-init, init); dense layers Glorot uniform with zero bias (Keras)."""
        bound = self.config.embedding_init
        for table in self.embeddings():
            nn.init.uniform_(table.weight, -bound, bound)
        for layer in self.linears():
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def linears(self) -> list[nn.Linear]:
        """The dense layers, input to output."""
        return [*self.hidden, self.output]

    def embeddings(self) -> list[nn.Embedding]:
        """The five embedding tables: cell type, assay, then genome fine to coarse."""
        return [self.celltype, self.assay, *(getattr(self, n) for n in GENOME_TABLES)]

    def genome_tables(self) -> list[nn.Embedding]:
        return [getattr(self, n) for n in GENOME_TABLES]

    def genome_features(self, position: torch.Tensor) -> torch.Tensor:
        """Concatenated genome factors (25 bp, 250 bp, 5 kbp) of the given positions."""
        return torch.cat(
            [
                self.genome_25bp(position),
                self.genome_250bp(self.index_250bp[position]),
                self.genome_5kbp(self.index_5kbp[position]),
            ],
            dim=1,
        )

    def head(
        self, celltype: torch.Tensor, assay: torch.Tensor, genome: torch.Tensor
    ) -> torch.Tensor:
        """Predict from cell type and assay indices and precomputed genome features.

        Computes ``first_layer(concat(E_c[c], E_a[a], genome))`` as
        ``W_g genome + T[c, a]`` with ``T[c, a] = W_c E_c[c] + W_a E_a[a] + b`` computed once
        per step for every (cell type, assay) pair: the same function with fewer FLOPs and one
        gather instead of two.
        """
        first, *rest = self.linears()
        n_c, n_a = self.config.n_celltype_factors, self.config.n_assay_factors
        weight = first.weight
        per_celltype = self.celltype.weight @ weight[:, :n_c].T
        per_assay = self.assay.weight @ weight[:, n_c : n_c + n_a].T + first.bias
        per_track = (per_celltype[:, None, :] + per_assay[None, :, :]).flatten(0, 1)
        track = celltype * self.assay.num_embeddings + assay
        x = torch.addmm(per_track.index_select(0, track), genome, weight[:, n_c + n_a :].T)
        p = self.config.dropout if self.training else 0.0
        for layer in rest:
            if p:
                # relu and dropout in one pass; the 1/(1-p) rescaling is applied to the
                # (much smaller) weight matrix of the next layer instead of the activations
                x, scale = relu_dropout(x, p)
                x = torch.nn.functional.linear(x, layer.weight * scale, layer.bias)
            else:
                x = layer(torch.relu(x))
        return x.squeeze(1)

    def forward(
        self, celltype: torch.Tensor, assay: torch.Tensor, position: torch.Tensor
    ) -> torch.Tensor:
        return self.head(celltype, assay, self.genome_features(position))


def dropout_keep_mask(shape, p: float, device=None) -> tuple[torch.Tensor, float]:
    """Boolean keep-mask with P(keep) = 1 - p (p rounded to a multiple of 1/256), and the
    inverted-dropout scale ``1 / P(keep)``.

    The mask comes from random bytes (8 per 64-bit draw), several times faster on CPU than
    ``bernoulli_``, which otherwise dominates a training step. Deterministic under
    ``torch.manual_seed``.
    """
    threshold = round(p * 256)
    n = int(np.prod(shape))
    draws = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=device)
    keep = draws.view(torch.uint8)[:n].view(shape) >= threshold
    return keep, 256 / (256 - threshold)


class _ReluMask(torch.autograd.Function):
    """``relu(x) * keep`` with one saved boolean mask for the backward pass."""

    @staticmethod
    def forward(ctx, x, keep):
        mask = keep.logical_and_(x > 0)
        ctx.save_for_backward(mask)
        return x.masked_fill(mask.logical_not(), 0)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad.masked_fill(mask.logical_not(), 0), None


def relu_dropout(x: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """Training-mode ``dropout(relu(x), p)`` without its rescaling: returns
    ``(relu(x) * keep, scale)``; multiply by ``scale`` (or scale the next weights) to get
    inverted dropout's expectation.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> y, scale = relu_dropout(torch.ones(10_000), 0.5)
    >>> scale, abs(float((y * scale).mean()) - 1) < 0.05
    (2.0, True)
    """
    keep, scale = dropout_keep_mask(x.shape, p, x.device)
    return _ReluMask.apply(x, keep), scale
