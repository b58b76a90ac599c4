"""koqa inside other frameworks; each submodule imports its framework, this package imports nothing.

* :mod:`koqa.integrations.haystack` — Haystack components (``pip install 'koqa[haystack]'``);
* :mod:`koqa.integrations.langchain` — a LangChain retriever and QA tool (``pip install 'koqa[langchain]'``);
* :mod:`koqa.integrations.hf_export` — a reader as a plain Hugging Face checkpoint with an
  Inference Endpoints ``handler.py`` (no extra needed).
"""
