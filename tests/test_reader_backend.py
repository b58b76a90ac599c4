"""KOQA_READER_BACKEND=auto: the policy on hand-written CPU flag sets, detection, explicit backends, loading."""

from __future__ import annotations

import pytest

from koqa.errors import InvalidInput
from koqa.reader.backend import CpuFeatures, choose_backend, resolve_backend
from koqa.settings import Settings

# flag sets as /proc/cpuinfo prints them on the kinds of CPU measured (trimmed to what matters)
SAPPHIRE_RAPIDS = "fpu sse4_2 avx avx2 avx512f avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8"
EPYC_GENOA = "fpu sse4_2 avx avx2 avx512f avx512_vnni avx512_bf16"
CASCADE_LAKE = "fpu sse4_2 avx avx2 avx512f avx512_vnni"
ALDER_LAKE = "fpu sse4_2 avx avx2 avx_vnni"
EPYC_ROME = "fpu sse4_2 avx avx2"
OLD = "fpu sse4_2"


def cpu(flags: str, model: str = "Test CPU") -> CpuFeatures:
    return CpuFeatures(model, frozenset(flags.split()))


@pytest.mark.parametrize("flags, backend, names", [
    (SAPPHIRE_RAPIDS, "torch-bf16", ("AMX", "amx_bf16", "within 0.3 F1")),
    (EPYC_GENOA, "torch-bf16", ("AVX512-BF16 without AMX", "avx512_bf16", "faster than fp32")),
    (CASCADE_LAKE, "torch-fp32", ("VNNI", "avx512_vnni", "onnx-int8 is faster")),
    (ALDER_LAKE, "torch-fp32", ("VNNI", "avx_vnni")),
    (EPYC_ROME, "torch-fp32", ("no native bf16", "avx2")),
    (OLD, "torch-fp32", ("no native bf16", "none of")),
])
def test_policy_by_cpu_kind(flags, backend, names):
    choice = choose_backend(cpu(flags, "Some CPU"), cuda=False)
    assert choice.backend == backend
    assert all(n in choice.reason for n in names), choice.reason
    assert "Some CPU" in choice.reason


def test_cuda_runs_torch_on_the_gpu_whatever_the_cpu():
    choice = choose_backend(cpu(SAPPHIRE_RAPIDS), cuda=True, cuda_name="NVIDIA H100")
    assert choice.backend == "torch-fp32" and "NVIDIA H100" in choice.reason


def test_an_explicit_backend_wins_and_says_what_auto_would_pick():
    assert resolve_backend("torch-fp32", cpu=cpu(EPYC_ROME), cuda=False).reason == "set explicitly"
    assert resolve_backend("onnx-int8", cpu=cpu(EPYC_ROME), cuda=False).reason == "set explicitly (auto would pick torch-fp32)"
    choice = resolve_backend("torch-fp32", cpu=cpu(SAPPHIRE_RAPIDS), cuda=False)
    assert choice.backend == "torch-fp32" and "auto would pick torch-bf16" in choice.reason
    auto = resolve_backend("auto", cpu=cpu(SAPPHIRE_RAPIDS), cuda=False)
    assert auto.backend == "torch-bf16" and auto.reason.startswith("auto: AMX")
    assert resolve_backend("torch", cpu=cpu(OLD), cuda=False).backend == "torch-fp32"  # the older name
    with pytest.raises(InvalidInput, match="must be one of auto"):
        resolve_backend("fp8", cpu=cpu(OLD), cuda=False)


def test_device_cpu_rules_cuda_out():
    assert resolve_backend("auto", device="cpu", cpu=cpu(EPYC_ROME)).backend == "torch-fp32"


def test_cpuinfo_parsing_takes_the_first_processor(tmp_path):
    text = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu avx2 AMX_BF16\n\n"
            "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
    (tmp_path / "cpuinfo").write_text(text)
    features = CpuFeatures.detect(tmp_path / "cpuinfo")
    assert features.model == "Intel(R) Xeon(R) Platinum 8480+" and features.relevant == ("amx_bf16", "avx2")
    missing = CpuFeatures.detect(tmp_path / "absent")  # not Linux: no flags, so fp32
    assert missing.flags == frozenset() and choose_backend(missing, cuda=False).backend == "torch-fp32"


def test_settings_default_to_auto_and_check_the_name():
    assert Settings().reader_backend == "auto" and Settings.from_env({}).reader_backend == "auto"
    with pytest.raises(InvalidInput) as err:
        Settings.from_env({"KOQA_READER_BACKEND": "gpu"})
    assert err.value.field == "KOQA_READER_BACKEND"
    with pytest.raises(InvalidInput, match="reader_backend"):
        Settings(reader_backend="gpu")


def test_settings_are_read_from_the_env_given_not_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("KOQA_BUILTIN_MODELS", "/somewhere")
    assert Settings().builtin_models is None  # the library default never reads the environment
    s = Settings.from_env({"KOQA_HOME": str(tmp_path), "KOQA_BUILTIN_MODELS": str(tmp_path / "b"),
                           "KOQA_SHARED": str(tmp_path / "s"), "HF_HOME": str(tmp_path / "hf")})
    assert s.builtin_models == tmp_path / "b" and s.shared == tmp_path / "s" and s.hub_cache == tmp_path / "hf" / "hub"
    assert s.database_url == f"sqlite:///{tmp_path / 'koqa.db'}" and not s.hub_offline


def test_from_pretrained_records_the_choice(tiny_model_dir):
    from koqa.reader import QAReader

    reader = QAReader.from_pretrained(str(tiny_model_dir), device="cpu", backend="auto", trim_particles=False)
    expected = resolve_backend("auto", device="cpu")
    assert reader.backend == expected
    dtype = str(next(reader.runner.model.parameters()).dtype)
    assert dtype == ("torch.bfloat16" if expected.backend == "torch-bf16" else "torch.float32")
