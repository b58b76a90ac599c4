"""The Hugging Face-style reader endpoint with the real reader code (tiny random model) behind it."""

from __future__ import annotations

import httpx
import pytest
from test_api import chunker, make_app, store  # noqa: F401  (fixtures)

from koqa.api.server import serve_in_thread

CTX = "세종대왕은 1443년에 훈민정음을 창제하였고 1446년에 반포하였다. 훈민정음은 28자로 이루어져 있었다."
ONE = {"question": "훈민정음을 창제한 왕은?", "context": CTX}


@pytest.fixture(scope="module")
def url(tiny_reader, tmp_path_factory, store):  # noqa: F811
    from koqa.api import ServerConfig, create_app
    from koqa.settings import Settings

    app = create_app(Settings.from_env({"KOQA_HOME": str(tmp_path_factory.mktemp("home"))}), reader=tiny_reader,
                     store=store, config=ServerConfig(max_wait_ms=20))
    with serve_in_thread(app) as base:
        yield base


def is_answer(d, context=CTX):
    return list(d) == ["score", "start", "end", "answer"] and context[d["start"]:d["end"]] == d["answer"] \
        and 0.0 <= d["score"] <= 1.0


def test_health_names_the_reader_backend_and_why(url):
    health = httpx.get(url + "/health").json()
    assert health["reader_backend"] == {"backend": "torch-fp32", "reason": health["reader_backend"]["reason"]}
    assert health["reader_backend"]["reason"].startswith("set explicitly")


def test_single_input_top_1_is_one_object(url):
    r = httpx.post(url + "/models/reader", json={"inputs": ONE})
    assert r.status_code == 200 and is_answer(r.json())


def test_top_k_gives_a_ranked_list_and_lists_of_inputs_give_lists(url):
    many = httpx.post(url + "/models/reader", json={"inputs": ONE, "parameters": {"top_k": 3}}).json()
    assert len(many) == 3 and all(is_answer(d) for d in many)
    assert [d["score"] for d in many] == sorted((d["score"] for d in many), reverse=True)
    two = httpx.post(url + "/models/reader", json={"inputs": [ONE, ONE], "parameters": {"max_answer_len": 5}}).json()
    assert len(two) == 2 and all(is_answer(d) for d in two) and two[0] == two[1]


def test_parameters_reach_the_reader(url):
    short = {"question": "누가?", "context": "세종대왕이 만들었다."}
    args = {"top_k": 50, "max_answer_len": 1, "max_seq_len": 64, "doc_stride": 16}
    spans = httpx.post(url + "/models/reader", json={"inputs": short, "parameters": args}).json()
    null = httpx.post(url + "/models/reader", json={"inputs": short, "parameters": {
        **args, "handle_impossible_answer": True}}).json()
    assert all(d["answer"] for d in spans) and len(null) == len(spans) + 1
    assert any(d["answer"] == "" and d["start"] == d["end"] == 0 for d in null)  # the null answer is ranked too
    r = httpx.post(url + "/models/reader", json={"inputs": ONE, "parameters": {"max_seq_len": 64, "doc_stride": 60}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "doc_stride"
    r = httpx.post(url + "/models/reader", json={"inputs": ONE, "parameters": {"max_question_len": 2}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "question"


def test_align_to_words_switches_particle_trimming(url):
    answers = {}
    for align in (True, False):
        body = {"inputs": ONE, "parameters": {"top_k": 50, "align_to_words": align}}
        answers[align] = httpx.post(url + "/models/reader", json=body).json()
        assert all(is_answer(d) for d in answers[align])
    assert {d["answer"] for d in answers[True]} != {d["answer"] for d in answers[False]}


def test_ask_with_the_real_reader(url):
    r = httpx.post(url + "/ask", json={"question": "훈민정음을 창제한 왕은?", "collection": "history",
                                       "top_k_passages": 3, "return_passages": True})
    assert r.status_code == 200
    for a in r.json()["answers"]:
        p = a["passage"]
        assert p["text"][p["answer_start"]:p["answer_end"]] == a["text"]
