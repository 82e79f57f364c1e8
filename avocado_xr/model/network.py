"""The Avocado network: multi-scale embeddings concatenated into a ReLU MLP (PyTorch only).

:class:`AvocadoNet` holds the genome embedding tables (one row per position: the big part)
and an :class:`AvocadoHead` (cell type and assay embeddings and the network that combines them
with genome features: the small part that imputation ships to Dask workers).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import AvocadoConfig
from ..exceptions import ConfigError
from ..genome import COARSE_SCALES

__all__ = ["AvocadoHead", "AvocadoNet", "GENOME_TABLES", "coarse_indices"]

#: names of the genome embedding tables, finest scale first
GENOME_TABLES = ("genome_25bp", "genome_250bp", "genome_5kbp")


class AvocadoHead(nn.Module):
    """Cell type and assay factors and the function that maps them and genome features to a
    prediction.

    ``architecture="deep"`` (the paper's): ``MLP([E_c[c], E_a[a], g (, avg)])`` with ReLU
    hidden layers and dropout; ``architecture="linear"`` (PREDICTD-style): the generalized dot
    product ``sum_k E_c[c,k] E_a[a,k] g[k] + b_c + b_a`` with cell type and assay factors of
    the genome features' width. With ``config.average != "none"`` the genome features carry one
    more column, the average of the same assay in the other cell types at that position
    (``"input"``: an extra input of the MLP; ``"residual"``: also added to the output).
    """

    def __init__(self, n_celltypes: int, n_assays: int, config: AvocadoConfig):
        super().__init__()
        self.config = config
        linear = config.architecture == "linear"
        n_c = config.n_genome_factors if linear else config.n_celltype_factors
        n_a = config.n_genome_factors if linear else config.n_assay_factors
        self.celltype = nn.Embedding(n_celltypes, n_c)
        self.assay = nn.Embedding(n_assays, n_a)
        hidden = []
        if linear:
            self.celltype_bias = nn.Embedding(n_celltypes, 1)
            self.assay_bias = nn.Embedding(n_assays, 1)
            self.output = None
        else:
            width = n_c + n_a + config.n_genome_factors + (config.average != "none")
            for _ in range(config.n_layers):
                hidden.append(nn.Linear(width, config.n_nodes))
                width = config.n_nodes
            self.output = nn.Linear(width, 1)
        self.hidden = nn.ModuleList(hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings U(-init, init); dense layers Glorot uniform with zero bias (Keras)."""
        bound = self.config.embedding_init
        nn.init.uniform_(self.celltype.weight, -bound, bound)
        nn.init.uniform_(self.assay.weight, -bound, bound)
        if self.config.architecture == "linear":
            nn.init.zeros_(self.celltype_bias.weight)
            nn.init.zeros_(self.assay_bias.weight)
        for layer in self.linears():
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def linears(self) -> list[nn.Linear]:
        """The dense layers, input to output (none for the linear architecture)."""
        return [*self.hidden, self.output] if self.output is not None else []

    def forward(
        self, celltype: torch.Tensor, assay: torch.Tensor, genome: torch.Tensor
    ) -> torch.Tensor:
        """Predictions for index vectors ``celltype``, ``assay`` and genome features (rows).

        The deep network's first layer ``W [E_c[c]; E_a[a]; g] + b`` is computed as
        ``W_g g + T[c, a]`` with ``T[c, a] = W_c E_c[c] + W_a E_a[a] + b`` evaluated once per
        call for every (cell type, assay) pair: the same function with fewer FLOPs and one
        gather instead of two.
        """
        if self.config.architecture == "linear":
            factors = self.celltype(celltype) * self.assay(assay)
            bias = self.celltype_bias(celltype) + self.assay_bias(assay)
            return (factors * genome).sum(1) + bias.squeeze(1)
        first, *rest = self.linears()
        n_c, n_a = self.celltype.embedding_dim, self.assay.embedding_dim
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
        x = x.squeeze(1)
        if self.config.average == "residual":
            x = x + genome[:, -1]
        return x

    @torch.no_grad()
    def predict_tracks(self, genome: torch.Tensor, tracks, averages=None) -> torch.Tensor:
        """Eval-mode predictions of several tracks at the same positions: ``(n_tracks, n)``.

        The genome part of the first layer, ``W_g g``, is computed once for all tracks, and
        the tracks' rows are stacked through the other layers (one large matmul instead of one
        per track). Same function as :meth:`forward` per track.

        Parameters
        ----------
        genome : torch.Tensor
            ``(n, n_genome_factors)`` genome features, without the average column.
        tracks : sequence of (int, int)
            (cell type, assay) rows of the tracks.
        averages : torch.Tensor, optional
            ``(n_tracks, n)`` average-of-other-cell-types inputs (models that take it).
        """
        celltype = torch.as_tensor([c for c, _ in tracks], device=genome.device)
        assay = torch.as_tensor([a for _, a in tracks], device=genome.device)
        n = len(genome)
        if self.config.architecture == "linear" or self.config.average != "none":
            rows = [
                self(
                    celltype[k].expand(n),
                    assay[k].expand(n),
                    genome if averages is None else torch.cat([genome, averages[k, :, None]], 1),
                )
                for k in range(len(tracks))
            ]
            return torch.stack(rows)
        first, *rest = self.linears()
        n_c, n_a = self.celltype.embedding_dim, self.assay.embedding_dim
        weight = first.weight
        per_track = (
            self.celltype(celltype) @ weight[:, :n_c].T
            + self.assay(assay) @ weight[:, n_c : n_c + n_a].T
            + first.bias
        )
        x = (genome @ weight[:, n_c + n_a :].T)[None, :, :] + per_track[:, None, :]
        x = x.flatten(0, 1)
        for layer in rest:
            x = layer(torch.relu(x))
        return x.view(len(tracks), n)


class AvocadoNet(nn.Module):
    """Deep tensor factorization: genome embedding tables at three scales and a head.

    A prediction for (cell type ``c``, assay ``a``, position ``p``) is
    ``head(c, a, [G25[p], G250[idx250[p]], G5k[idx5k[p]]])``.

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
            raise ConfigError("index_250bp and index_5kbp must be 1-D and of equal length")
        self.config = config
        self.register_buffer("index_250bp", index_250bp, persistent=False)
        self.register_buffer("index_5kbp", index_5kbp, persistent=False)
        sizes = (len(index_250bp), int(index_250bp.max()) + 1, int(index_5kbp.max()) + 1)
        widths = (config.n_25bp_factors, config.n_250bp_factors, config.n_5kbp_factors)
        for name, rows, width in zip(GENOME_TABLES, sizes, widths, strict=True):
            setattr(self, name, nn.Embedding(rows, width))
        self.head = AvocadoHead(n_celltypes, n_assays, config)
        bound = config.embedding_init
        for table in self.genome_tables():
            nn.init.uniform_(table.weight, -bound, bound)

    @classmethod
    def from_layout(
        cls, n_celltypes: int, n_assays: int, layout, config: AvocadoConfig
    ) -> AvocadoNet:
        """The network of a model over a :class:`~avocado_xr.genome.GenomeLayout`."""
        return cls(n_celltypes, n_assays, *coarse_indices(layout, config), config)

    @property
    def celltype(self) -> nn.Embedding:
        return self.head.celltype

    @property
    def assay(self) -> nn.Embedding:
        return self.head.assay

    def embeddings(self) -> list[nn.Embedding]:
        """The five embedding tables: cell type, assay, then genome fine to coarse."""
        return [self.celltype, self.assay, *self.genome_tables()]

    def genome_tables(self) -> list[nn.Embedding]:
        return [getattr(self, n) for n in GENOME_TABLES]

    def linears(self) -> list[nn.Linear]:
        return self.head.linears()

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

    def forward(
        self,
        celltype: torch.Tensor,
        assay: torch.Tensor,
        position: torch.Tensor,
        average: torch.Tensor | None = None,
    ) -> torch.Tensor:
        genome = self.genome_features(position)
        return self.head(celltype, assay, with_average(genome, average, self.config))


def coarse_indices(layout, config: AvocadoConfig) -> tuple[np.ndarray, np.ndarray]:
    """The 250-bp and 5-kbp bin of every position of ``layout`` under ``config.coarse_rule``.

    Examples
    --------
    >>> from avocado_xr.genome import GenomeLayout
    >>> layout = GenomeLayout.from_coords(["c1"] * 3 + ["c2"] * 2, [0, 25, 50, 0, 25])
    >>> [i.tolist() for i in coarse_indices(layout, AvocadoConfig())]
    [[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]
    >>> [i.tolist() for i in coarse_indices(layout, AvocadoConfig(coarse_rule="flat"))]
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    """
    _, mid, coarse = COARSE_SCALES
    if config.coarse_rule == "flat":
        index = np.arange(layout.n_positions)
        return index // (mid // layout.resolution), index // (coarse // layout.resolution)
    return layout.scale_index(mid)[0], layout.scale_index(coarse)[0]


def with_average(genome: torch.Tensor, average, config: AvocadoConfig) -> torch.Tensor:
    """Append the average-of-other-cell-types column when the configuration uses it."""
    if config.average == "none":
        return genome
    if average is None:
        raise ConfigError(
            "This model takes the average of the same assay in the other cell types as an "
            "input (config.average); pass it."
        )
    return torch.cat([genome, average.to(genome.dtype)[:, None]], dim=1)


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
    """``relu(x) * keep`` with one saved boolean mask for the backward pass.

    Multiplying by the boolean mask is ~8x faster on CPU than ``masked_fill`` (which was
    20% of a demo-size training step).
    """

    @staticmethod
    def forward(ctx, x, keep):
        mask = keep.logical_and_(x > 0)
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


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
