"""Weight averaging of two fine-tunes (tiny random BERTs, fast)."""

from __future__ import annotations

import numpy as np
import pytest
from test_models_delta import tiny_base, tune

from koqa.errors import InvalidInput
from koqa.models.average import average_folders
from koqa.models.delta import load_weights


def test_average_is_the_weighted_mean_and_keeps_a_loadable_folder(tmp_path):
    base = tiny_base(tmp_path / "base")
    tune(base, tmp_path / "a", seed=1)
    tune(base, tmp_path / "b", seed=2)
    out = average_folders(tmp_path / "a", tmp_path / "b", tmp_path / "soup", weight=0.25)
    wa, wb, ws = (load_weights(tmp_path / n) for n in ("a", "b", "soup"))
    for k in wa:
        np.testing.assert_allclose(ws[k], 0.25 * wa[k] + 0.75 * wb[k], rtol=1e-6, atol=1e-7)
    untouched = next(k for k in wa if "layer.0." in k)  # tune() perturbs layer 1 only
    assert np.array_equal(ws[untouched], wa[untouched])  # bit-exact where both agree
    assert (out / "config.json").is_file()
    import transformers

    transformers.AutoModelForQuestionAnswering.from_pretrained(out)


def test_average_refuses_mismatched_models_and_bad_weights(tmp_path):
    base = tiny_base(tmp_path / "base")
    tune(base, tmp_path / "a")
    with pytest.raises(InvalidInput, match="weight"):
        average_folders(tmp_path / "a", tmp_path / "a", tmp_path / "x", weight=1.5)
    with pytest.raises(InvalidInput, match="does not match"):
        average_folders(tmp_path / "a", base, tmp_path / "x")
