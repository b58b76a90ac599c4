"""Root pytest configuration: modules that need an optional extra are not doctest-collected without it."""

import importlib.util
import os

# tests never touch the network: Haystack would send usage telemetry from the first import on
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

# koqa/cluster/serve.py declares Ray Serve deployments at import time (the 'cluster' extra)
collect_ignore = [] if importlib.util.find_spec("ray") else ["koqa/cluster/serve.py"]
# the framework integrations import their framework at module level (the 'haystack' / 'langchain' extras)
collect_ignore += [f"koqa/integrations/{name}.py" for name, package in (("haystack", "haystack"),
                   ("langchain", "langchain_core")) if not importlib.util.find_spec(package)]
