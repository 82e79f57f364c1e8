"""Argument types and option groups shared by the subcommands."""

from __future__ import annotations

import argparse

__all__ = ["add_hyperparameters", "hyperparameters", "pair", "positive_int"]


def pair(text: str) -> tuple[str, str]:
    """Parse ``E065:H3K4me3`` (or ``E065/H3K4me3``) into a (celltype, assay) pair."""
    for sep in (":", "/"):
        if sep in text:
            celltype, assay = text.split(sep, 1)
            if celltype and assay:
                return celltype, assay
    raise argparse.ArgumentTypeError(f"expected CELLTYPE:ASSAY, got {text!r}")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def add_hyperparameters(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`~avocado_xr.config.AvocadoConfig` field (default: the paper's)."""
    from ..config import AvocadoConfig

    defaults = AvocadoConfig().to_dict()
    parser.set_defaults(hyperparameters=list(defaults))
    group = parser.add_argument_group("model (defaults: the paper's)")
    for name, value in defaults.items():
        choices = AvocadoConfig.choices().get(name)
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=type(value),
            default=None,
            choices=choices,
            help=f"default {value}",
        )


def hyperparameters(args) -> dict:
    """The model options given on the command line (the others keep the paper's defaults)."""
    return {k: getattr(args, k) for k in args.hyperparameters if getattr(args, k) is not None}
