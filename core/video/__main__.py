"""``python -m core.video FOREGROUND [-b BACKGROUND] [-o OUTPUT] ...`` (``-h`` lists all)."""
import sys

from core.video.cli import main

if __name__ == "__main__":
    sys.exit(main())
