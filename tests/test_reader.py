"""The reader end to end with a tiny random ELECTRA and the real KoELECTRA tokenizer."""

import numpy as np
import pytest

from koqa.errors import InvalidInput
from koqa.reader.windows import make_windows

CTX = "세종대왕은 조선의 제4대 왕이다. 1443년에 훈민정음을 창제하였고, 1446년에 반포하였다."
Q = "훈민정음을 창제한 왕은?"


def test_answers_are_exact_substrings_with_offsets(tiny_reader):
    spans = tiny_reader.read(Q, CTX, top_k=5)
    assert 1 <= len(spans) <= 5
    for sp in spans:
        assert CTX[sp.start : sp.end] == sp.text
        assert sp.text == sp.text.strip() and sp.text
        assert 0 < sp.start_prob <= 1 and 0 < sp.end_prob <= 1
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
    assert len({(s.start, s.end) for s in spans}) == len(spans)


def test_token_probabilities_on_request(tiny_reader):
    sp = tiny_reader.read(Q, CTX, return_token_probs=True)[0]
    tp = sp.token_probs
    assert tp is not None and tp.offsets.shape == (len(tp.start), 2)
    assert np.isclose(tp.start.sum(), 1.0, atol=1e-4)  # one window: the joint softmax sums to one
    assert tiny_reader.read(Q, CTX)[0].token_probs is None


def test_long_context_is_windowed_and_scores_compare_across_windows(tiny_reader):
    long_ctx = " ".join([CTX] * 40)
    windows = make_windows(tiny_reader.tokenizer, [Q], [long_ctx], max_seq_len=128, doc_stride=32)
    assert len(windows) > 3
    # consecutive windows overlap and every context char is covered
    covered = np.zeros(len(long_ctx), bool)
    for w in windows:
        for s, e in w.offsets[w.is_context]:
            covered[s:e] = True
        assert len(w) <= 128
    assert covered[[i for i, c in enumerate(long_ctx) if not c.isspace()]].all()
    spans = tiny_reader.read(Q, long_ctx, top_k=3, max_seq_len=128, doc_stride=32)
    total = sum(s.start_prob for s in tiny_reader.read(Q, long_ctx, top_k=50, max_seq_len=128, doc_stride=32))
    assert total <= 1.0 + 1e-5  # probabilities are normalised over all windows together
    for sp in spans:
        assert long_ctx[sp.start : sp.end] == sp.text


def test_many_contexts_and_batch_regrouping(tiny_reader):
    contexts = [CTX, "이순신은 조선 중기의 무신이다.", "서울은 대한민국의 수도이다."]
    joint = tiny_reader.read(Q, contexts, top_k=10)
    assert {s.context_index for s in joint} <= {0, 1, 2}
    for s in joint:
        assert contexts[s.context_index][s.start : s.end] == s.text
    batched = tiny_reader.read_batch([Q, "수도는?"], [contexts, [contexts[2]]], top_k=2)
    single = tiny_reader.read("수도는?", contexts[2], top_k=2)
    assert [(s.text, s.start) for s in batched[1]] == [(s.text, s.start) for s in single]
    assert batched[1][0].score == pytest.approx(single[0].score, abs=1e-4)


def test_impossible_answer_adds_a_null_span(tiny_reader):
    spans = tiny_reader.read(Q, CTX, top_k=5000, handle_impossible_answer=True)
    nulls = [s for s in spans if s.text == ""]
    assert len(nulls) == 1 and nulls[0].start == nulls[0].end == 0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"question": "", "contexts": CTX}, "question"),
        ({"question": "   ", "contexts": CTX}, "question"),
        ({"question": Q, "contexts": " "}, "context"),
        ({"question": Q, "contexts": []}, "context"),
        ({"question": 3, "contexts": CTX}, "question"),
        ({"question": Q, "contexts": [CTX, 5]}, "context"),
        ({"question": Q, "contexts": CTX, "top_k": 0}, "top_k"),
        ({"question": Q, "contexts": CTX, "max_answer_len": "x"}, "max_answer_len"),
        ({"question": Q, "contexts": CTX, "doc_stride": 300}, "doc_stride"),
        ({"question": "왜 " * 200, "contexts": CTX}, "question"),
        ({"question": Q, "contexts": "가" * 100_001}, "context"),
    ],
)
def test_bad_input_names_the_field(tiny_reader, kwargs, field):
    with pytest.raises(InvalidInput) as err:
        tiny_reader.read(**kwargs)
    assert err.value.field == field


def test_redundant_windows_are_dropped(tiny_reader):
    windows = make_windows(tiny_reader.tokenizer, [Q], [CTX], max_seq_len=384, doc_stride=128)
    assert len(windows) == 1


def test_particle_trimming_is_optional(tiny_model_dir):
    from koqa.reader import QAReader
    from koqa.text.particles import ParticleTrimmer

    trimmer = ParticleTrimmer.load()
    assert "이순신 장군은"[: trimmer.trim_end("이순신 장군은")] == "이순신 장군"
    assert "1443년에"[: trimmer.trim_end("1443년에")] == "1443년"
    assert "세종대왕"[: trimmer.trim_end("세종대왕")] == "세종대왕"
    # in its sentence, the name 현정은 is a noun; alone, Kiwi reads it as 현정 + 은
    assert "현정은"[: trimmer.trim_end("현정은", " 현대그룹 회장은")] == "현정은"
    assert "현정은 회장은"[: trimmer.trim_end("현정은 회장은", " 북한을 방문했다.")] == "현정은 회장"
    # 버널 = 버너 + ᆯ: cutting the fused particle would cut the name's last syllable
    assert "데니스 버널"[: trimmer.trim_end("데니스 버널")] == "데니스 버널"
    assert trimmer.span_end("그때 현정은 회장은 북한을 방문했다.", 3, 10) == 9  # offsets into the context
    reader = QAReader.from_pretrained(str(tiny_model_dir), device="cpu", backend="torch-fp32", trim_particles=True)
    for sp in reader.read(Q, CTX, top_k=5):
        assert CTX[sp.start : sp.end] == sp.text


def test_a_call_can_turn_particle_trimming_on_or_off(tiny_reader):
    from koqa.text.particles import ParticleTrimmer
    from koqa.reader.qa import QAReader

    ctx = "세종대왕은 훈민정음을 창제하였다."
    offsets = tiny_reader.tokenizer(ctx, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    last = next(i for i, (_, e) in enumerate(offsets) if e == len("세종대왕은"))

    def runner(batch):  # the model's answer: 세종대왕은, particle included
        start = np.zeros(batch["input_ids"].shape, np.float32)
        end = start.copy()
        for row, types in enumerate(batch["token_type_ids"]):
            first = np.flatnonzero(types)[0]
            start[row, first] = end[row, first + last] = 10.0
        return start, end

    trimming = QAReader(tiny_reader.tokenizer, runner, tiny_reader.config, trimmer=ParticleTrimmer.load())
    plain = QAReader(tiny_reader.tokenizer, runner, tiny_reader.config)
    assert [r.read(Q, ctx, trim_particles=t)[0].text for r, t in ((trimming, None), (trimming, False))] \
        == ["세종대왕", "세종대왕은"]
    assert [plain.read(Q, ctx, trim_particles=t)[0].text for t in (None, True, None)] == ["세종대왕은", "세종대왕", "세종대왕은"]


def test_scores_are_relative_to_each_windows_no_answer_logits(tiny_reader):
    """A passage whose logits are all high (its [CLS] too) must not outrank one the model prefers to null."""
    from koqa.reader.qa import QAReader

    def runner(batch):
        start = np.zeros(batch["input_ids"].shape, np.float32)
        for row, types in enumerate(batch["token_type_ids"]):
            if batch["attention_mask"][row].sum() > 30:  # the long passage: every logit +10, [CLS] +14
                start[row] += 10.0
                start[row, 0] += 4.0
            start[row, np.flatnonzero(types)[0]] += 1.0  # its first context token beats "no answer" by 2
        return start, start.copy()

    reader = QAReader(tiny_reader.tokenizer, runner, tiny_reader.config)
    quiet, loud = "세종대왕.", "이순신은 조선 중기의 무신이며 한산도 대첩에서 학익진으로 왜군을 크게 물리쳤다."
    spans = reader.read(Q, [loud, quiet], top_k=50, handle_impossible_answer=True)
    assert (spans[0].text, spans[0].context_index, spans[0].score) == ("세종", 1, pytest.approx(2.0))
    null = next(i for i, sp in enumerate(spans) if sp.text == "")
    assert spans[null].score == 0.0
    assert all(sp.context_index == 1 for sp in spans[:null]) and all(sp.score < 0 for sp in spans[null + 1:])
