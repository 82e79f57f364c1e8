"""Denoising-autoencoder imputation baseline (Li, "Self-supervised Epigenomic Imputation
using Autoencoders").

For one cell type, the input is the matrix of all assays x ``window`` (41) consecutive 25-bp
bins, flattened row by row; a fully connected network (input -> ``n_hidden`` ReLU units ->
output of the input's size) is trained to reconstruct the matrix from a copy in which every
row was zero-masked with probability ``mask_prob`` (0.3). A track (c, a) is imputed by
masking row ``a`` of cell type ``c``, feeding every window of ``window`` bins and averaging
each bin's prediction over all the windows that contain it.

How this adaptation differs from the paper
------------------------------------------
- **Rows are the compendium's assays** (the paper: 8 fixed marks), and cell types may miss
  some of them. An unobserved row is always zero in the input and never enters the loss; the
  random masking (the denoising) applies to observed rows only. The loss is the RMSE over the
  observed rows of a minibatch plus ``l2`` times the sum of the squared weights (biases are
  not penalised).
- **Training windows are drawn from all cell types with at least one observed track** (the
  paper used only the 19 samples with all 8 marks): a window is a uniformly random (cell type,
  start) pair whose ``window`` bins lie in one segment (see below).
- **Windows never straddle chromosomes or gaps between regions**: positions are cut into
  segments of contiguous bins with :func:`avocado_xr.bins.segment_ids`. At the ends of a
  segment a bin is averaged over fewer windows (those that fit in the segment). A segment
  shorter than ``window`` bins is imputed from one window holding the segment's bins first,
  zero-padded on the right (as if the missing bins had no signal); such segments are never
  used for training.
- **An observed track is always masked when imputed**, so that every returned value is a
  genuine imputation (for cross-validation the held-out track is absent from the training
  data anyway). Unobserved tracks of a cell type share one forward pass.
- ``epochs`` counts passes over the ``n_windows`` windows sampled once before training (the
  paper trained on 100,000 windows until convergence; the number of passes is not given).
  Each pass draws fresh masks. The sampled windows are held in memory
  (``n_windows x n_assays x window`` float32, 82 MB for 100,000 windows of 5 assays).
- The paper's 5-fold grid search over the hidden size and the L2 weight is not re-run; its
  optimum (2000 units, 0.001) is the default.

Examples
--------
>>> import avocado_xr as ax
>>> from avocado_xr.evaluation.autoencoder import fit_autoencoder
>>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
>>> model = fit_autoencoder(ds, window=9, n_hidden=16, n_windows=500, batch_size=100)
>>> imp = model.impute(ds, celltypes="C0")
>>> imp.imputed.sizes["assay"], imp.attrs["method"]
(3, 'autoencoder')
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from .._compat import resolve_device
from ..bins import segment_ids
from ..compendium import position_chunks
from ..exceptions import AutoencoderError, ModelFileError, UnknownAssayError
from ..imputation import imputation_result
from ..model.persistence import load_weights, read_model_meta, write_model_dir
from ..variables import (
    CHROM,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    OBSERVED,
    RESOLUTION,
    SIGNAL,
    START,
    check_names,
    validate,
)
from ._autoencoder_net import AutoencoderState, build_net, train_net
from ._windows import (
    accumulate,
    block_windows,
    read_windows,
    sample_windows,
    window_counts,
    window_matrix,
)

__all__ = [
    "AutoencoderConfig",
    "AutoencoderModel",
    "fit_autoencoder",
    "impute_autoencoder",
    "load_autoencoder",
]

FORMAT = "avocado_xr-autoencoder-1"
CONFIG_FILE = "autoencoder.json"
WEIGHTS_FILE = "weights.pt"

#: windows pushed through the network at once when imputing (bounds task memory)
_SUB_BATCH = 4_096


@dataclass(frozen=True)
class AutoencoderConfig:
    """Settings of the denoising autoencoder (defaults: the paper's optimum).

    Parameters
    ----------
    window : int
        Bins per window. Default is 41.
    n_hidden : int
        ReLU units of the hidden layer. Default is 2000.
    mask_prob : float
        Probability of zero-masking each observed row of a training window. Default is 0.3.
    l2 : float
        Weight of the sum of squared weights in the loss. Default is 0.001.
    n_windows : int
        Training windows sampled. Default is 100,000.
    epochs : int
        Passes over the sampled windows (0 leaves the network untrained). Default is 1.
    batch_size : int
        Windows per minibatch. Default is 9,000.
    lr : float
        Adam learning rate. Default is 0.01.
    seed : int
        Seeds the window sampling, the initial weights, the order and the masks. Default 0.

    Examples
    --------
    >>> AutoencoderConfig(window=5).n_inputs(3)
    15
    >>> AutoencoderConfig(window=0)
    Traceback (most recent call last):
    ...
    avocado_xr.exceptions.AutoencoderError: window must be a positive integer, got 0.
    """

    window: int = 41
    n_hidden: int = 2000
    mask_prob: float = 0.3
    l2: float = 1e-3
    n_windows: int = 100_000
    epochs: int = 1
    batch_size: int = 9_000
    lr: float = 0.01
    seed: int = 0

    def __post_init__(self):
        for name in ("window", "n_hidden", "n_windows", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise AutoencoderError(f"{name} must be a positive integer, got {value!r}.")
            object.__setattr__(self, name, int(value))
        if not 0 <= self.mask_prob < 1:
            raise AutoencoderError(f"mask_prob must be in [0, 1), got {self.mask_prob!r}.")
        if int(self.epochs) != self.epochs or self.epochs < 0 or self.l2 < 0 or self.lr <= 0:
            raise AutoencoderError(
                f"Need an integer epochs >= 0, l2 >= 0 and lr > 0; got {self.epochs!r}, "
                f"{self.l2!r}, {self.lr!r}."
            )
        object.__setattr__(self, "epochs", int(self.epochs))

    def n_inputs(self, n_assays: int) -> int:
        """Width of the network's input and output layers."""
        return n_assays * self.window

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _impute_block(signal, seg, observed, targets, state: AutoencoderState, core, block_id=None):
    """Imputed (n_celltypes, n_targets, core size) for one block read with its halo.

    ``signal``/``seg`` hold the block plus up to ``window - 1`` bins on each side (fewer at the
    ends of the data); ``core`` lists the block boundaries, so the halo sizes follow from the
    block's index. Windows go through the network ``_SUB_BATCH`` at a time, so memory is
    bounded by the block itself, one float64 sum per target and bin, and one sub-batch.
    """
    window = state.window
    k = block_id[-1]
    lo = min(window - 1, core[k])
    hi = lo + core[k + 1] - core[k]
    observed = np.asarray(observed, dtype=bool)
    x = np.nan_to_num(np.asarray(signal, dtype=np.float32), nan=0.0) * observed[:, :, None]
    starts, lengths = block_windows(np.asarray(seg), window)
    count = window_counts(starts, lengths, x.shape[2])[lo:hi]
    out = np.empty((x.shape[0], len(targets), hi - lo), dtype=np.float32)
    for c in range(x.shape[0]):
        padded = np.pad(x[c], ((0, 0), (0, window)))
        total = np.zeros((len(targets), x.shape[2]), dtype=np.float64)
        for b in range(0, len(starts), _SUB_BATCH):
            s, n = starts[b : b + _SUB_BATCH], lengths[b : b + _SUB_BATCH]
            preds = state.predict(window_matrix(padded, s, n, window), observed[c], targets)
            for t, a in enumerate(targets):
                accumulate(total[t], preds[a], s, n)
        out[c] = total[:, lo:hi] / count
    return out


class AutoencoderModel:
    """A trained denoising autoencoder with the names of its assays (input rows).

    Made by :func:`fit_autoencoder` or :meth:`load`. The network does not depend on cell
    types or positions: it imputes any compendium with the same assays. It has the interface
    of every imputation model of the package (``impute``, ``save``, ``load``) and holds only
    learned state.

    Attributes
    ----------
    net : torch.nn.Sequential
        ``Linear(n_assays * window, n_hidden), ReLU, Linear(n_hidden, n_assays * window)``.
    config : AutoencoderConfig
        The settings it was trained with.
    assays : list of str
        The assays, in the order of the input rows.
    history : list of dict
        One record per epoch: ``epoch``, ``loss`` (mean RMSE + L2 term over the minibatches),
        ``rmse``, ``seconds`` and the training ``device``.
    """

    def __init__(
        self,
        net: torch.nn.Sequential,
        config: AutoencoderConfig,
        *,
        assays: list[str],
        history: list[dict] | None = None,
    ):
        self.net = net
        self.config = config
        self.assays = [str(a) for a in assays]
        self.history = list(history or [])

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"<AutoencoderModel: {len(self.assays)} assays x {cfg.window} bins -> "
            f"{cfg.n_hidden} hidden; {len(self.history)} epochs trained>"
        )

    @property
    def attrs(self) -> dict:
        """Provenance attributes stamped on every output Dataset."""
        from .. import __version__

        return {
            "source": f"avocado_xr-{__version__}",
            "method": "autoencoder",
            "autoencoder_config": json.dumps(self.config.to_dict(), sort_keys=True),
            "epochs_trained": len(self.history),
        }

    def impute(
        self,
        ds: xr.Dataset,
        *,
        celltypes=None,
        assays=None,
        merge: bool = True,
        position_chunk: int | None = None,
    ) -> xr.Dataset:
        """Impute tracks of ``ds`` lazily, each with its own row masked.

        Every output block of positions reads its bins plus ``window - 1`` bins on each side
        (``dask.array.map_overlap``, clipped at the ends of the data), so the result does not
        depend on the chunking. Nothing is computed here except reading ``chrom``/``start``
        (in memory for compendia opened with :func:`avocado_xr.open_compendium`).

        Parameters
        ----------
        ds : xarray.Dataset
            A compendium holding (at least) the model's assays.
        celltypes : str or list of str, optional
            Cell types of ``ds`` to impute. Default: all.
        assays : str or list of str, optional
            Assays to impute. Default: all of the model's.
        merge : bool
            Return ``ds`` (those cell types and assays) with ``imputed`` added (default), or
            ``imputed`` alone.
        position_chunk : int, optional
            Positions per output block. Default: the ``position`` chunks of a Dask-backed
            ``ds.signal``, else 131,072 (blocks shorter than the halo are merged).

        Returns
        -------
        xarray.Dataset
            ``imputed`` (celltype, assay, position), float32, Dask-backed, with ``ds``'s
            ``chrom``/``start`` coordinates and the provenance attributes.

        Examples
        --------
        >>> import avocado_xr as ax
        >>> from avocado_xr.evaluation.autoencoder import fit_autoencoder
        >>> ds = ax.testing.simulate_compendium(n_positions=600, seed=0)
        >>> model = fit_autoencoder(ds, window=5, n_hidden=8, n_windows=200, batch_size=50)
        >>> imp = model.impute(ds, assays=["A1"], position_chunk=200, merge=False)
        >>> imp.imputed.shape, imp.imputed.data.chunks[-1]
        ((4, 1, 600), (200, 200, 200))
        """
        validate(ds)
        window = self.config.window
        known = [str(a) for a in ds.get_index(DIM_ASSAY)]
        missing = [a for a in self.assays if a not in known]
        if missing:
            raise UnknownAssayError(
                f"The compendium lacks the model's assays {missing}; the autoencoder needs "
                f"every input row ({self.assays}). Add them as unobserved (all-NaN) tracks."
            )
        celltypes = check_names(celltypes, ds.get_index(DIM_CELLTYPE), DIM_CELLTYPE)
        assays = check_names(assays, self.assays, DIM_ASSAY)
        targets = [self.assays.index(a) for a in assays]

        sub = ds[[SIGNAL, OBSERVED]].sel({DIM_CELLTYPE: celltypes, DIM_ASSAY: self.assays})
        signal = sub[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
        observed = np.asarray(sub[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values)
        chunks = da.overlap.ensure_minimum_chunksize(
            window - 1, position_chunks(sub, position_chunk)
        )
        signal = (
            signal.rechunk((-1, -1, chunks))
            if isinstance(signal, da.Array)
            else da.from_array(signal, chunks=(-1, -1, chunks), name=False)
        )
        resolution = int(ds.attrs.get("resolution", RESOLUTION))
        seg = segment_ids(np.asarray(ds[CHROM].values), np.asarray(ds[START].values), resolution)
        seg = da.from_array(seg, chunks=(chunks,), name=False)
        state = dask.delayed(AutoencoderState.from_net(self.net, window), pure=True, traverse=False)
        data = da.map_overlap(
            _impute_block,
            signal,
            seg,
            depth=[{2: window - 1}, {0: window - 1}],
            boundary="none",
            trim=False,
            align_arrays=False,
            observed=observed,
            targets=targets,
            state=state,
            core=tuple(np.r_[0, np.cumsum(chunks)].tolist()),
            chunks=((len(celltypes),), (len(targets),), chunks),
            dtype=np.float32,
            meta=np.empty((0, 0, 0), dtype=np.float32),
        )
        return imputation_result(data, celltypes, assays, ds, self.attrs, merge=merge)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``autoencoder.json`` (settings, assays, history, the weights' SHA-256) and
        ``weights.pt`` (tensors only, read back with ``weights_only=True``).

        Examples
        --------
        >>> import tempfile, avocado_xr as ax
        >>> from avocado_xr.evaluation.autoencoder import AutoencoderModel, fit_autoencoder
        >>> ds = ax.testing.simulate_compendium(n_positions=500, seed=0)
        >>> model = fit_autoencoder(ds, window=5, n_hidden=8, n_windows=100, batch_size=50)
        >>> directory = tempfile.mkdtemp()
        >>> model.save(directory)
        >>> AutoencoderModel.load(directory).assays == model.assays
        True
        """
        from .. import __version__

        meta = {
            "format": FORMAT,
            "avocado_xr_version": __version__,
            "config": self.config.to_dict(),
            "assays": self.assays,
            "history": self.history,
        }
        write_model_dir(path, meta, self.net, CONFIG_FILE, WEIGHTS_FILE, overwrite=overwrite)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, device: str | torch.device = "cpu"
    ) -> AutoencoderModel:
        """Load a model written by :meth:`save` (no code from the files is executed).

        Raises
        ------
        ModelFileError
            The directory, a file, or matching weights are missing or corrupt.
        """
        path = Path(path)
        meta = read_model_meta(path, CONFIG_FILE, WEIGHTS_FILE, FORMAT, "autoencoder")
        try:
            config, assays = AutoencoderConfig(**meta["config"]), list(meta["assays"])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{path / CONFIG_FILE} is incomplete or malformed: {err}") from err
        net = build_net(config.n_inputs(len(assays)), config.n_hidden)
        load_weights(net, path / WEIGHTS_FILE, meta, CONFIG_FILE)
        net.to(resolve_device(device)).eval()
        return cls(net, config, assays=assays, history=meta.get("history", []))


def load_autoencoder(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> AutoencoderModel:
    """Load a model written by :meth:`AutoencoderModel.save`; see :meth:`AutoencoderModel.load`."""
    return AutoencoderModel.load(path, device=device)


def fit_autoencoder(
    ds: xr.Dataset,
    *,
    config: AutoencoderConfig | None = None,
    device: str | torch.device | None = None,
    verbose: bool = False,
    **settings,
) -> AutoencoderModel:
    """Train the denoising autoencoder on windows of the observed tracks of ``ds``.

    ``n_windows`` (cell type, start) pairs are drawn once, uniformly over the cell types with
    an observed track and the window starts whose ``window`` bins lie in one segment; their
    windows are read (block by block for Dask-backed data) and held in memory. Each epoch
    visits them in a new random order in minibatches of ``batch_size``, each observed row
    zero-masked with probability ``mask_prob``; the loss is the RMSE of the reconstruction
    over the observed rows plus ``l2`` times the sum of the squared weights.

    Parameters
    ----------
    ds : xarray.Dataset
        The training compendium (NumPy- or Dask-backed).
    config : AutoencoderConfig, optional
        The settings; keyword arguments named like its fields override it (``window``,
        ``n_hidden``, ``mask_prob``, ``l2``, ``n_windows``, ``epochs``, ``batch_size``,
        ``lr``, ``seed``; see :class:`AutoencoderConfig` for their defaults).
    device : str or torch.device, optional
        Training device. Default: CUDA when available, else CPU.
    verbose : bool
        Show a progress bar over the epochs. Default is False.

    Returns
    -------
    AutoencoderModel
        The trained model (on CPU, in eval mode), with ``history``.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> from avocado_xr.evaluation.autoencoder import fit_autoencoder
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> model = fit_autoencoder(ds, window=9, n_hidden=16, n_windows=300, epochs=2,
    ...                         batch_size=100)
    >>> model
    <AutoencoderModel: 3 assays x 9 bins -> 16 hidden; 2 epochs trained>
    >>> [sorted(h) for h in model.history][:1]
    [['device', 'epoch', 'loss', 'rmse', 'seconds']]
    """
    validate(ds)
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(AutoencoderConfig)})
    if unknown:
        raise AutoencoderError(
            f"fit_autoencoder() got unknown setting(s) {unknown}; the settings are the fields "
            "of AutoencoderConfig."
        )
    config = dataclasses.replace(config or AutoencoderConfig(), **settings)
    window = config.window
    assays = [str(a) for a in ds.get_index(DIM_ASSAY)]
    observed = np.asarray(ds[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values, dtype=bool)
    resolution = int(ds.attrs.get("resolution", RESOLUTION))
    seg = segment_ids(np.asarray(ds[CHROM].values), np.asarray(ds[START].values), resolution)

    rng = np.random.default_rng(config.seed)
    cells, starts = sample_windows(seg, observed, window, config.n_windows, rng)
    signal = ds[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
    windows = read_windows(signal, cells, starts, window)
    rows = observed[cells]
    windows *= rows[:, :, None]

    generator = torch.Generator().manual_seed(config.seed)
    device = resolve_device(device)
    net = build_net(config.n_inputs(len(assays)), config.n_hidden, generator).to(device)
    history = train_net(net, windows, rows, config, generator, device, verbose)
    net.cpu().eval()
    return AutoencoderModel(net, config, assays=assays, history=history)


def impute_autoencoder(train_ds: xr.Dataset, **kwargs) -> xr.Dataset:
    """Fit the autoencoder on ``train_ds`` and impute every (celltype, assay) track of it.

    Observed tracks are imputed with their own row masked.

    Parameters
    ----------
    train_ds : xarray.Dataset
        The training compendium (held-out tracks masked).
    **kwargs
        Settings of :func:`fit_autoencoder`, plus ``position_chunk`` for the output blocks.

    Returns
    -------
    xarray.Dataset
        ``imputed`` (celltype, assay, position), lazy, for all cell types and assays.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> from avocado_xr.evaluation.autoencoder import impute_autoencoder
    >>> ds = ax.testing.simulate_compendium(n_positions=500, seed=0)
    >>> imp = impute_autoencoder(ds, seed=1, window=5, n_hidden=8, n_windows=100)
    >>> dict(imp.imputed.sizes)
    {'celltype': 4, 'assay': 3, 'position': 500}
    """
    position_chunk = kwargs.pop("position_chunk", None)
    model = fit_autoencoder(train_ds, **kwargs)
    return model.impute(train_ds, position_chunk=position_chunk, merge=False)
