"""Synthetic compendia for tests, doctests and property checks."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .compendium import make_compendium
from .exceptions import ConfigError
from .variables import RESOLUTION

__all__ = ["simulate_compendium"]


def simulate_compendium(
    n_celltypes: int = 4,
    n_assays: int = 3,
    n_positions: int = 10_000,
    *,
    n_chroms: int = 2,
    missing_frac: float = 0.25,
    n_factors: int = 4,
    noise: float = 0.1,
    seed: int = 0,
) -> xr.Dataset:
    """Simulate a labelled compendium with low-rank, multi-scale structure and missing tracks.

    The signal of (celltype c, assay a, position p) is
    ``arcsinh(softplus(sum_k w[c,a,k] (g25[p,k] + g250[p//10,k] + g5k[p//200,k]) - 1) + noise)``
    with ``w[c,a] = (u[c] + v[a]) / sqrt(2k) + u[c] v[a] / (2 sqrt(k))``
    so that a factorization model can learn it; tracks are hidden at random with probability
    ``missing_frac`` while every cell type and assay keeps at least one observed track.
    Positions are split evenly over ``chr1 .. chr<n_chroms>``, each starting at 0.

    Parameters
    ----------
    n_celltypes, n_assays, n_positions : int
        Tensor shape. Defaults are 4, 3 and 10,000.
    n_chroms : int
        Number of chromosomes. Default is 2.
    missing_frac : float
        Probability that an experiment is unobserved. Default is 0.25.
    n_factors : int
        Rank of the generating model. Default is 4.
    noise : float
        Standard deviation of the Gaussian noise. Default is 0.1.
    seed : int
        Random seed; the same seed gives the same compendium. Default is 0.

    Returns
    -------
    xarray.Dataset
        A compendium (NumPy-backed): ``signal``, ``observed``, ``celltype`` (``C0``...),
        ``assay`` (``A0``...), ``chrom`` and ``start``.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_celltypes=3, n_assays=2, n_positions=500, seed=1)
    >>> dict(ds.sizes)
    {'celltype': 3, 'assay': 2, 'position': 500}
    >>> sorted(set(ds.chrom.values))
    ['chr1', 'chr2']
    """
    if n_chroms < 1 or n_positions < n_chroms:
        raise ConfigError(
            f"need n_chroms >= 1 and at least one position per chromosome, got n_chroms="
            f"{n_chroms} and n_positions={n_positions}"
        )
    if not 0 <= missing_frac < 1:
        raise ConfigError(f"missing_frac must be in [0, 1), got {missing_frac}")
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_celltypes, n_factors))
    v = rng.normal(size=(n_assays, n_factors))
    fine = rng.normal(scale=0.3, size=(n_positions, n_factors))
    mid = np.repeat(rng.normal(size=(n_positions // 10 + 1, n_factors)), 10, axis=0)
    coarse = np.repeat(rng.normal(size=(n_positions // 200 + 1, n_factors)), 200, axis=0)
    genome = fine + mid[:n_positions] + coarse[:n_positions]
    # assay and cell type effects add up (what a concatenating network learns readily),
    # with a weaker multiplicative interaction on top
    additive = (u[:, None, :] + v[None, :, :]) / np.sqrt(2 * n_factors)
    interaction = u[:, None, :] * v[None, :, :] / (2 * np.sqrt(n_factors))
    logits = np.einsum("cak,pk->cap", additive + interaction, genome) - 1.0
    signal = np.arcsinh(np.logaddexp(0, logits) + rng.normal(scale=noise, size=logits.shape))
    signal = np.maximum(signal, 0).astype(np.float32)

    observed = rng.random((n_celltypes, n_assays)) >= missing_frac
    for c in range(n_celltypes):  # every cell type and assay keeps a track
        if not observed[c].any():
            observed[c, rng.integers(n_assays)] = True
    for a in range(n_assays):
        if not observed[:, a].any():
            observed[rng.integers(n_celltypes), a] = True
    signal[~observed] = np.nan

    bounds = np.linspace(0, n_positions, n_chroms + 1).astype(int)
    chrom = np.empty(n_positions, dtype=object)
    start = np.empty(n_positions, dtype=np.int64)
    for k in range(n_chroms):
        lo, hi = bounds[k], bounds[k + 1]
        chrom[lo:hi] = f"chr{k + 1}"
        start[lo:hi] = np.arange(hi - lo) * RESOLUTION
    return make_compendium(
        signal,
        celltypes=[f"C{i}" for i in range(n_celltypes)],
        assays=[f"A{i}" for i in range(n_assays)],
        chrom=chrom,
        start=start,
        observed=observed,
        genome="simulated",
        attrs={"simulation_seed": seed},
    )
