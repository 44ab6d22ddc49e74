"""Precision and threads are detected from the machine, not assumed."""

from __future__ import annotations

import pytest
import torch

from reranker_tasks import hardware
from reranker_tasks.config import load_run_config
from reranker_tasks.errors import ConfigError


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    flags = hardware.cpu_flags(info)
    assert {"avx512f", "avx512_bf16"} <= flags
    assert hardware.cpu_has_bf16(flags)
    assert not hardware.cpu_has_bf16({"avx2", "avx512f"})
    assert hardware.cpu_has_bf16({"amx_bf16"})
    assert hardware.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_picks_bf16_only_on_native_hardware(monkeypatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda flags=None: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    compute = hardware.resolve_compute("auto")
    assert (compute.device, compute.precision) == ("cpu", expected)
    assert hardware.resolve_compute("fp32").precision == "fp32"
    assert hardware.resolve_compute("bf16").precision == "bf16"


def test_autocast_runs_bf16_matmuls_only_when_chosen() -> None:
    a = torch.randn(4, 4)
    bf16 = hardware.Compute("cpu", "bf16", "test", 1)
    with hardware.autocast(bf16):
        assert (a @ a).dtype == torch.bfloat16
    with hardware.autocast(hardware.FP32):
        assert (a @ a).dtype == torch.float32


def test_threads_follow_the_env_override_and_the_affinity(monkeypatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(hardware.THREADS_ENV, "1")
        assert hardware.configure_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv(hardware.THREADS_ENV)
        assert hardware.configure_threads() == hardware.available_cores() == torch.get_num_threads()
        monkeypatch.setenv(hardware.THREADS_ENV, "zero")
        with pytest.raises(ValueError, match=hardware.THREADS_ENV):
            hardware.configure_threads()
    finally:
        torch.set_num_threads(before)


def test_unknown_precision_fails_at_config_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="precision"):
        load_run_config({"precision": "fp16"})
    config = load_run_config({"precision": "fp32"})
    assert config.train.precision == config.evaluate.precision == "fp32"
