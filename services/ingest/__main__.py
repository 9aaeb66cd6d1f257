"""``python -m services.ingest`` / ``camhub ingest``."""

from services.common.service import main as run_main
from services.ingest.service import IngestService


def main() -> None:
    run_main(IngestService)


if __name__ == "__main__":
    main()
