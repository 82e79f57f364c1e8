"""Manifests: which bigWig file holds which (celltype, assay) experiment.

A manifest is a tab-separated file with a header line and one row per experiment:

==============  ========  ================================================================
column          required  meaning
==============  ========  ================================================================
``celltype``    yes       cell type / biosample name (the ``celltype`` coordinate)
``assay``       yes       assay name (the ``assay`` coordinate)
``path_or_url`` yes       a local path (relative paths are relative to the manifest's
                          folder) or an ``http(s)://`` / ``ftp://`` URL
``checksum``    no        ``md5:<32 hex>`` or ``sha256:<64 hex>`` (a bare 32- or 64-digit
                          hex string is read as md5 or sha256); empty = not checked
``optional``    no        ``true`` if the file may not exist (e.g. a URL pattern over all
                          combinations): ingestion reports and skips it when absent
==============  ========  ================================================================

Other columns (accession, biosample name, ...) are kept and ignored. Lines starting with
``#`` are comments. Each (celltype, assay) pair may appear once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .._files import file_digest
from ..exceptions import ManifestError

__all__ = [
    "COLUMNS",
    "is_url",
    "manifest_from_encode",
    "manifest_from_pattern",
    "read_manifest",
    "verify_checksum",
]

#: required columns, in order
COLUMNS = ("celltype", "assay", "path_or_url")
_OPTIONAL_COLUMNS = ("checksum", "optional")
_URL = re.compile(r"^(https?|ftp)://", re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-f]+$")
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}


def is_url(text: str) -> bool:
    """Whether a manifest entry is a URL (http, https or ftp) rather than a local path.

    Examples
    --------
    >>> is_url("https://www.encodeproject.org/files/ENCFF879WIV/@@download/ENCFF879WIV.bigWig")
    True
    >>> is_url("data/E003-H3K4me3.bw")
    False
    """
    return bool(_URL.match(str(text)))


def _parse_checksum(value: str, where: str) -> str:
    text = str(value).strip().lower()
    if not text or text == "nan":
        return ""
    algo, _, digest = text.rpartition(":")
    if not algo:
        algo = {32: "md5", 64: "sha256"}.get(len(digest), "")
    expected = {"md5": 32, "sha256": 64}.get(algo)
    if expected is None or len(digest) != expected or not _HEX.match(digest):
        raise ManifestError(
            f"{where}: checksum {value!r} is not 'md5:<32 hex digits>' or "
            "'sha256:<64 hex digits>'; fix it or leave the cell empty."
        )
    return f"{algo}:{digest}"


def _parse_bool(value, where: str) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE or text == "nan":
        return False
    raise ManifestError(f"{where}: optional must be true or false, got {value!r}.")


def read_manifest(
    manifest: str | os.PathLike | pd.DataFrame,
    *,
    base_dir: str | os.PathLike | None = None,
    check_paths: bool = True,
) -> pd.DataFrame:
    r"""Read and validate a manifest.

    Parameters
    ----------
    manifest : str, path or DataFrame
        A TSV file (see the module notes for its columns) or a DataFrame with the same
        columns.
    base_dir : str or path, optional
        Folder that relative paths are relative to. Default: the manifest's folder (the
        current directory for a DataFrame).
    check_paths : bool
        Check that every local path of a non-optional row exists and is a file.
        Default is True.

    Returns
    -------
    pandas.DataFrame
        Columns ``celltype``, ``assay``, ``path_or_url`` (absolute paths for local files),
        ``checksum`` (normalised to ``algo:hex`` or ``""``), ``optional`` (bool), ``line``
        (the line number in the file, for messages), then any extra columns.

    Raises
    ------
    ManifestError
        Missing columns, empty names, a (celltype, assay) pair listed twice, a malformed
        checksum, or a local path that does not exist or is not a file. Messages give the
        line and the fix.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "a.bw").touch()
    >>> text = "celltype\tassay\tpath_or_url\nE003\tH3K4me3\ta.bw\n"
    >>> url = "https://example.org/E003-DNase.bw"
    >>> _ = (folder / "m.tsv").write_text(text + f"E003\tDNase\t{url}\n")
    >>> m = read_manifest(folder / "m.tsv")
    >>> m[["celltype", "assay"]].values.tolist()
    [['E003', 'H3K4me3'], ['E003', 'DNase']]
    >>> _ = (folder / "m.tsv").write_text(text + "E003\tH3K4me3\ta.bw\n")
    >>> read_manifest(folder / "m.tsv")
    Traceback (most recent call last):
    ...
    avocado_xr.exceptions.ManifestError: ...line 3: (celltype, assay) ('E003', 'H3K4me3') is ...
    """
    if isinstance(manifest, pd.DataFrame):
        table = manifest.copy()
        source = "manifest"
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
        table["line"] = range(1, len(table) + 1)
        table = table.astype({c: str for c in table.columns if c != "line"})
    else:
        path = Path(manifest)
        if not path.is_file():
            raise ManifestError(f"Manifest {str(path)!r} does not exist or is not a file.")
        source = str(path)
        folder = Path(base_dir) if base_dir is not None else path.resolve().parent
        table = _read_tsv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{source} has no column(s) {missing}; its header is {list(table.columns)[:-1]}. "
            f"A manifest needs the tab-separated columns {list(COLUMNS)} (+ optional "
            f"{list(_OPTIONAL_COLUMNS)})."
        )
    if len(table) == 0:
        raise ManifestError(f"{source} lists no experiments.")
    for column in _OPTIONAL_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    rows, seen, problems = [], {}, []
    for record in table.to_dict("records"):
        where = f"{source}, line {record['line']}"
        celltype, assay = str(record["celltype"]).strip(), str(record["assay"]).strip()
        target = str(record["path_or_url"]).strip()
        if not celltype or not assay or not target or "nan" in (celltype, assay, target):
            raise ManifestError(f"{where}: celltype, assay and path_or_url must all be filled.")
        pair = (celltype, assay)
        if pair in seen:
            raise ManifestError(
                f"{where}: (celltype, assay) {pair} is listed twice (also on line "
                f"{seen[pair]}); keep one row per experiment."
            )
        seen[pair] = record["line"]
        optional = _parse_bool(record["optional"], where)
        if not is_url(target):
            local = Path(target).expanduser()
            local = local if local.is_absolute() else folder / local
            target = os.path.normpath(local)
            if check_paths and not optional:
                if not os.path.exists(target):
                    problems.append(f"line {record['line']}: {target} does not exist")
                elif not os.path.isfile(target):
                    problems.append(f"line {record['line']}: {target} is not a file")
        record.update(
            celltype=celltype,
            assay=assay,
            path_or_url=target,
            checksum=_parse_checksum(record["checksum"], where),
            optional=optional,
        )
        rows.append(record)
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; ... ({len(problems)} in all)" if len(problems) > 10 else ""
        )
        raise ManifestError(
            f"{source}: {shown}. Fix the paths (relative paths are relative to {folder}), or "
            "mark rows whose files may be absent with optional=true."
        )
    out = pd.DataFrame(rows)
    first = [*COLUMNS, *_OPTIONAL_COLUMNS, "line"]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


def _read_tsv(path: Path) -> pd.DataFrame:
    lines = path.read_text().splitlines()
    numbered = [
        (n, line)
        for n, line in enumerate(lines, start=1)
        if line.strip() and not line.startswith("#")
    ]
    if not numbered:
        raise ManifestError(f"{path} is empty; it needs a header line and one row per experiment.")
    header = numbered[0][1].split("\t")
    records = []
    for number, line in numbered[1:]:
        fields = line.split("\t")
        if len(fields) < len(header):
            fields += [""] * (len(header) - len(fields))
        elif len(fields) > len(header):
            raise ManifestError(
                f"{path}, line {number}: {len(fields)} tab-separated fields but the header has "
                f"{len(header)}; check for stray tabs."
            )
        records.append([*fields, number])
    return pd.DataFrame(records, columns=[*header, "line"], dtype=object)


def manifest_from_encode(
    table: str | os.PathLike | pd.DataFrame,
    *,
    base_url: str = "https://www.encodeproject.org",
    celltype_column: str = "Biosample Index",
) -> pd.DataFrame:
    """Build a manifest from an ENCODE compendium table of the original Avocado.

    The input has the columns of ``ENCODE2018Core.tsv`` (``Biosample Index``, ``Biosample``,
    ``Biosample summary``, ``Assay``, ``Accession``, ``Download URL`` relative to the ENCODE
    portal). Cell types are the biosample indices (``J000``...), unique per biosample, and the
    biosample name, summary and accession are kept as extra columns.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"Biosample Index": ["J000"], "Biosample": ["KMS-11"],
    ...     "Biosample summary": ["KMS-11"], "Assay": ["ChIP-seq_H3K4me3_signal_p-value"],
    ...     "Accession": ["ENCFF1"], "Download URL": ["/files/ENCFF1/@@download/ENCFF1.bigWig"]})
    >>> manifest_from_encode(t).path_or_url[0]
    'https://www.encodeproject.org/files/ENCFF1/@@download/ENCFF1.bigWig'
    """
    if not isinstance(table, pd.DataFrame):
        table = pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False)
    accession = [c for c in table.columns if c.startswith("Accession")][0]
    return pd.DataFrame(
        {
            "celltype": table[celltype_column].str.strip(),
            "assay": table["Assay"].str.strip(),
            "path_or_url": base_url.rstrip("/") + table["Download URL"].str.strip(),
            "checksum": "",
            "optional": False,
            "biosample": table["Biosample"].str.strip(),
            "accession": table[accession].str.strip(),
        }
    )


def manifest_from_pattern(
    celltypes: Iterable[str],
    assays: Iterable[str],
    pattern: str,
    *,
    optional: bool = True,
) -> pd.DataFrame:
    """A manifest over every (celltype, assay) combination from a path or URL pattern.

    ``pattern`` uses ``{celltype}`` and ``{assay}`` placeholders. Rows are ``optional`` by
    default because a pattern names combinations that may not exist (ingestion reports
    and skips absent ones).

    Examples
    --------
    >>> m = manifest_from_pattern(["E003", "E004"], ["H3K4me3"],
    ...     "https://egg2.wustl.edu/roadmap/data/byFileType/signal/consolidated/macs2signal/"
    ...     "pval/{celltype}-{assay}.pval.signal.bigwig")
    >>> len(m), m.path_or_url[1].rsplit("/", 1)[1]
    (2, 'E004-H3K4me3.pval.signal.bigwig')
    """
    rows = [
        (c, a, pattern.format(celltype=c, assay=a), "", optional) for c in celltypes for a in assays
    ]
    return pd.DataFrame(rows, columns=[*COLUMNS, *_OPTIONAL_COLUMNS])


def verify_checksum(path: str | os.PathLike, checksum: str) -> None:
    """Raise :class:`ManifestError` if ``path``'s digest differs from ``checksum``.

    ``checksum`` is ``"md5:<hex>"`` or ``"sha256:<hex>"``; an empty string checks nothing.
    """
    if not checksum:
        return
    algo, _, expected = checksum.partition(":")
    actual = file_digest(path, algo)
    if actual != expected:
        raise ManifestError(
            f"{path}: {algo} is {actual} but the manifest says {expected}; the file "
            "is corrupt, truncated or not the listed one. Download it again."
        )
