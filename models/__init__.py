"""The folder weight files live in (``*.pth``, git-ignored) and the command that fetches
them: ``python -m models.download``. The records describing each file are data of the
engine, in :mod:`core.weights`; see ``models/README.md``."""
