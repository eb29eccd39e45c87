"""``python -m matting_api [--port 5000] [--segmentation-url URL] ...`` (``--help`` lists all)."""
from matting_api import SETTINGS, create_app
from service_common.config import run_from_cli

if __name__ == "__main__":
    run_from_cli("Matting service: photo -> people composited.", SETTINGS, create_app)
