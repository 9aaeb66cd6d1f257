"""``python -m services.egress`` / ``camhub egress``."""

import sys

from services.common.service import main as run_main
from services.common.settings import SettingsError
from services.egress.config import load_egress_config
from services.egress.service import EgressService


def main() -> None:
    try:
        load_egress_config()  # a bad CAMHUB_EGRESS_* value: one clear line, exit 2
    except SettingsError as exc:
        print(f"camhub egress: {exc}", file=sys.stderr)
        sys.exit(2)
    run_main(EgressService)


if __name__ == "__main__":
    main()
