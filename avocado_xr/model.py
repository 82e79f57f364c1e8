"""The trained model: network, configuration and labels, with impute/factors/save."""

from __future__ import annotations

import os

import numpy as np
import torch
import xarray as xr

from .config import AvocadoConfig
from .genome import GenomeLayout
from .network import AvocadoNet

__all__ = ["AvocadoModel"]


class AvocadoModel:
    """A trained Avocado model with the names of its cell types, assays and positions.

    Made by :func:`avocado_xr.fit` or :func:`avocado_xr.load_model`; not usually built
    directly.

    Attributes
    ----------
    net : AvocadoNet
        The PyTorch module.
    config : AvocadoConfig
        Hyperparameters.
    celltypes, assays : list of str
        Labels of the embedding rows.
    layout : GenomeLayout
        The positions the genome factors belong to.
    history : list of dict
        One record per training epoch (``loss``, ``val_mse``, ``seconds``, ...).
    training : dict
        Seed, precision, training and validation tracks, genome.
    """

    def __init__(
        self,
        net: AvocadoNet,
        config: AvocadoConfig,
        *,
        celltypes: list[str],
        assays: list[str],
        layout: GenomeLayout,
        history: list[dict] | None = None,
        training: dict | None = None,
    ):
        self.net = net
        self.config = config
        self.celltypes = list(celltypes)
        self.assays = list(assays)
        self.layout = layout
        self.history = history if history is not None else []
        self.training = training or {}

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"<AvocadoModel: {len(self.celltypes)} cell types x {len(self.assays)} assays x "
            f"{self.layout.n_positions:,} positions; {cfg.n_layers}x{cfg.n_nodes} network; "
            f"{len(self.history)} epochs trained>"
        )

    @property
    def attrs(self) -> dict:
        """Provenance attributes stamped on every output Dataset."""
        from . import __version__

        return {
            "source": f"avocado_xr-{__version__}",
            "avocado_config": str(self.config.to_dict()),
            "avocado_config_digest": self.config.digest(),
            "epochs_trained": len(self.history),
            "genome": self.training.get("genome", "unknown"),
            "resolution": self.layout.resolution,
        }

    def impute(self, ds: xr.Dataset | None = None, **kwargs) -> xr.Dataset:
        """Lazy imputation; see :func:`avocado_xr.impute` (``ds=None``: all positions)."""
        from .impute import impute

        return impute(ds, self, **kwargs)

    def factors(self) -> xr.Dataset:
        """The learned factors as a labelled Dataset; see :func:`avocado_xr.factors`."""
        from .factors import factors

        return factors(self)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the model to a directory; see :func:`avocado_xr.save_model`."""
        from .persistence import save_model

        save_model(self, path, overwrite=overwrite)

    @torch.no_grad()
    def predict(self, celltype: str, assay: str, positions=None) -> np.ndarray:
        """Predicted signal of one (celltype, assay) at model position indices (NumPy).

        For labelled, blockwise output use :meth:`impute` instead.
        """
        from .variables import DIM_ASSAY, DIM_CELLTYPE, check_names

        check_names(celltype, self.celltypes, DIM_CELLTYPE)
        check_names(assay, self.assays, DIM_ASSAY)
        positions = (
            np.arange(self.layout.n_positions) if positions is None else np.asarray(positions)
        )
        device = next(self.net.parameters()).device
        self.net.eval()
        p = torch.as_tensor(positions, dtype=torch.long, device=device)
        c = torch.full_like(p, self.celltypes.index(celltype))
        a = torch.full_like(p, self.assays.index(assay))
        return self.net(c, a, p).float().cpu().numpy()

    def plot_history(self, ax=None):
        """Plot training loss and held-out MSE per epoch (matplotlib)."""
        from .plotting import plot_history

        return plot_history(self.history, ax=ax)
