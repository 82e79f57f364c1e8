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
  segments of contiguous bins with :func:`avocado_xr.genome.segment_ids`. At the ends of a
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
>>> from avocado_xr.autoencoder import fit_autoencoder
>>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
>>> model = fit_autoencoder(ds, window=9, n_hidden=16, n_windows=500, batch_size=100)
>>> imp = model.impute(ds, celltypes="C0")
>>> imp.imputed.sizes["assay"], imp.attrs["method"]
(3, 'autoencoder')
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ._compat import TORCH_LOCK, resolve_device
from .compendium import DEFAULT_POSITION_CHUNK
from .exceptions import AvocadoXrError, ChunkingError, ModelFileError, UnknownAssayError
from .genome import segment_ids
from .impute import imputation_dataset
from .variables import (
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

__all__ = [
    "AutoencoderError",
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


class AutoencoderError(AvocadoXrError, ValueError):
    """The data or the settings do not allow fitting or applying the autoencoder."""


# --------------------------------------------------------------------------- windows


def _segment_runs(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and length of each run of equal segment ids."""
    if len(seg) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    return first.astype(np.int64), np.diff(np.r_[first, len(seg)]).astype(np.int64)


def _block_windows(seg: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window over positions ``0 .. len(seg) - 1`` that stays within one segment.

    Returns the sorted ``starts`` and the ``lengths`` (``window``, or the length of a segment
    shorter than ``window``, which gets one zero-padded window).

    Examples
    --------
    >>> starts, lengths = _block_windows(np.array([0, 0, 0, 0, 1, 1, 2, 2, 2]), 3)
    >>> starts.tolist(), lengths.tolist()
    ([0, 1, 4, 6], [3, 3, 2, 3])
    """
    first, length = _segment_runs(np.asarray(seg))
    starts, lengths = [], []
    for lo, n in zip(first.tolist(), length.tolist(), strict=True):
        if n >= window:
            starts.append(np.arange(lo, lo + n - window + 1, dtype=np.int64))
            lengths.append(np.full(n - window + 1, window, dtype=np.int64))
        else:
            starts.append(np.array([lo], dtype=np.int64))
            lengths.append(np.array([n], dtype=np.int64))
    if not starts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(starts), np.concatenate(lengths)


def _accumulate(total: np.ndarray, pred: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Add ``pred[i, k]`` to ``total[starts[i] + k]`` for ``k < lengths[i]`` (starts unique)."""
    for k in range(pred.shape[1]):
        sel = lengths > k
        total[starts[sel] + k] += pred[sel, k]


def _average_windows(
    pred: np.ndarray, starts: np.ndarray, lengths: np.ndarray, size: int
) -> np.ndarray:
    """Mean over windows of each bin's predictions.

    Window ``i`` covers bins ``starts[i] .. starts[i] + lengths[i] - 1`` and predicts them in
    ``pred[i, :lengths[i]]``; columns past ``lengths[i]`` (padding) are ignored. ``starts``
    must be unique. Bins that no window covers are NaN.

    Examples
    --------
    >>> pred = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 0.0]])
    >>> _average_windows(pred, np.array([0, 1, 5]), np.array([3, 3, 2]), 8).tolist()
    [1.0, 3.0, 4.0, 6.0, nan, 7.0, 8.0, nan]
    """
    total = np.zeros(size, dtype=np.float64)
    _accumulate(total, pred, starts, lengths)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / _window_counts(starts, lengths, size)).astype(np.float32)


def _window_counts(starts: np.ndarray, lengths: np.ndarray, size: int) -> np.ndarray:
    """Number of windows covering each bin."""
    count = np.zeros(size, dtype=np.int64)
    for k in range(int(lengths.max(initial=0))):
        count[starts[lengths > k] + k] += 1
    return count


def _window_matrix(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray, window: int):
    """Inputs (n_windows, n_assays, window) from one cell type's (n_assays, L + window) signal.

    ``padded`` ends with ``window`` zero bins; bins past a window's length are zero (padding
    of a segment shorter than the window).
    """
    offsets = np.arange(window)
    out = padded[:, starts[:, None] + offsets]  # (A, n, w)
    out = out.transpose(1, 0, 2) * (offsets < lengths[:, None])[:, None, :]
    return np.ascontiguousarray(out, dtype=np.float32)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class _AutoencoderState:
    """CPU NumPy weights shipped to the Dask workers once, as one task."""

    window: int
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def from_net(cls, net: torch.nn.Sequential, window: int) -> _AutoencoderState:
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


def _impute_block(signal, seg, observed, targets, lo, hi, state: _AutoencoderState):
    """Imputed (n_celltypes, n_targets, hi - lo) for bins ``lo:hi`` of a block with halo.

    Windows go through the network ``_SUB_BATCH`` at a time, so memory is bounded by the
    block itself, one float64 sum per target and bin, and one sub-batch of windows.
    """
    window = state.window
    observed = np.asarray(observed, dtype=bool)
    x = np.nan_to_num(np.asarray(signal, dtype=np.float32), nan=0.0) * observed[:, :, None]
    starts, lengths = _block_windows(np.asarray(seg), window)
    count = _window_counts(starts, lengths, x.shape[2])[lo:hi]
    out = np.empty((x.shape[0], len(targets), hi - lo), dtype=np.float32)
    for c in range(x.shape[0]):
        padded = np.pad(x[c], ((0, 0), (0, window)))
        total = np.zeros((len(targets), x.shape[2]), dtype=np.float64)
        for b in range(0, len(starts), _SUB_BATCH):
            s, n = starts[b : b + _SUB_BATCH], lengths[b : b + _SUB_BATCH]
            preds = state.predict(_window_matrix(padded, s, n, window), observed[c], targets)
            for t, a in enumerate(targets):
                _accumulate(total[t], preds[a], s, n)
        out[c] = total[:, lo:hi] / count
    return out


# --------------------------------------------------------------------------- model


class AutoencoderModel:
    """A trained denoising autoencoder with the names of its assays (input rows).

    Made by :func:`fit_autoencoder` or :func:`load_autoencoder`. The network does not depend
    on cell types or positions: it imputes any compendium with the same assays.

    Attributes
    ----------
    net : torch.nn.Sequential
        ``Linear(n_assays * window, n_hidden), ReLU, Linear(n_hidden, n_assays * window)``.
    config : dict
        The settings of :func:`fit_autoencoder` (``window``, ``n_hidden``, ...).
    assays : list of str
        The assays, in the order of the input rows.
    history : list of dict
        One record per epoch: ``epoch``, ``loss`` (mean RMSE + L2 term over the minibatches),
        ``rmse`` and ``seconds``.
    """

    def __init__(
        self,
        net: torch.nn.Sequential,
        config: dict,
        *,
        assays: list[str],
        history: list[dict] | None = None,
        train_ds: xr.Dataset | None = None,
    ):
        self.net = net
        self.config = dict(config)
        self.assays = [str(a) for a in assays]
        self.history = list(history or [])
        self._train_ds = train_ds

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"<AutoencoderModel: {len(self.assays)} assays x {cfg['window']} bins -> "
            f"{cfg['n_hidden']} hidden; {len(self.history)} epochs trained>"
        )

    @property
    def attrs(self) -> dict:
        """Provenance attributes stamped on every output Dataset."""
        from . import __version__

        return {
            "source": f"avocado_xr-{__version__}",
            "method": "autoencoder",
            "autoencoder_config": json.dumps(self.config, sort_keys=True),
            "epochs_trained": len(self.history),
        }

    def impute(
        self,
        ds: xr.Dataset | None = None,
        *,
        celltypes=None,
        assays=None,
        position_chunk: int | None = None,
    ) -> xr.Dataset:
        """Impute tracks of ``ds`` lazily, each with its own row masked.

        Every output block of positions reads its bins plus ``window - 1`` bins on each side
        (clipped at the ends of the data), so the result does not depend on the chunking.
        Nothing is computed here except reading ``chrom``/``start`` (in memory for
        compendia opened with :func:`avocado_xr.open_compendium`).

        Parameters
        ----------
        ds : xarray.Dataset, optional
            A compendium holding (at least) the model's assays. Default: the training data
            (not available after :func:`load_autoencoder`).
        celltypes : str or list of str, optional
            Cell types of ``ds`` to impute. Default: all.
        assays : str or list of str, optional
            Assays to impute. Default: all of the model's.
        position_chunk : int, optional
            Positions per output block. Default: the ``position`` chunks of a Dask-backed
            ``ds.signal``, else 131,072.

        Returns
        -------
        xarray.Dataset
            ``imputed`` (celltype, assay, position), float32, Dask-backed, with ``ds``'s
            ``chrom``/``start`` coordinates and the provenance attributes.

        Examples
        --------
        >>> import avocado_xr as ax
        >>> from avocado_xr.autoencoder import fit_autoencoder
        >>> ds = ax.testing.simulate_compendium(n_positions=600, seed=0)
        >>> model = fit_autoencoder(ds, window=5, n_hidden=8, n_windows=200, batch_size=50)
        >>> imp = model.impute(ds, assays=["A1"], position_chunk=200)
        >>> imp.imputed.shape, imp.imputed.data.chunks[-1]
        ((4, 1, 600), (200, 200, 200))
        """
        if ds is None:
            if self._train_ds is None:
                raise AutoencoderError(
                    "This model holds no training data (it was loaded from disk); pass the "
                    "compendium to impute: model.impute(ds)."
                )
            ds = self._train_ds
        validate(ds)
        window = int(self.config["window"])
        known = [str(a) for a in ds.indexes[DIM_ASSAY]]
        missing = [a for a in self.assays if a not in known]
        if missing:
            raise UnknownAssayError(
                f"The compendium lacks the model's assays {missing}; the autoencoder needs "
                f"every input row ({self.assays}). Add them as unobserved (all-NaN) tracks."
            )
        celltypes = check_names(celltypes, ds.indexes[DIM_CELLTYPE], DIM_CELLTYPE)
        assays = check_names(assays, self.assays, DIM_ASSAY)
        targets = [self.assays.index(a) for a in assays]

        sub = ds[[SIGNAL, OBSERVED]].sel({DIM_CELLTYPE: celltypes, DIM_ASSAY: self.assays})
        signal = sub[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
        observed = sub[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).data
        chunks = _position_chunks(signal, position_chunk)
        if not isinstance(signal, da.Array):
            signal = da.from_array(signal, chunks=(-1, -1, chunks), name=False)
        resolution = int(ds.attrs.get("resolution", RESOLUTION))
        seg = segment_ids(np.asarray(ds[CHROM].values), np.asarray(ds[START].values), resolution)

        state = dask.delayed(
            _AutoencoderState.from_net(self.net, window), pure=True, traverse=False
        )
        n = signal.shape[-1]
        blocks, lo = [], 0
        for size in chunks:
            hi = lo + size
            elo, ehi = max(0, lo - window + 1), min(n, hi + window - 1)
            value = dask.delayed(_impute_block, pure=True)(
                signal[:, :, elo:ehi], seg[elo:ehi], observed, targets, lo - elo, hi - elo, state
            )
            blocks.append(
                da.from_delayed(
                    value,
                    shape=(len(celltypes), len(targets), size),
                    dtype=np.float32,
                    meta=np.empty((0, 0, 0), dtype=np.float32),
                )
            )
            lo = hi
        data = da.concatenate(blocks, axis=2)
        imputed = imputation_dataset(data, celltypes, assays, ds, self.attrs)
        return imputed.to_dataset().assign_attrs(self.attrs)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``autoencoder.json`` (settings, assays, history) and ``weights.pt``.

        The weights are a state dict of tensors, read back with ``weights_only=True``.

        Examples
        --------
        >>> import tempfile, avocado_xr as ax
        >>> from avocado_xr.autoencoder import fit_autoencoder, load_autoencoder
        >>> ds = ax.testing.simulate_compendium(n_positions=500, seed=0)
        >>> model = fit_autoencoder(ds, window=5, n_hidden=8, n_windows=100, batch_size=50)
        >>> directory = tempfile.mkdtemp()
        >>> model.save(directory)
        >>> load_autoencoder(directory).assays == model.assays
        True
        """
        from . import __version__
        from .persistence import write_model_dir

        meta = {
            "format": FORMAT,
            "avocado_xr_version": __version__,
            "config": self.config,
            "assays": self.assays,
            "history": self.history,
        }
        write_model_dir(Path(path), meta, self.net, CONFIG_FILE, WEIGHTS_FILE, overwrite=overwrite)


def load_autoencoder(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> AutoencoderModel:
    """Load a model written by :meth:`AutoencoderModel.save` (no code is executed).

    Raises
    ------
    ModelFileError
        The directory, a file, or matching weights are missing.
    """
    from .persistence import read_model_meta

    path = Path(path)
    meta = read_model_meta(path, CONFIG_FILE, WEIGHTS_FILE, FORMAT, "autoencoder")
    try:
        config, assays = dict(meta["config"]), list(meta["assays"])
        net = _build_net(len(assays) * int(config["window"]), int(config["n_hidden"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path / CONFIG_FILE} is incomplete or malformed: {err}") from err
    from .persistence import load_weights

    load_weights(net, path / WEIGHTS_FILE, CONFIG_FILE)
    net.to(resolve_device(device)).eval()
    return AutoencoderModel(net, config, assays=assays, history=meta.get("history", []))


# --------------------------------------------------------------------------- training


def _build_net(n_in: int, n_hidden: int, generator: torch.Generator | None = None):
    """The 3-layer network; Glorot-uniform weights and zero biases (TensorFlow's defaults)."""
    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, n_hidden), torch.nn.ReLU(), torch.nn.Linear(n_hidden, n_in)
    )
    with torch.no_grad():
        for layer in (net[0], net[2]):
            torch.nn.init.xavier_uniform_(layer.weight, generator=generator)
            layer.bias.zero_()
    return net


def _sample_windows(
    seg: np.ndarray, observed: np.ndarray, window: int, n_windows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform (cell type, start) pairs whose window stays in one segment.

    Cell types without any observed track are never drawn. Returns ``cells`` and ``starts``.
    """
    first, length = _segment_runs(seg)
    n_valid = np.maximum(length - window + 1, 0)
    offsets = np.cumsum(n_valid) - n_valid
    total = int(n_valid.sum())
    if total == 0:
        raise AutoencoderError(
            f"No segment of contiguous bins is {window} bins long (the longest has "
            f"{int(length.max(initial=0))}); pass a smaller window."
        )
    usable = np.flatnonzero(np.asarray(observed).any(axis=1))
    if len(usable) == 0:
        raise AutoencoderError("There are no observed tracks to train on.")
    cells = usable[rng.integers(0, len(usable), size=n_windows)]
    u = rng.integers(0, total, size=n_windows)
    k = np.searchsorted(offsets, u, side="right") - 1
    starts = first[k] + (u - offsets[k])
    return cells.astype(np.int64), starts.astype(np.int64)


def _gather(signal: np.ndarray, cells: np.ndarray, starts: np.ndarray, window: int):
    """(n, n_assays, window) windows of a NumPy (celltype, assay, position) array."""
    cols = starts[:, None] + np.arange(window)
    out = np.asarray(signal)[cells[:, None], :, cols]  # advanced indices first: (n, w, A)
    return out.transpose(0, 2, 1)


def _read_windows(signal, cells: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Windows of ``signal`` (NaN -> 0), float32 (n, n_assays, window).

    A Dask-backed signal is read one position chunk at a time: for each chunk holding a
    window start, one compute reads the bins the windows of that chunk cover, for the cell
    types they belong to (at most ``n_celltypes x n_assays x window x windows in the chunk``
    values at once), so the compendium is never loaded whole.
    """
    n_assays = signal.shape[1]
    out = np.empty((len(starts), n_assays, window), dtype=np.float32)
    if not isinstance(signal, da.Array):
        out[:] = _gather(signal, cells, starts, window)
        return np.nan_to_num(out, nan=0.0, copy=False)
    bounds = np.cumsum(signal.chunks[2])
    group = np.searchsorted(bounds, starts, side="right")
    scheduler = None if dask.config.get("scheduler", None) else "synchronous"
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        lo, hi = int(starts[sel].min()), int(starts[sel].max()) + window
        cols = np.unique(starts[sel, None] + np.arange(window)) - lo
        cells_u = np.unique(cells[sel])
        block = signal[:, :, lo:hi][cells_u][:, :, cols].compute(scheduler=scheduler)
        local = _gather(
            np.asarray(block),
            np.searchsorted(cells_u, cells[sel]),
            np.searchsorted(cols, starts[sel] - lo),
            window,
        )
        out[sel] = local
    return np.nan_to_num(out, nan=0.0, copy=False)


def fit_autoencoder(
    ds: xr.Dataset,
    *,
    window: int = 41,
    n_hidden: int = 2000,
    mask_prob: float = 0.3,
    l2: float = 1e-3,
    n_windows: int = 100_000,
    epochs: int = 1,
    batch_size: int = 9_000,
    lr: float = 0.01,
    seed: int = 0,
    device: str | torch.device | None = None,
    verbose: bool = False,
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
        Seeds the window sampling, the initial weights, the order and the masks; on CPU the
        same seed gives the same model. Default is 0.
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
    >>> from avocado_xr.autoencoder import fit_autoencoder
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> model = fit_autoencoder(ds, window=9, n_hidden=16, n_windows=300, epochs=2,
    ...                         batch_size=100)
    >>> model
    <AutoencoderModel: 3 assays x 9 bins -> 16 hidden; 2 epochs trained>
    >>> [sorted(h) for h in model.history][:1]
    [['epoch', 'loss', 'rmse', 'seconds']]
    """
    validate(ds)
    for name, value in (
        ("window", window),
        ("n_hidden", n_hidden),
        ("n_windows", n_windows),
        ("batch_size", batch_size),
    ):
        if int(value) != value or value < 1:
            raise AutoencoderError(f"{name} must be a positive integer, got {value!r}.")
    if not 0 <= mask_prob < 1:
        raise AutoencoderError(f"mask_prob must be in [0, 1), got {mask_prob!r}.")
    if epochs < 0 or l2 < 0 or lr <= 0:
        raise AutoencoderError(
            f"Need epochs >= 0, l2 >= 0 and lr > 0; got {epochs!r}, {l2!r}, {lr!r}."
        )
    config = {
        "window": int(window),
        "n_hidden": int(n_hidden),
        "mask_prob": float(mask_prob),
        "l2": float(l2),
        "n_windows": int(n_windows),
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "seed": int(seed),
    }
    assays = [str(a) for a in ds.indexes[DIM_ASSAY]]
    observed = np.asarray(ds[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values, dtype=bool)
    resolution = int(ds.attrs.get("resolution", RESOLUTION))
    seg = segment_ids(np.asarray(ds[CHROM].values), np.asarray(ds[START].values), resolution)

    rng = np.random.default_rng(seed)
    cells, starts = _sample_windows(seg, observed, window, n_windows, rng)
    signal = ds[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
    windows = _read_windows(signal, cells, starts, window)
    rows = observed[cells]
    windows *= rows[:, :, None]

    generator = torch.Generator().manual_seed(int(seed))
    device = resolve_device(device)
    net = _build_net(len(assays) * window, n_hidden, generator).to(device)
    history = _train(net, windows, rows, config, generator, device, verbose)
    net.cpu().eval()
    return AutoencoderModel(net, config, assays=assays, history=history, train_ds=ds)


def _train(net, windows, rows, config, generator, device, verbose) -> list[dict]:
    x_all = torch.from_numpy(windows).to(device)
    rows_all = torch.from_numpy(rows).to(device)
    n, n_assays, window = windows.shape
    weights = [net[0].weight, net[2].weight]
    optimizer = torch.optim.Adam(net.parameters(), lr=config["lr"])
    history = []
    net.train()
    for epoch in tqdm(range(config["epochs"]), desc="autoencoder", disable=not verbose):
        tic = time.perf_counter()
        losses, rmses = [], []
        order = torch.randperm(n, generator=generator)
        for lo in range(0, n, config["batch_size"]):
            idx = order[lo : lo + config["batch_size"]]
            keep_draw = torch.rand((len(idx), n_assays), generator=generator)
            idx = idx.to(device)
            x, obs = x_all[idx], rows_all[idx]
            keep = obs & (keep_draw.to(device) >= config["mask_prob"])
            pred = net((x * keep[:, :, None]).reshape(len(idx), -1)).reshape(x.shape)
            count = obs.sum().clamp(min=1) * window
            rmse = torch.sqrt(((pred - x) ** 2 * obs[:, :, None]).sum() / count)
            loss = rmse + config["l2"] * sum(w.pow(2).sum() for w in weights)
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
            }
        )
    return history


def _position_chunks(signal, position_chunk: int | None) -> tuple[int, ...]:
    n = signal.shape[-1]
    if position_chunk is None and isinstance(signal, da.Array):
        return tuple(int(c) for c in signal.chunks[-1])
    size = int(position_chunk or DEFAULT_POSITION_CHUNK)
    if size < 1:
        raise ChunkingError(f"position_chunk must be positive, got {size}.")
    return tuple(min(size, n - lo) for lo in range(0, n, size))


def impute_autoencoder(train_ds: xr.Dataset, **kwargs) -> xr.Dataset:
    """Fit the autoencoder on ``train_ds`` and impute every (celltype, assay) track of it.

    Observed tracks are imputed with their own row masked. This is the signature of a
    cross-validation ``method``: ``impute_autoencoder(train_ds, seed=seed, **options)``.

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
    >>> from avocado_xr.autoencoder import impute_autoencoder
    >>> ds = ax.testing.simulate_compendium(n_positions=500, seed=0)
    >>> imp = impute_autoencoder(ds, seed=1, window=5, n_hidden=8, n_windows=100)
    >>> dict(imp.imputed.sizes)
    {'celltype': 4, 'assay': 3, 'position': 500}
    """
    position_chunk = kwargs.pop("position_chunk", None)
    model = fit_autoencoder(train_ds, **kwargs)
    return model.impute(train_ds, position_chunk=position_chunk)
