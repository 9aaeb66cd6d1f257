"""``python -m services.gateway`` / ``camhub gateway``."""

from services.common.service import main as run_main
from services.gateway.service import GatewayService


def main() -> None:
    run_main(GatewayService)


if __name__ == "__main__":
    main()
