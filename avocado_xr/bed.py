"""BED files: one reader for region sets (layouts) and annotations (evaluation masks)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import AnnotationError

__all__ = ["BedLike", "bed_label", "read_bed"]

_BED_COLUMNS = ("chrom", "start", "end", "name", "score", "strand")
_SKIP = ("#", "track", "browser")

BedLike = str | os.PathLike | pd.DataFrame | Iterable


def bed_label(bed) -> str:
    """How messages name a BED source: its path, or "the interval table"."""
    if isinstance(bed, str | os.PathLike):
        return repr(os.fspath(bed))
    if hasattr(bed, "read"):
        return repr(getattr(bed, "name", "the BED text"))
    return "the interval table"


def read_bed(bed: BedLike, *, strand: bool = False, line_numbers: bool = False) -> pd.DataFrame:
    """Read a BED file (or check a table) into ``chrom``, ``start``, ``end`` (+ ``strand``).

    Lines that are empty or start with ``#``, ``track`` or ``browser`` are skipped; fields are
    tab-separated; coordinates are 0-based half-open. Columns beyond the sixth are ignored.

    Parameters
    ----------
    bed : str, path, file, pandas.DataFrame or iterable of tuples
        A BED file (path or open text file), a DataFrame with columns ``chrom``, ``start``,
        ``end`` (and ``strand``), or ``(chrom, start, end[, name, score, strand])`` tuples.
    strand : bool
        Require a sixth column (``strand``) whose values are ``+`` or ``-``. Default is False.
    line_numbers : bool
        Add a ``line`` column: the line of each interval in the file (its row number for a
        table), for messages. Default is False.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom`` (str), ``start``, ``end`` (int64) and, with ``strand=True``,
        ``strand``.

    Raises
    ------
    AnnotationError
        A missing file, too few columns, non-integer or negative coordinates, ``end < start``,
        or (with ``strand=True``) a strand other than ``+``/``-``; the message names the line.

    Examples
    --------
    >>> import io
    >>> read_bed(io.StringIO("chr1\\t100\\t200\\tg1\\t0\\t-\\n"), strand=True)
      chrom  start  end strand
    0  chr1    100  200      -
    >>> read_bed([("chr2", 5, 10)]).end.tolist()
    [10]
    """
    need = 6 if strand else 3
    wanted = ["chrom", "start", "end"] + (["strand"] if strand else [])
    label = bed_label(bed)
    if isinstance(bed, str | os.PathLike) or hasattr(bed, "read"):
        if not hasattr(bed, "read") and not Path(os.fspath(bed)).is_file():
            raise AnnotationError(f"BED file {label} does not exist or is not a file.")
        text = bed.read() if hasattr(bed, "read") else Path(os.fspath(bed)).read_text()
        rows, lines = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.startswith(_SKIP):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < need:
                raise AnnotationError(
                    f"Line {number} of {label} has {len(fields)} column(s) but "
                    f"{need} are needed ({', '.join(_BED_COLUMNS[:need])}): {line!r}."
                )
            rows.append(fields[:need])
            lines.append(number)
        df = pd.DataFrame(rows, columns=list(_BED_COLUMNS[:need]))
        where_of = [f"line {n}" for n in lines]
    else:
        if not isinstance(bed, pd.DataFrame):
            rows = [tuple(row) for row in bed]
            if any(len(row) < need for row in rows):
                raise AnnotationError(f"Intervals must be tuples of at least {need} fields.")
            bed = pd.DataFrame([row[:need] for row in rows], columns=list(_BED_COLUMNS[:need]))
        missing = [c for c in wanted if c not in bed.columns]
        if missing:
            raise AnnotationError(f"{label} has no column(s) {missing}; it needs {wanted}.")
        df = bed.reset_index(drop=True)
        lines = list(range(1, len(df) + 1))
        where_of = [f"row {n - 1}" for n in lines]
    out = pd.DataFrame({"chrom": df["chrom"].astype(str).to_numpy()})
    for col in ("start", "end"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | (values.to_numpy() % 1 != 0))
        if len(bad):
            raise AnnotationError(
                f"Column {col!r} of {label} at {where_of[bad[0]]} is not an integer: "
                f"{df[col].iloc[bad[0]]!r}."
            )
        out[col] = values.to_numpy().astype(np.int64)
    bad = np.flatnonzero((out["start"] < 0) | (out["end"] < out["start"]))
    if len(bad):
        row = out.iloc[bad[0]]
        raise AnnotationError(
            f"Interval {row.chrom}:{row.start}-{row.end} at {where_of[bad[0]]} of {label} is "
            "invalid; BED needs 0 <= start <= end."
        )
    if strand:
        out["strand"] = df["strand"].astype(str).to_numpy()
        bad = np.flatnonzero(~out["strand"].isin(["+", "-"]).to_numpy())
        if len(bad):
            raise AnnotationError(
                f"Strand {out['strand'].iloc[bad[0]]!r} at {where_of[bad[0]]} of {label} is not "
                "'+' or '-'; promoters need the strand of every TSS (drop or fix unstranded "
                "lines)."
            )
    if line_numbers:
        out["line"] = np.asarray(lines, dtype=np.int64)
    return out
