"""Command line: ``python -m power_store demo`` (also installed as ``power-store``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ._demo import DEMO_DB_PATH, run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="power_store", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="simulate a fleet of agents streaming into a database")
    demo.add_argument("--db", default=DEMO_DB_PATH, help=f"database file (default {DEMO_DB_PATH})")
    demo.add_argument("--agents", type=int, default=32)
    demo.add_argument("--rounds", type=int, default=12)
    demo.add_argument("--tools", type=int, default=3)
    demo.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    summary = asyncio.run(
        run_demo(args.db, agents=args.agents, rounds=args.rounds, tools=args.tools, seed=args.seed)
    )
    sys.stdout.write(summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
