"""``python -m segmentation_api [--port 3000] [--backend auto] ...`` (``--help`` lists all)."""
from segmentation_api import SETTINGS, create_app
from service_common.config import run_from_cli

if __name__ == "__main__":
    run_from_cli("Segmentation service: people -> trimap.", SETTINGS, create_app)
