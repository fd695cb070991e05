"""Command-line plumbing shared by every entry point that reads the site file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sites.load import SiteFileError, load_sites
from sites.model import SiteModel

DEFAULT_SITES = "sites.toml"


def add_sites_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sites",
        metavar="PATH",
        default=None,
        help=f"site file (default: $SITES, else ./{DEFAULT_SITES})",
    )


def resolve_sites_path(option: str | None = None) -> Path:
    """--sites wins over $SITES, which wins over ./sites.toml."""
    return Path(option or os.environ.get("SITES") or DEFAULT_SITES)


def load_or_exit(option: str | None = None) -> SiteModel:
    """Load the site file or print its one-line error and exit 2 (bad input, nothing touched)."""
    try:
        return load_sites(resolve_sites_path(option))
    except SiteFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
