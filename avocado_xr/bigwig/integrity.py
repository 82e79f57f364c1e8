"""Opening bigWig files, and checking that one is complete before reading it."""

from __future__ import annotations

import os
import struct

from ..exceptions import BigWigReadError

__all__ = ["check_bigwig_file", "open_bigwig"]

_BIGWIG_MAGIC = 0x888FFC26
_BIGBED_MAGIC = 0x8789F2EB
_RTREE_MAGIC = 0x2468ACE0


def check_bigwig_file(path: str | os.PathLike) -> None:
    """Check that ``path`` is a complete bigWig file, without decoding its data.

    Checks the header magic, the end marker (bigWig writers end the file with the magic
    number again), and walks every R-tree index (full resolution and zoom levels), checking
    that each node and each data block it points to lies inside the file. This catches
    truncated downloads, which pyBigWig may otherwise open (when only zoom levels are cut
    off) or reject with an unspecific error.

    Raises
    ------
    BigWigReadError
        The file is missing, is not a bigWig (e.g. a bigBed or a bedGraph), or is truncated;
        the message names the file and the reason.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BigWigReadError(f"{path}: no such file; check the manifest path.")
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(64)
        if len(head) < 64:
            raise BigWigReadError(f"{path}: not a bigWig file (only {size} bytes).")
        (magic,) = struct.unpack("<I", head[:4])
        endian = "<"
        if magic != _BIGWIG_MAGIC and struct.unpack(">I", head[:4])[0] == _BIGWIG_MAGIC:
            endian = ">"
        elif magic != _BIGWIG_MAGIC:
            kind = (
                "a bigBed"
                if _BIGBED_MAGIC in struct.unpack("<I", head[:4]) + struct.unpack(">I", head[:4])
                else "not a bigWig"
            )
            raise BigWigReadError(
                f"{path}: {kind} file (magic {head[:4].hex()}); the manifest must list bigWig "
                "signal files (convert bedGraph with UCSC bedGraphToBigWig)."
            )
        fields = struct.unpack(endian + "IHHQQQHHQQIQ", head)
        n_zoom, chrom_tree, full_data, full_index = fields[2], fields[3], fields[4], fields[5]
        for name, offset in (("chromosome tree", chrom_tree), ("data", full_data)):
            if not 0 < offset < size:
                raise BigWigReadError(
                    f"{path}: truncated or corrupt ({name} offset {offset} is beyond the "
                    f"file's {size} bytes); download it again."
                )
        fh.seek(size - 4)
        if fh.read(4) != head[:4]:
            raise BigWigReadError(
                f"{path}: truncated (the file does not end with the bigWig end marker that "
                "bigWig writers append last); download or regenerate it."
            )
        indexes = [("full-resolution index", full_index)] if full_index else []
        fh.seek(64)
        zooms = fh.read(24 * n_zoom)
        if len(zooms) < 24 * n_zoom:
            raise BigWigReadError(f"{path}: truncated inside the zoom-level headers.")
        for level in range(n_zoom):
            _, _, _, zoom_index = struct.unpack(
                endian + "IIQQ", zooms[24 * level : 24 * level + 24]
            )
            if zoom_index:
                indexes.append((f"zoom level {level + 1} index", zoom_index))
        for name, offset in indexes:
            _walk_rtree(fh, path, size, offset, endian, name)


def _walk_rtree(fh, path: str, size: int, offset: int, endian: str, name: str) -> None:
    def fail(what: str):
        raise BigWigReadError(
            f"{path}: truncated or corrupt ({name}: {what}; the file has {size} bytes); "
            "download it again or regenerate it."
        )

    if not 0 < offset < size:
        fail(f"starts at byte {offset}")
    fh.seek(offset)
    header = fh.read(48)
    if len(header) < 48:
        fail("header cut off")
    if struct.unpack(endian + "I", header[:4])[0] != _RTREE_MAGIC:
        fail("bad index magic")
    stack = [offset + 48]
    while stack:
        node = stack.pop()
        if node + 4 > size:
            fail(f"node at byte {node} is past the end")
        fh.seek(node)
        is_leaf, _, count = struct.unpack(endian + "BBH", fh.read(4))
        width = 32 if is_leaf else 24
        items = fh.read(width * count)
        if len(items) < width * count:
            fail(f"node at byte {node} is cut off")
        for k in range(count):
            item = items[width * k : width * (k + 1)]
            if is_leaf:
                data_offset, data_size = struct.unpack(endian + "QQ", item[16:32])
                if data_offset + data_size > size:
                    fail(f"data block at byte {data_offset} (+{data_size}) is past the end")
            else:
                (child,) = struct.unpack(endian + "Q", item[16:24])
                if child >= size:
                    fail(f"child node at byte {child} is past the end")
                stack.append(child)


def open_bigwig(path: str | os.PathLike):
    """Open a bigWig with pyBigWig, turning its errors into :class:`BigWigReadError`."""
    try:
        import pyBigWig
    except ImportError as err:  # pragma: no cover - a dev dependency
        raise ImportError(
            "Reading bigWig files needs pyBigWig: pip install 'avocado-xr[bigwig]'"
        ) from err
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BigWigReadError(f"{path}: no such file; check the manifest path.")
    try:
        bw = pyBigWig.open(path)
    except RuntimeError as err:
        raise BigWigReadError(
            f"{path}: pyBigWig cannot open it ({err}); is it a complete bigWig file?"
        ) from err
    if bw is None or not bw.isBigWig():
        if bw is not None:
            bw.close()
        raise BigWigReadError(f"{path}: not a bigWig file (pyBigWig reads no bigWig header).")
    return bw
