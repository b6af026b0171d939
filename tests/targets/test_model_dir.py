"""The tiny random-weight model directory for `--target vllm` (harness/targets/model_dir.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tokenizers", reason="the `vllm` extra is not installed: pip install -e '.[vllm]'")

from tokenizers import Tokenizer  # noqa: E402

from harness.targets import model_dir  # noqa: E402

FILES = {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
         "special_tokens_map.json", model_dir.STAMP_FILE}


def _read_all(path):
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_directory_has_config_tokenizer_and_chat_template(cache_dir):
    path = model_dir.ensure_model_dir()
    assert path == cache_dir / "models" / "tiny-llama"
    assert {p.name for p in path.iterdir()} == FILES
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["num_key_value_heads"], config["max_position_embeddings"]) == (128, 2, 4, 2, 32768)
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    assert config["vocab_size"] == tok.get_vocab_size(with_added_tokens=True)
    tok_config = json.loads((path / "tokenizer_config.json").read_text())
    assert "<tool_call>" in tok_config["chat_template"] and "tools" in tok_config["chat_template"]
    generation = json.loads((path / "generation_config.json").read_text())
    assert tok.token_to_id("<|im_end|>") in generation["eos_token_id"]


@pytest.mark.parametrize("text", ["Hello, world!", '{"name": "f", "arguments": {"x": 1}}',
                                  "<tool_call>{}</tool_call>", "é 漢字 🙂\n\ttabs", ""])
def test_tokenizer_round_trips_text(cache_dir, text):
    tok = Tokenizer.from_file(str(model_dir.ensure_model_dir() / "tokenizer.json"))
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text


def test_hermes_tool_tokens_are_single_tokens(cache_dir):
    tok = Tokenizer.from_file(str(model_dir.ensure_model_dir() / "tokenizer.json"))
    for t in model_dir.TOOL_TOKENS + model_dir.SPECIAL_TOKENS:
        assert tok.encode(t).ids == [tok.token_to_id(t)], t


def test_chat_template_renders_tools_and_tool_calls():
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 (what vLLM renders chat templates with) is not installed here")
    text = jinja2.Environment().from_string(model_dir.CHAT_TEMPLATE).render(
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Weather?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "c1", "type": "function",
                       "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "21C"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nBe brief.\n")
    # the signatures sit in the last <tools>...</tools> block (the prose names the tags first)
    assert '"name": "get_weather"' in text.split("<tools>\n")[-1].split("\n</tools>")[0]
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' in text
    assert "<tool_response>\n21C\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_deterministic_across_builds_and_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("RESPCHECK_CACHE", str(tmp_path / "a"))
    first = _read_all(model_dir.ensure_model_dir())
    # a second build, in another process (fresh tokenizers state), into another cache
    code = "from harness.targets.model_dir import ensure_model_dir; print(ensure_model_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "RESPCHECK_CACHE": str(tmp_path / "b")})
    second = _read_all(Path(out.stdout.strip()))
    assert first == second


def test_cached_directory_is_reused_and_a_damaged_one_rebuilt(cache_dir):
    path = model_dir.ensure_model_dir()
    stamp = path / model_dir.STAMP_FILE
    mtime = stamp.stat().st_mtime_ns
    assert model_dir.ensure_model_dir() == path and stamp.stat().st_mtime_ns == mtime
    (path / "tokenizer.json").unlink()
    model_dir.ensure_model_dir()
    assert (path / "tokenizer.json").is_file()
    stamp.write_text("{}")
    model_dir.ensure_model_dir()
    assert json.loads(stamp.read_text())["generator_version"] == model_dir.GENERATOR_VERSION
