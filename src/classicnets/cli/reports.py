"""Subcommands: (none yet)."""

import argparse
from typing import Any


def add_parsers(subparsers: "argparse._SubParsersAction[Any]") -> None:
    """Add this module's subcommands."""
