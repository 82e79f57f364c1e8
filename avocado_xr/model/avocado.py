"""The trained model: network, configuration and labels, with impute, factors, save and load."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .._compat import preserve_model_state, resolve_device
from ..config import AvocadoConfig
from ..coords import genome_coords
from ..exceptions import ModelFileError
from ..genome import GenomeLayout
from ..variables import DIM_ASSAY, DIM_CELLTYPE, check_names
from .genome_store import GenomeFactorStore
from .network import AvocadoHead, AvocadoNet
from .persistence import load_weights, read_model_meta, write_model_dir

__all__ = ["AvocadoModel", "load_model", "save_model"]

FORMAT = "avocado_xr-model-1"
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"


class AvocadoModel:
    """A trained Avocado model with the names of its cell types, assays and positions.

    Made by :func:`avocado_xr.fit` or :func:`avocado_xr.load_model`; not usually built
    directly. Every imputation model of the package (this one, the autoencoder) has the same
    interface: ``impute(ds, *, celltypes, assays, merge, position_chunk)``, ``save(path)``
    and a ``load(path)`` class method.

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
    training_info : dict
        How the model was trained: seed, precision, training and validation tracks, genome.
    genome : GenomeFactorStore or None
        For a genome-wide model (:func:`avocado_xr.fit_genome`): the genome factors on zarr,
        read block by block; ``net`` is then None and only the head is in memory.
    """

    def __init__(
        self,
        net: AvocadoNet | None,
        config: AvocadoConfig,
        *,
        celltypes: list[str],
        assays: list[str],
        layout: GenomeLayout,
        history: list[dict] | None = None,
        training_info: dict | None = None,
        genome=None,
        head: AvocadoHead | None = None,
    ):
        if (net is None) == (genome is None) or (net is None and head is None):
            raise ModelFileError(
                "An AvocadoModel holds either a network with its genome tables, or a head and "
                "a genome-factor store."
            )
        self.net = net
        self.genome = genome
        self._head = head
        self.config = config
        self.celltypes = list(celltypes)
        self.assays = list(assays)
        self.layout = layout
        self.history = history if history is not None else []
        self.training_info = training_info or {}

    def __repr__(self) -> str:
        cfg = self.config
        where = "" if self.genome is None else f"; genome factors in {self.genome.path}"
        return (
            f"<AvocadoModel: {len(self.celltypes)} cell types x {len(self.assays)} assays x "
            f"{self.layout.n_positions:,} positions; {cfg.n_layers}x{cfg.n_nodes} network; "
            f"{len(self.history)} epochs trained{where}>"
        )

    @property
    def head(self) -> AvocadoHead:
        """Cell type and assay factors and the network (the part shipped to workers)."""
        return self.net.head if self.net is not None else self._head

    def genome_features(self, positions) -> np.ndarray:
        """``(len(positions), n_genome_factors)`` genome features of model positions."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.genome is not None:
            return self.genome.features(positions)
        with torch.no_grad():
            device = next(self.net.parameters()).device
            index = torch.as_tensor(positions, device=device)
            return self.net.genome_features(index).float().cpu().numpy()

    @property
    def attrs(self) -> dict:
        """Provenance attributes stamped on every output Dataset."""
        from .. import __version__

        return {
            "source": f"avocado_xr-{__version__}",
            "avocado_config": str(self.config.to_dict()),
            "avocado_config_digest": self.config.digest(),
            "epochs_trained": len(self.history),
            "genome": self.training_info.get("genome", "unknown"),
            "resolution": self.layout.resolution,
        }

    def positions(self) -> xr.Dataset:
        """The model's positions: a Dataset of ``chrom``/``start`` coordinates (no data),
        e.g. to impute a region: ``model.impute(model.positions().avocado.region(...))``."""
        return xr.Dataset(
            coords=genome_coords(self.layout),
            attrs={"resolution": self.layout.resolution, **self.attrs},
        )

    def impute(self, ds: xr.Dataset | None = None, **kwargs) -> xr.Dataset:
        """Lazy imputation; see :func:`avocado_xr.impute` (``ds=None``: all positions)."""
        from .impute import impute

        return impute(ds, self, **kwargs)

    def factors(self) -> xr.Dataset:
        """The learned factors as a labelled Dataset; see :func:`avocado_xr.factors`."""
        from .factors import factors

        return factors(self)

    @torch.no_grad()
    def predict(self, celltype: str, assay: str, positions=None) -> np.ndarray:
        """Predicted signal of one (celltype, assay) at model position indices (NumPy).

        The network runs in eval mode; its train/eval mode is restored afterwards. For
        labelled, blockwise output use :meth:`impute` instead.
        """
        check_names(celltype, self.celltypes, DIM_CELLTYPE)
        check_names(assay, self.assays, DIM_ASSAY)
        positions = (
            np.arange(self.layout.n_positions) if positions is None else np.asarray(positions)
        )
        head = self.head
        device = next(head.parameters()).device
        genome = torch.from_numpy(self.genome_features(positions)).to(device)
        c = torch.full((len(positions),), self.celltypes.index(celltype), device=device)
        a = torch.full((len(positions),), self.assays.index(assay), device=device)
        with preserve_model_state(head):
            head.eval()
            return head(c, a, genome).float().cpu().numpy()

    def add_celltypes(self, ds: xr.Dataset, **kwargs) -> AvocadoModel:
        """A new model that also imputes the new cell types of ``ds`` (only their factors are
        learned); see :func:`avocado_xr.add_celltypes`."""
        from .transfer import add_celltypes

        return add_celltypes(self, ds, **kwargs)

    def add_assays(self, ds: xr.Dataset, **kwargs) -> AvocadoModel:
        """A new model that also imputes the new assays of ``ds`` (only their factors are
        learned); see :func:`avocado_xr.add_assays`."""
        from .transfer import add_assays

        return add_assays(self, ds, **kwargs)

    def fine_tune(self, ds: xr.Dataset, **kwargs) -> AvocadoModel:
        """A fine-tuned copy (reduced learning rate, held-out validation, early stopping);
        see :func:`avocado_xr.fine_tune`."""
        from .fine_tune import fine_tune

        return fine_tune(self, ds, **kwargs)

    def plot_history(self, ax=None):
        """Plot training loss and held-out MSE per epoch (matplotlib)."""
        from ..plotting import plot_history

        return plot_history(self.history, ax=ax)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``model.json`` (configuration, labels, genome layout, history, the weights'
        SHA-256) and ``weights.pt`` (tensors only) into the directory ``path``."""
        from .. import __version__

        meta = {
            "format": FORMAT,
            "avocado_xr_version": __version__,
            "config": self.config.to_dict(),
            "celltypes": self.celltypes,
            "assays": self.assays,
            "layout": self.layout.to_dict(),
            "history": self.history,
            "training_info": self.training_info,
        }
        module = self.net
        if self.genome is not None:  # the head's weights here; the genome factors stay put
            meta["genome_store"] = os.path.relpath(self.genome.path, Path(path).resolve())
            module = self.head
        write_model_dir(path, meta, module, CONFIG_FILE, WEIGHTS_FILE, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> AvocadoModel:
        """Load a model written by :meth:`save`; see :func:`avocado_xr.load_model`."""
        path = Path(path)
        meta = read_model_meta(path, CONFIG_FILE, WEIGHTS_FILE, FORMAT, "model")
        try:
            config = AvocadoConfig.from_dict(meta["config"])
            layout = GenomeLayout.from_dict(meta["layout"])
            celltypes, assays = list(meta["celltypes"]), list(meta["assays"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{path / CONFIG_FILE} is incomplete or malformed: {err}") from err
        common = dict(
            celltypes=celltypes,
            assays=assays,
            layout=layout,
            history=list(meta.get("history", [])),
            training_info=dict(meta.get("training_info", {})),
        )
        if "genome_store" in meta:  # a genome-wide model: head here, factors on zarr
            head = AvocadoHead(len(celltypes), len(assays), config)
            load_weights(head, path / WEIGHTS_FILE, meta, CONFIG_FILE)
            store = GenomeFactorStore((path.resolve() / meta["genome_store"]).resolve())
            if store.layout != layout:
                raise ModelFileError(
                    f"The genome-factor store {store.path} has another layout than {path}."
                )
            head.to(resolve_device(device)).eval()
            return cls(None, config, head=head, genome=store, **common)
        net = AvocadoNet.from_layout(len(celltypes), len(assays), layout, config)
        load_weights(net, path / WEIGHTS_FILE, meta, CONFIG_FILE)
        net.to(resolve_device(device)).eval()
        return cls(net, config, **common)


def save_model(model: AvocadoModel, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a model to the directory ``path`` (see :meth:`AvocadoModel.save`).

    The weights file holds only tensors (a state dict) and is read back with
    ``torch.load(weights_only=True)``; its SHA-256 is recorded in ``model.json``.
    """
    model.save(path, overwrite=overwrite)


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> AvocadoModel:
    """Load a model written by :func:`save_model`, without executing code from the files.

    The weights are checked against the SHA-256 recorded at save time, then read with
    ``weights_only=True``.

    Parameters
    ----------
    path : str or path
        The model directory.
    device : str or torch.device
        Where to put the network. Default is "cpu".

    Raises
    ------
    ModelFileError
        The directory or a file is missing, malformed, corrupt or of another format.

    Examples
    --------
    >>> import tempfile, avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> model = ax.fit(ds, epochs=1, n_layers=1, n_nodes=8, batch_size=500, device="cpu")
    >>> directory = tempfile.mkdtemp()
    >>> model.save(directory)
    >>> ax.load_model(directory).celltypes == model.celltypes
    True
    """
    return AvocadoModel.load(path, device=device)
