"""Command line: ``avocado-xr demo | fit | impute | evaluate | ingest | export-bigwig``.

Every subcommand has ``--help``; ``avocado-xr --version`` prints the package version. Each
subcommand lives in the module of its subsystem (:mod:`.model`, :mod:`.evaluate`,
:mod:`.bigwig`) and registers itself with :func:`build_parser`. A package error (bad input)
is printed as one line naming the option or file and the fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``avocado-xr fit: error: argument --epochs: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``avocado-xr`` argument parser with every subcommand."""
    from .. import __version__
    from . import bigwig, evaluate, model, transfer

    parser = _Parser(
        prog="avocado-xr",
        description="Avocado deep tensor factorization of epigenomic compendia (xarray/zarr).",
    )
    parser.add_argument("--version", action="version", version=f"avocado-xr {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for module in (model, evaluate, bigwig, transfer):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avocado-xr`` command."""
    from ..exceptions import AvocadoXrError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AvocadoXrError as err:
        print(f"avocado-xr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
