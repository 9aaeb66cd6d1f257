"""``python -m services.egress`` / ``camhub egress``."""

from services.common.service import main as run_main
from services.egress.service import EgressService


def main() -> None:
    run_main(EgressService)


if __name__ == "__main__":
    main()
