"""``python -m services.hls`` / ``camhub hls``."""

from services.common.service import main as run_main
from services.hls.service import HlsService


def main() -> None:
    run_main(HlsService)


if __name__ == "__main__":
    main()
