"""Plots: observed vs imputed signal over a locus, and training curves (matplotlib)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .compendium import region as select_region
from .exceptions import RegionError
from .variables import CHROM, DIM_ASSAY, DIM_CELLTYPE, DIM_POSITION, IMPUTED, SIGNAL, START

__all__ = ["plot_history", "plot_locus"]


def plot_locus(
    ds: xr.Dataset,
    locus,
    tracks,
    *,
    imputed: xr.Dataset | xr.DataArray | None = None,
    ax=None,
    title: str | None = None,
):
    """Plot observed (filled) and imputed (line) signal of some tracks over a locus.

    Parameters
    ----------
    ds : xarray.Dataset
        Compendium with ``signal`` (observed values; hidden tracks may be all NaN), and
        optionally ``imputed``.
    locus : str or tuple
        ``"chr11:2,000,000-2,100,000"`` or ``(chrom, start, end)``.
    tracks : list of (celltype, assay)
        One panel per track.
    imputed : Dataset or DataArray, optional
        Imputation to overlay (default: ``ds.imputed`` if present).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if isinstance(locus, str) or len(locus) == 3:
        sub = select_region(ds, *((locus,) if isinstance(locus, str) else locus))
    else:
        raise RegionError(f"locus must be 'chr:start-end' or (chrom, start, end), got {locus!r}")
    if imputed is None and IMPUTED in ds:
        imputed = ds[IMPUTED]
    if isinstance(imputed, xr.Dataset):
        imputed = imputed[IMPUTED]
    if imputed is not None:
        imputed = (
            imputed.sel({DIM_POSITION: imputed[DIM_POSITION].isin(sub[DIM_POSITION])})
            if DIM_POSITION in imputed.coords
            else select_region(imputed, *((locus,) if isinstance(locus, str) else locus))
        )
    tracks = list(tracks)
    if ax is None:
        fig, axes = plt.subplots(
            len(tracks), 1, figsize=(10, 1.8 * len(tracks) + 0.6), sharex=True, squeeze=False
        )
        axes = axes[:, 0]
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    x = np.asarray(sub[START].values)
    for axis, (celltype, assay) in zip(axes, tracks, strict=True):
        sel = {DIM_CELLTYPE: celltype, DIM_ASSAY: assay}
        if SIGNAL in sub:
            observed = np.asarray(sub[SIGNAL].sel(sel).values)
            if np.isfinite(observed).any():
                axis.fill_between(x, observed, step="post", color="0.6", label="observed")
        if imputed is not None:
            values = np.asarray(imputed.sel(sel).values)
            axis.step(x, values, where="post", color="tab:green", lw=1, label="imputed")
        axis.set_ylabel(f"{celltype}\n{assay}", rotation=0, ha="right", va="center", fontsize=8)
        axis.spines[["top", "right"]].set_visible(False)
    chrom = str(sub[CHROM].values[0])
    axes[-1].set_xlabel(f"{chrom} position (bp)")
    axes[0].legend(loc="upper right", fontsize=8, frameon=False)
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], ax=None):
    """Training loss and held-out MSE per epoch."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    else:
        fig = ax.figure
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], "o-", label="training loss")
    if any("val_mse" in h for h in history):
        ax.plot(epochs, [h.get("val_mse", np.nan) for h in history], "s-", label="held-out MSE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
