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
        ``W_g genome + (W_c E_c)[c] + (W_a E_a)[a] + b``: the same function with fewer
        FLOPs, since the cell type and assay parts are computed once per table row.
        """
        first, *rest = self.linears()
        n_c, n_a = self.config.n_celltype_factors, self.config.n_assay_factors
        weight = first.weight
        per_celltype = self.celltype.weight @ weight[:, :n_c].T
        per_assay = self.assay.weight @ weight[:, n_c : n_c + n_a].T
        track = per_celltype.index_select(0, celltype) + per_assay.index_select(0, assay)
        x = torch.addmm(track + first.bias, genome, weight[:, n_c + n_a :].T)
        for layer in rest:
            x = fast_dropout(torch.relu(x), self.config.dropout, self.training)
            x = layer(x)
        return x.squeeze(1)

    def forward(
        self, celltype: torch.Tensor, assay: torch.Tensor, position: torch.Tensor
    ) -> torch.Tensor:
        return self.head(celltype, assay, self.genome_features(position))


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with a byte-quantised rate (p rounded to a multiple of 1/256).

    Same expectation as :func:`torch.nn.functional.dropout`, but the mask comes from random
    bytes (8 per 64-bit draw), several times faster on CPU where ``bernoulli_`` dominates a
    training step. Deterministic under ``torch.manual_seed``.
    """
    if not training or p == 0:
        return x
    threshold = round(p * 256)
    n = x.numel()
    draws = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    keep = draws.view(torch.uint8)[:n].view(x.shape) >= threshold
    return x * (keep.to(x.dtype) * (256 / (256 - threshold)))
