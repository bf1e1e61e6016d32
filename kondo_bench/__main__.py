"""`kondo-bench` and `python -m kondo_bench`: the command line (kondo_bench/cli.py), entered
through this light module so that a stop signal that arrives while torch and Hydra are still
being imported is one line and exit 130 too (kondo_bench/interrupt.py)."""

from __future__ import annotations

import sys

from .interrupt import guarded


def main(argv: list[str] | None = None) -> int:
    def command() -> int:
        from .cli import main as cli_main  # torch and Hydra load here, inside the guard

        return cli_main(argv)

    return guarded(command)


if __name__ == "__main__":
    sys.exit(main())
