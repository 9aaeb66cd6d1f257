"""``camhub sim printer|camera``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    print(f"camhub sim: unknown simulator {argv[:1]}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
