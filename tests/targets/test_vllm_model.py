"""Which model a spawned vLLM serves (harness/targets/vllm_model.py)."""

from __future__ import annotations

import json

import pytest

from harness.targets import vllm_model


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """WEIGHTS_DIR pointed at a folder; fill() writes the files a model directory needs."""
    path = tmp_path / "weights"
    path.mkdir()
    monkeypatch.setattr(vllm_model, "WEIGHTS_DIR", path)

    def fill():
        for name in vllm_model.WEIGHT_FILES:
            (path / name).write_text("{}")
        return path
    return fill


def test_default_is_the_tool_model_when_its_weights_are_there(monkeypatch, fake_weights):
    monkeypatch.delenv(vllm_model.ENV, raising=False)
    path = fake_weights()
    assert vllm_model.default() == vllm_model.TOOL
    chosen = vllm_model.choose()
    assert chosen.path == path and chosen.args == ()


def test_default_falls_back_to_tiny_without_weights(monkeypatch, fake_weights, cache_dir):
    pytest.importorskip("tokenizers")
    monkeypatch.delenv(vllm_model.ENV, raising=False)
    assert vllm_model.default() == vllm_model.TINY
    chosen = vllm_model.choose()
    assert chosen.args == vllm_model.DUMMY_ARGS and chosen.path.parent == cache_dir / "models"


def test_tool_asked_for_without_weights_says_what_to_do(fake_weights):
    with pytest.raises(vllm_model.ModelChoiceError, match=r"model\.safetensors.*tool_model_gpu\.sh"):
        vllm_model.choose("tool")


def test_env_picks_tiny_even_with_weights(monkeypatch, fake_weights, cache_dir):
    pytest.importorskip("tokenizers")
    fake_weights()
    monkeypatch.setenv(vllm_model.ENV, "tiny")
    assert vllm_model.choose().args == vllm_model.DUMMY_ARGS


def test_a_model_directory_or_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert vllm_model.choose(str(tmp_path)).path == tmp_path
    with pytest.raises(vllm_model.ModelChoiceError, match="not 'tool', 'tiny' or a model directory"):
        vllm_model.choose(str(tmp_path / "missing"))


def test_committed_weights_if_any_are_a_small_llama_with_the_tool_template():
    if vllm_model.tool_weights_missing():
        pytest.skip("no trained weights committed yet (loadtests/tool_model_gpu.sh)")
    path = vllm_model.WEIGHTS_DIR
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (path / "model.safetensors").stat().st_size <= 20 * 2**20
    tok_config = json.loads((path / "tokenizer_config.json").read_text())
    assert "<tool_call>" in tok_config["chat_template"]
    vocab = json.loads((path / "tokenizer.json").read_text())
    assert {"<tool_call>", "</tool_call>"} <= {t["content"] for t in vocab["added_tokens"]}
