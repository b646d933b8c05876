"""Command line: `gradprobe demo`, `gradprobe check FILE:NAME`."""

from __future__ import annotations

import argparse
import sys

from ._demo import run_demo

EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 2}
USAGE_ERROR = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradprobe",
        description="Check a hand-written gradient against numerical derivatives, and say where and how it is wrong.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="check the deeplearning.ai assignment's network (buggy and fixed)",
        description=(
            "Run the deeplearning.ai 'Gradient Checking' assignment through gradprobe: the 1-D check "
            "J = theta*x, the 3-layer network whose backprop has two planted bugs (dW2 doubled, db1 "
            "with 4/m), and the fixed network. Prints the verdict and a per-tensor table for each."
        ),
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return 1 if run_demo() else 0
    parser.print_help()
    return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
