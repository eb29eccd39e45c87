"""Stage timings for the ``Server-Timing`` response header (milliseconds per stage)."""
from __future__ import annotations

import time


class StageTimer:
    def __init__(self):
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap to ``stage``."""
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (now - self._last) * 1000.0
        self._last = now

    def record(self, stages: dict[str, float]) -> None:
        """Take stage times measured elsewhere (the pipeline's, a remote service's) for the
        time since the previous lap, which they account for."""
        for stage, ms in stages.items():
            self.stages[stage] = self.stages.get(stage, 0.0) + ms
        self._last = time.perf_counter()

    def header(self) -> str:
        return ", ".join(f"{k};dur={v:.1f}" for k, v in self.stages.items())


def parse_server_timing(header: str) -> dict[str, float]:
    """``"a;dur=1.5, b;dur=2"`` -> ``{"a": 1.5, "b": 2.0}`` (milliseconds; a stage named
    twice is summed)."""
    stages: dict[str, float] = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        for item in rest.split(";"):
            item = item.strip()
            if item.startswith("dur="):
                stages[name] = stages.get(name, 0.0) + float(item[4:])
    return stages
