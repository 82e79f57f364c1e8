"""Manifest reading and validation, and the shipped manifests in io/manifests/."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from avocado_xr.bigwig.manifest import (
    is_url,
    manifest_from_encode,
    manifest_from_pattern,
    read_manifest,
    verify_checksum,
)
from avocado_xr.exceptions import AvocadoXrError, ManifestError

REPO = Path(__file__).resolve().parents[1]
HEADER = "celltype\tassay\tpath_or_url\tchecksum\n"
ROADMAP_URL = (
    "https://egg2.wustl.edu/roadmap/data/byFileType/signal/consolidated/macs2signal/pval/"
    "{celltype}-{assay}.pval.signal.bigwig"
)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a.bw").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    return tmp_path


def write(folder, body, header=HEADER, name="m.tsv"):
    path = folder / name
    path.write_text(header + body)
    return path


def test_reads_paths_urls_checksums(folder):
    md5 = hashlib.md5(b"abc").hexdigest()
    sha = hashlib.sha256(b"abc").hexdigest()
    path = write(
        folder,
        f"# a comment\nE003\tH3K4me3\ta.bw\tmd5:{md5}\n"
        f"E004\tH3K4me3\t{folder / 'a.bw'}\t{sha.upper()}\n"
        "E003\tDNase\thttps://example.org/x.bigWig\t\n",
    )
    m = read_manifest(path)
    assert m.celltype.tolist() == ["E003", "E004", "E003"]
    assert m.path_or_url[0] == str(folder / "a.bw")  # relative to the manifest's folder
    assert m.checksum.tolist() == [f"md5:{md5}", f"sha256:{sha}", ""]
    assert m.line.tolist() == [3, 4, 5]
    assert not m.optional.any()
    verify_checksum(m.path_or_url[0], m.checksum[0])
    verify_checksum(m.path_or_url[1], m.checksum[1])


def test_duplicate_pair_is_an_error_naming_it(folder):
    path = write(folder, "E003\tH3K4me3\ta.bw\t\nE004\tH3K4me3\ta.bw\t\nE003\tH3K4me3\ta.bw\t\n")
    with pytest.raises(ManifestError, match=r"line 4: .*\('E003', 'H3K4me3'\).*line 2"):
        read_manifest(path)


def test_missing_and_non_file_paths_are_named(folder):
    path = write(folder, "E003\tH3K4me3\tnope.bw\t\nE004\tH3K4me3\tsub\t\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert "nope.bw does not exist" in str(info.value)
    assert "sub is not a file" in str(info.value)
    assert "optional=true" in str(info.value)
    assert len(read_manifest(path, check_paths=False)) == 2


def test_optional_rows_may_be_absent(folder):
    path = write(
        folder,
        "E003\tH3K4me3\tnope.bw\t\ttrue\n",
        header="celltype\tassay\tpath_or_url\tchecksum\toptional\n",
    )
    assert read_manifest(path).optional.tolist() == [True]


@pytest.mark.parametrize(
    "body, message",
    [
        ("E003\tH3K4me3\ta.bw\tmd5:xyz\n", "checksum 'md5:xyz'"),
        ("E003\tH3K4me3\ta.bw\tsha1:" + "0" * 40 + "\n", "checksum"),
        ("\tH3K4me3\ta.bw\t\n", "must all be filled"),
        ("E003\tH3K4me3\ta.bw\t\textra\n", "5 tab-separated fields"),
    ],
)
def test_malformed_rows(folder, body, message):
    with pytest.raises(ManifestError, match=message):
        read_manifest(write(folder, body))


def test_missing_columns_and_empty(folder):
    with pytest.raises(ManifestError, match=r"no column\(s\) \['path_or_url'\]"):
        read_manifest(write(folder, "E003\tH3K4me3\n", header="celltype\tassay\n"))
    with pytest.raises(ManifestError, match="lists no experiments"):
        read_manifest(write(folder, ""))
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(folder / "none.tsv")


def test_checksum_mismatch_names_the_file(folder):
    with pytest.raises(ManifestError, match=r"a.bw: md5 is .* but the manifest says"):
        verify_checksum(folder / "a.bw", "md5:" + "0" * 32)
    with pytest.raises(AvocadoXrError):  # catchable as the package's error too
        verify_checksum(folder / "a.bw", "sha256:" + "0" * 64)


def test_dataframe_input(folder):
    df = pd.DataFrame({"celltype": ["E003"], "assay": ["H3K4me3"], "path_or_url": ["a.bw"]})
    m = read_manifest(df, base_dir=folder)
    assert m.path_or_url[0] == str(folder / "a.bw") and m.checksum[0] == ""


def test_is_url():
    assert is_url("ftp://x/y.bw") and is_url("HTTPS://x") and not is_url("/data/x.bw")


# --------------------------------------------------------------------------- shipped


def test_shipped_encode_manifest():
    m = read_manifest(REPO / "io" / "manifests" / "encode2018core.tsv")
    assert len(m) == 3_814
    assert m.celltype.nunique() == 400 and m.assay.nunique() == 84
    assert m.path_or_url.str.startswith("https://www.encodeproject.org/files/ENCFF").all()
    assert (m.path_or_url.str.rsplit("/", n=1).str[1] == m.accession + ".bigWig").all()


def test_shipped_roadmap_manifests():
    m = read_manifest(REPO / "io" / "manifests" / "roadmap_consolidated_pval.tsv")
    assert len(m) == 127 * 24 and m.celltype.nunique() == 127 and m.assay.nunique() == 24
    assert m.optional.all()  # only 1,014 of the combinations exist
    pilot = read_manifest(REPO / "io" / "manifests" / "roadmap_pilot.tsv")
    assert len(pilot) == 25 and not pilot.optional.any()
    assert set(pilot.path_or_url) <= set(m.path_or_url)


def test_shipped_manifests_rebuild_from_sources(shared_data):
    src = shared_data / "manifests"
    built = manifest_from_encode(src / "ENCODE2018Core.tsv")
    shipped = read_manifest(REPO / "io" / "manifests" / "encode2018core.tsv")
    cols = ["celltype", "assay", "path_or_url", "biosample", "accession"]
    pd.testing.assert_frame_equal(built[cols], shipped[cols])
    eids = pd.read_csv(src / "roadmap-biosamples.tsv", sep="\t", dtype=str).iloc[:, 0].str.strip()
    assays = [a.strip() for a in (src / "roadmap-assays.tsv").read_text().splitlines() if a]
    roadmap = manifest_from_pattern(eids, assays, ROADMAP_URL)
    shipped = read_manifest(REPO / "io" / "manifests" / "roadmap_consolidated_pval.tsv")
    assert roadmap.path_or_url.tolist() == shipped.path_or_url.tolist()


def test_io_folder_holds_no_python():
    assert not [p for p in (REPO / "io").rglob("*.py")]


@pytest.mark.parametrize("name", ["roadmap_pilot", "roadmap_consolidated_pval", "encode2018core"])
def test_shipped_recipes_are_valid_ingest_options(name):
    from avocado_xr.bigwig.options import IngestOptions
    from avocado_xr.bigwig.reader import layout_for
    from avocado_xr.cli.bigwig import RUN_OPTIONS, _recipe

    options = _recipe(REPO / "io" / "recipes" / f"{name}.yaml")  # unknown keys are refused
    manifest = Path(options["manifest"])
    assert manifest.is_file() and len(read_manifest(manifest)) > 0
    ingest_options = IngestOptions(**{k: v for k, v in options.items() if k not in RUN_OPTIONS})
    layout = layout_for(
        ingest_options.genome,
        ingest_options.chroms,
        ingest_options.regions,
        ingest_options.region_rule,
    )
    if ingest_options.regions is not None:
        assert layout.n_positions == 1_126_469
    else:
        assert layout.n_positions > 100_000_000
