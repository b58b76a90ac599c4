"""LangChain over koqa: a ``BaseRetriever`` of a koqa collection and a QA runnable/tool that answers with sources.

``pip install 'koqa[langchain]'`` (``langchain-core`` only).

>>> retriever = KoqaRetriever(collection="demo", top_k=5)                  # doctest: +SKIP
>>> retriever.invoke("훈민정음을 만든 왕은?", filters={"title": "훈민정음과 세종대왕"})[0].metadata["doc_id"]  # doctest: +SKIP
'...'
>>> qa = KoqaQA(collection="demo")                                          # doctest: +SKIP
>>> qa.invoke("훈민정음을 만든 왕은?")["answer"]                              # doctest: +SKIP
'세종대왕'
>>> tool = answer_tool(qa)        # for an agent: text to read, the full record as artifact  # doctest: +SKIP

Documents carry koqa's hit as metadata (:func:`koqa.integrations.common.hit_meta`: document
id, title, source, the passage's ``start``/``end`` in its document, ``scores``, ``ranks``).
Filters are koqa's (:mod:`koqa.store.filters`); ``invoke(query, filters=...)`` replaces the
retriever's own. Settings left None come from the ``KOQA_*`` environment, read once when
the store or models first load; an already open ``corpus``/``pipeline`` can be passed instead.
A bad value is refused naming it: at construction inside pydantic's ``ValidationError``,
at ``invoke`` as koqa's :class:`~koqa.errors.InvalidInput` (both are ``ValueError``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.tools import StructuredTool
from pydantic import ConfigDict, PrivateAttr

from koqa.errors import InvalidInput
from koqa.integrations.common import check_count, edge_settings, hit_meta, open_retrieval_corpus, retrieve_hits
from koqa.pipeline.qa import MAX_PASSAGES, QAResult, check_options
from koqa.retriever.base import check_mode
from koqa.store.filters import check_filters

__all__ = ["KoqaQA", "KoqaRetriever", "answer_tool"]


class KoqaRetriever(BaseRetriever):
    """The ``top_k`` passages of ``collection`` for a query, as LangChain documents."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: str = "default"
    top_k: int = 10
    mode: str = "hybrid"
    filters: dict[str, Any] | None = None
    home: str | None = None
    database_url: str | None = None
    embedder: str | None = None
    corpus: Any = None  # an open koqa Corpus (anything with koqa's retrieve()); None: opened on first use

    def model_post_init(self, _context: Any) -> None:
        check_count("top_k", self.top_k, MAX_PASSAGES)
        check_mode(self.mode)
        check_filters(self.filters)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                filters: dict[str, Any] | None = None, top_k: int | None = None,
                                mode: str | None = None) -> list[Document]:
        hits = retrieve_hits(self._open(), query, self.collection, top_k=self.top_k, mode=self.mode,
                             filters=self.filters, call_top_k=top_k, call_mode=mode, call_filters=filters)
        return [Document(page_content=h.passage.text, id=h.passage.id,
                         metadata={**hit_meta(h, self.collection), "score": h.score}) for h in hits]

    def _open(self):
        if self.corpus is None:
            self.corpus = open_retrieval_corpus(home=self.home, database_url=self.database_url,
                                                embedder=self.embedder, mode=self.mode)
        return self.corpus


class KoqaQA(RunnableSerializable[Any, dict]):
    """``koqa ask`` as a runnable: a question (or ``{"question": ..., "filters": ...}``) → its answer with sources.

    The output is ``QAResult.record`` (what ``koqa ask --json`` prints) plus ``answer``: the
    best answer's text, or ``""`` when koqa abstains (its confidence is below the threshold).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: str = "default"
    top_k_passages: int = 20
    top_n_answers: int = 5
    mode: str = "hybrid"
    filters: dict[str, Any] | None = None
    threshold: float | None = None
    home: str | None = None
    database_url: str | None = None
    reader: str | None = None
    embedder: str | None = None
    backend: str | None = None
    pipeline: Any = None  # an open koqa QAPipeline; None: loaded on first use
    _loaded: bool = PrivateAttr(default=False)

    def model_post_init(self, _context: Any) -> None:
        check_options(self.top_k_passages, self.top_n_answers, self.mode, self.threshold)
        check_filters(self.filters)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        return self._call_with_config(self._answer, input, config, **kwargs)

    def run(self, question: str, filters: dict[str, Any] | None = None) -> QAResult:
        """The :class:`~koqa.pipeline.qa.QAResult` of ``question``; ``filters`` replace the runnable's."""
        return self._open().run(question, self.collection, self.top_k_passages, self.top_n_answers, self.mode,
                                threshold=self.threshold, filters=self.filters if filters is None else filters)

    def _answer(self, input: Any) -> dict:
        if isinstance(input, dict):
            if "question" not in input:
                raise InvalidInput("input", input, 'must be a question or {"question": ..., "filters": ...}')
            question, filters = input["question"], input.get("filters")
        else:
            question, filters = input, None
        result = self.run(question, filters)
        record = result.record(self.collection)
        best = result.answers[0].text if result.answers and not result.no_answer else ""
        return {"answer": best, **record}

    def _open(self):
        if self.pipeline is None:
            from koqa.pipeline import QAPipeline

            settings = edge_settings(home=self.home, database_url=self.database_url, reader=self.reader,
                                     embedder=self.embedder, reader_backend=self.backend)
            self.pipeline = QAPipeline.from_settings(settings)
        return self.pipeline


def _summary(record: dict) -> str:
    """The tool's text: the answer (or the abstention) and where it was found."""
    answers = record["answers"]
    if not answers:
        return "No answer: nothing relevant was found."
    a = answers[0]
    head = (f"Answer: {a['text']} (confidence {a['score']:.2f})" if record["answer"] else
            f"No confident answer (best: {a['text']}, confidence {a['score']:.2f} < {record['threshold']:.2f}).")
    sources = [f"- {s.get('doc_title') or s.get('doc_id')} ({s.get('source') or s.get('doc_id')}, "
               f"chars {s.get('start')}-{s.get('end')})" for s in a["sources"]]
    return "\n".join([head, "Sources:", *sources])


def answer_tool(qa: KoqaQA, *, name: str = "koqa_answer",
                description: str = "Answers a Korean question from the documents of a koqa collection, "
                                   "with the passages it was found in.") -> StructuredTool:
    """``qa`` as a tool: the agent reads the answer and its sources; the full record is the artifact."""

    def answer(question: str, filters: dict[str, Any] | None = None) -> tuple[str, dict]:
        record = qa.invoke({"question": question, "filters": filters})
        return _summary(record), record

    return StructuredTool.from_function(answer, name=name, description=description,
                                        response_format="content_and_artifact")
