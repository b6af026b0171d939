"""The servers the harness spawns besides vLLM (harness/targets/spawned.py), the pool that starts
each once per run (pool.py), and the weights written for servers without a dummy-weights mode
(model_weights.py). Real servers are exercised by tests/targets/test_servers_real.py when
their install scripts have run; here, fakes and the files themselves."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import pytest

from harness.faces.cli import main
from harness.targets import spawned, target
from harness.targets.model_dir import ensure_model_dir
from harness.targets.model_weights import (
    ensure_weights_dir,
    safetensors_bytes,
    tensor_shapes,
)
from harness.targets.pool import ServerPool, Upstream
from harness.targets.spawn import SpawnedServer, free_port
from harness.targets.target import load_profiles


# -- pool -----------------------------------------------------------------------------------
def test_pool_starts_each_server_once_and_stops_them_in_reverse_order():
    events = []

    def server(name):
        @contextlib.contextmanager
        def cm():
            events.append(f"start {name}")
            yield name.upper()
            events.append(f"stop {name}")
        return cm

    with ServerPool() as pool:
        assert pool.get("a", server("a")) == "A"
        assert pool.get("b", server("b")) == "B"
        assert pool.get("a", server("a")) == "A"  # not started again
        assert pool.started() == ["a", "b"]
    assert events == ["start a", "start b", "stop b", "stop a"]


def test_pool_remembers_a_failed_start():
    calls = []

    @contextlib.contextmanager
    def broken():
        calls.append(1)
        raise RuntimeError("cannot start")
        yield  # pragma: no cover

    with ServerPool() as pool:
        for _ in range(3):
            with pytest.raises(RuntimeError, match="cannot start"):
                pool.get("x", broken)
    assert calls == [1]


# -- profiles -------------------------------------------------------------------------------
def test_spawned_profiles_each_have_a_launcher_an_install_script_and_a_source():
    profiles = load_profiles()
    names = [n for n, p in profiles.items() if p.kind == "spawned"]
    assert sorted(names) == sorted(spawned.SPAWNED)
    for name in names:
        p = profiles[name]
        assert p.needs.install == spawned.install_script(name)
        assert (target.Path(__file__).parents[2] / p.needs.install).is_file(), name
        assert p.source and p.default_url is None, name


def test_lmdeploy_profile_is_its_documented_subset():
    """../shared/seeds/004_*.txt: POST /v1/responses exists; previous_response_id and background
    are not supported; hosted tools are accepted and ignored."""
    p = load_profiles()["lmdeploy"]
    assert p.responses_api is True
    assert {"state", "background", "web_search", "mcp", "code_interpreter"} <= set(p.unsupported)
    assert "tools" not in p.unsupported and "streaming" not in p.unsupported
    assert "004_69135ba3068773de.txt" in p.source


@pytest.mark.parametrize("name", spawned.SPAWNED)
def test_not_installed_is_exit_2_one_line_naming_the_script(name, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(spawned, "is_installed", lambda _n: False)
    assert main(["run", "--target", name, "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"respcheck: error: {name} is not installed: "
                   f"run {spawned.install_script(name)}\n")


# -- one server for every target of a run ----------------------------------------------------
def test_one_spawned_server_serves_every_target_of_the_run(monkeypatch, tmp_path, capsys):
    """`--target litellm --target reference+litellm` starts the (here: fake) server once: the
    same log, one start line, and the composite target fronts that very server."""
    from reference_gateway.launch import start_mock_upstream

    starts = []

    @contextlib.contextmanager
    def fake_spawn(name, *, pool, start_timeout_s, notify):
        starts.append(name)
        with start_mock_upstream() as mock:  # a chat-completions server standing in for it
            yield Upstream(name, mock.base_url, "mock-1")

    monkeypatch.setattr(spawned, "spawn_server", fake_spawn)
    report = tmp_path / "r"
    code = main(["run", "--target", "litellm", "--target", "reference+litellm",
                 "--only", "core", "--report-dir", str(report)])
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    assert starts == ["litellm"]
    a = json.loads((report / "litellm" / "summary.json").read_text())
    b = json.loads((report / "reference_litellm" / "summary.json").read_text())
    assert a["target"]["name"] == "litellm" and b["target"]["name"] == "reference+litellm"


def test_spawned_server_is_started_logged_and_stopped(monkeypatch, tmp_path, fake_server_argv):
    """spawn_server: argv from the launcher, config files written into the log folder, ready
    when the ready path answers 200, stopped when the pool closes."""
    port = free_port()
    monkeypatch.setattr(spawned, "is_installed", lambda _n: True)
    monkeypatch.setattr(spawned, "free_port", lambda: port)
    monkeypatch.setattr(spawned, "_launch", lambda name, p, up: spawned.Launch(
        fake_server_argv(p, "ok") + ["{conf.txt}"], "/v1/models", "m", files={"conf.txt": "x"}))
    seen = {}
    real_start = SpawnedServer.start

    def spy(self):
        seen["argv"] = self.argv
        seen["server"] = self
        return real_start(self)

    monkeypatch.setattr(SpawnedServer, "start", spy)
    # a relative --report-dir: the server runs in it, so its config is named by absolute path
    monkeypatch.chdir(tmp_path)
    with ServerPool(log_dir=Path("logs")) as pool:
        up = pool.get("transformers-serve", lambda: spawned.spawn_server(
            "transformers-serve", pool=pool, start_timeout_s=20, notify=lambda _m: None))
        assert up.base_url == f"http://127.0.0.1:{port}/v1" and up.model == "m"
        assert seen["argv"][-1] == str(tmp_path / "logs" / "conf.txt")
        assert seen["server"].cwd == tmp_path / "logs"
        assert (tmp_path / "logs" / "conf.txt").read_text() == "x"
        assert (tmp_path / "logs" / "transformers-serve.log").stat().st_size > 0
    assert seen["server"].process.poll() is not None


# -- weights ---------------------------------------------------------------------------------
def _read_safetensors(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def test_safetensors_has_every_llama_tensor_with_its_shape_and_is_deterministic():
    config = {"hidden_size": 8, "intermediate_size": 16, "vocab_size": 10,
              "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
              "num_hidden_layers": 2, "tie_word_embeddings": False}
    data = safetensors_bytes(config)
    assert data == safetensors_bytes(config) and data != safetensors_bytes(config, seed=1)
    header, body = _read_safetensors(data)
    assert (8 + struct.unpack("<Q", data[:8])[0]) % 8 == 0  # data 8-byte aligned
    shapes = tensor_shapes(config)
    assert set(header) - {"__metadata__"} == set(shapes)
    assert header["model.layers.1.self_attn.k_proj.weight"]["shape"] == [4, 8]
    end = 0
    for name, shape in shapes.items():
        meta = header[name]
        assert meta["dtype"] == "F32" and tuple(meta["shape"]) == shape
        start, stop = meta["data_offsets"]
        n = 1
        for d in shape:
            n *= d
        assert stop - start == 4 * n and start == end
        end = stop
        values = struct.unpack(f"<{n}f", body[start:stop])
        if name.endswith("norm.weight"):
            assert set(values) == {1.0}
        else:
            assert max(abs(v) for v in values) < 0.2 and len(set(values)) > n // 2
    assert end == len(body)


def test_weights_dir_is_built_once_and_rebuilt_when_the_model_changes(cache_dir):
    pytest.importorskip("tokenizers")
    model = ensure_model_dir()
    weights = ensure_weights_dir(model)
    assert weights.name == model.name + "-weights"
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        assert (weights / f).is_file(), f
    mtime = (weights / "model.safetensors").stat().st_mtime_ns
    assert ensure_weights_dir(model) == weights
    assert (weights / "model.safetensors").stat().st_mtime_ns == mtime  # reused
    (model / "respcheck-model.json").write_text('{"changed": true}\n')
    ensure_weights_dir(model)
    assert (weights / "model.safetensors").stat().st_mtime_ns != mtime  # rebuilt
    # a model directory with weights of its own is served as it is
    (model / "model.safetensors").write_bytes(b"trained")
    assert ensure_weights_dir(model) == model
