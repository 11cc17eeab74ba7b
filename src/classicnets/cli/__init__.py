"""The `classicnets` command: parse the command line, then dispatch to one subcommand.

Each module in this package adds its subcommands with `add_parsers(subparsers)` and sets
`handler` to a function taking the parsed arguments and returning an exit code.
"""

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import classicnets
from classicnets import allocator
from classicnets.cli import data, experiments, export, models, reports, training, zoo
from classicnets.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError

COMMAND_MODULES = (models, data, training, export, reports, experiments, zoo)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the command and the problem."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines to whatever sys.stderr is at the time (tests swap it between calls)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="classicnets",
        description="Paper-faithful AlexNet and VGG: build, train, evaluate, ablate, report.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--version", action="version", version=f"classicnets {classicnets.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    for module in COMMAND_MODULES:
        module.add_parsers(subparsers)
    return parser


def _is_override(item: str) -> bool:
    return "=" in item and not item.startswith("-")


def main(argv: Sequence[str] | None = None) -> int:
    allocator.configure()  # before the first tensor: torch reads THP_MEM_ALLOC_ENABLE once
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `train` takes KEY=VALUE overrides anywhere on the line, also after its options.
    if extra and hasattr(args, "overrides") and all(_is_override(item) for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[_ConsoleHandler()],
        force=True,
    )
    try:
        return int(args.handler(args))
    except UserError as error:
        print(f"classicnets: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("classicnets: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug: keep the traceback for the report
        traceback.print_exc()
        print(
            "classicnets: internal error (a bug, not your input); please report it with the "
            "traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG
