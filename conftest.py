"""Root pytest configuration: modules that need an optional extra are not doctest-collected without it."""

import importlib.util

# koqa/cluster/serve.py declares Ray Serve deployments at import time (the 'cluster' extra)
collect_ignore = [] if importlib.util.find_spec("ray") else ["koqa/cluster/serve.py"]
