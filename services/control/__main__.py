"""``python -m services.control`` / ``camhub control``."""

from services.common.service import main as run_main
from services.control.service import ControlService


def main() -> None:
    run_main(ControlService)


if __name__ == "__main__":
    main()
