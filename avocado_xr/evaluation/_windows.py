"""Windows of consecutive bins for the denoising autoencoder: sampling, reading, averaging.

A window is ``window`` consecutive 25-bp bins of one cell type, all assays, inside one
segment (a run of contiguous bins, :func:`avocado_xr.bins.segment_runs`); a segment shorter
than the window gets one window holding its bins first, zero-padded on the right.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from ..bins import segment_runs
from ..exceptions import AutoencoderError

__all__ = [
    "accumulate",
    "average_windows",
    "block_windows",
    "gather_windows",
    "read_windows",
    "sample_windows",
    "window_counts",
    "window_matrix",
]


def _runs(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and length of each run of equal segment ids (the package's contiguity
    rule, applied to segment ids: consecutive ids are one run)."""
    seg = np.asarray(seg)
    return segment_runs(seg, np.arange(len(seg), dtype=np.int64), resolution=1)


def block_windows(seg: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window over positions ``0 .. len(seg) - 1`` that stays within one segment.

    Returns the sorted ``starts`` and the ``lengths`` (``window``, or the length of a segment
    shorter than ``window``, which gets one zero-padded window).

    Examples
    --------
    >>> starts, lengths = block_windows(np.array([0, 0, 0, 0, 1, 1, 2, 2, 2]), 3)
    >>> starts.tolist(), lengths.tolist()
    ([0, 1, 4, 6], [3, 3, 2, 3])
    """
    first, length = _runs(seg)
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


def accumulate(total: np.ndarray, pred: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Add ``pred[i, k]`` to ``total[starts[i] + k]`` for ``k < lengths[i]`` (starts unique)."""
    for k in range(pred.shape[1]):
        sel = lengths > k
        total[starts[sel] + k] += pred[sel, k]


def average_windows(
    pred: np.ndarray, starts: np.ndarray, lengths: np.ndarray, size: int
) -> np.ndarray:
    """Mean over windows of each bin's predictions.

    Window ``i`` covers bins ``starts[i] .. starts[i] + lengths[i] - 1`` and predicts them in
    ``pred[i, :lengths[i]]``; columns past ``lengths[i]`` (padding) are ignored. ``starts``
    must be unique. Bins that no window covers are NaN.

    Examples
    --------
    >>> pred = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 0.0]])
    >>> average_windows(pred, np.array([0, 1, 5]), np.array([3, 3, 2]), 8).tolist()
    [1.0, 3.0, 4.0, 6.0, nan, 7.0, 8.0, nan]
    """
    total = np.zeros(size, dtype=np.float64)
    accumulate(total, pred, starts, lengths)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / window_counts(starts, lengths, size)).astype(np.float32)


def window_counts(starts: np.ndarray, lengths: np.ndarray, size: int) -> np.ndarray:
    """Number of windows covering each bin."""
    count = np.zeros(size, dtype=np.int64)
    for k in range(int(lengths.max(initial=0))):
        count[starts[lengths > k] + k] += 1
    return count


def window_matrix(padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray, window: int):
    """Inputs (n_windows, n_assays, window) from one cell type's (n_assays, L + window) signal.

    ``padded`` ends with ``window`` zero bins; bins past a window's length are zero (padding
    of a segment shorter than the window).
    """
    offsets = np.arange(window)
    out = padded[:, starts[:, None] + offsets]  # (A, n, w)
    out = out.transpose(1, 0, 2) * (offsets < lengths[:, None])[:, None, :]
    return np.ascontiguousarray(out, dtype=np.float32)


def sample_windows(
    seg: np.ndarray, observed: np.ndarray, window: int, n_windows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform (cell type, start) pairs whose window stays in one segment.

    Cell types without any observed track are never drawn. Returns ``cells`` and ``starts``.
    """
    first, length = _runs(seg)
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


def gather_windows(signal: np.ndarray, cells: np.ndarray, starts: np.ndarray, window: int):
    """(n, n_assays, window) windows of a NumPy (celltype, assay, position) array."""
    cols = starts[:, None] + np.arange(window)
    out = np.asarray(signal)[cells[:, None], :, cols]  # advanced indices first: (n, w, A)
    return out.transpose(0, 2, 1)


def read_windows(signal, cells: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Windows of ``signal`` (NaN -> 0), float32 (n, n_assays, window).

    A Dask-backed signal is read one position chunk at a time: for each chunk holding a
    window start, one compute reads the bins the windows of that chunk cover, for the cell
    types they belong to (at most ``n_celltypes x n_assays x window x windows in the chunk``
    values at once), so the compendium is never loaded whole.
    """
    n_assays = signal.shape[1]
    out = np.empty((len(starts), n_assays, window), dtype=np.float32)
    if not isinstance(signal, da.Array):
        out[:] = gather_windows(signal, cells, starts, window)
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
        local = gather_windows(
            np.asarray(block),
            np.searchsorted(cells_u, cells[sel]),
            np.searchsorted(cols, starts[sel] - lo),
            window,
        )
        out[sel] = local
    return np.nan_to_num(out, nan=0.0, copy=False)
