"""``python -m matting_api [--port 5000] [--segmentation-url URL] ...`` (``--help`` lists all); the
console script ``matting-service`` runs the same."""
from matting_api import SETTINGS, create_app
from service_common.config import run_from_cli


def main(argv=None) -> None:
    run_from_cli("Matting service: photo -> people composited.", SETTINGS, create_app, argv)


if __name__ == "__main__":
    main()
