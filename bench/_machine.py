"""The machine a benchmark ran on, for its JSON: every speed figure must name its CPU.

>>> sorted(cpu())
['cpus', 'flags', 'load_avg', 'model']
"""

from __future__ import annotations

import os

from koqa.reader.backend import CpuFeatures


def cpu() -> dict:
    """The CPU's model name, the flags the reader backend policy looks at, cores and load now."""
    features = CpuFeatures.detect()
    return {"model": features.model, "flags": list(features.relevant), "cpus": os.cpu_count(),
            "load_avg": round(os.getloadavg()[0], 2)}
