"""File helpers shared by data sets, manifests and model directories."""

from __future__ import annotations

import hashlib
import os

__all__ = ["file_digest"]


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``"sha256"`` or ``"md5"``), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_group_attrs(folder, attributes: dict) -> None:
    """Write a zarr v3 group node holding ``attributes``, atomically (temporary file, then
    rename), so a killed writer never leaves a half-written record; zarr sees a valid
    hierarchy (a plain file in a zarr store makes zarr warn when it lists the store)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    tmp = folder / f"zarr.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, sort_keys=True, indent=1))
    os.replace(tmp, folder / "zarr.json")


def read_group_attrs(folder) -> dict | None:
    """The attributes of a group node written by :func:`write_group_attrs` (None if absent
    or unreadable)."""
    import json
    from pathlib import Path

    try:
        return json.loads((Path(folder) / "zarr.json").read_text())["attributes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
