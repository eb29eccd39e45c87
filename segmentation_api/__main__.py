"""``python -m segmentation_api [--port 3000] [--backend auto] ...`` (``--help`` lists all); the
console script ``segmentation-service`` runs the same."""
from segmentation_api import SETTINGS, create_app
from service_common.config import run_from_cli


def main(argv=None) -> None:
    run_from_cli("Segmentation service: people -> trimap.", SETTINGS, create_app, argv)


if __name__ == "__main__":
    main()
