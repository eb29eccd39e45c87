"""Entry point for ``flask run`` inside this folder, as in the original project
(configuration from the environment variables; the project must be installed, which
``scripts/setup.sh`` does)."""
from service_common.config import app_for_flask_run

app = app_for_flask_run("matting_api")
