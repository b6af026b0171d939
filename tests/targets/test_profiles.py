"""specs/targets.yaml and `respcheck targets`; target names the CLI refuses (exit 2, one line)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.targets import target
from harness.faces.cli import main
from harness.run.scenario import load_scenarios
from harness.targets.target import (KINDS, NEEDS_FIELDS, PROFILE_FIELDS, TargetError, load_profiles,
                                    open_target)

SPAWNED_OR_EXTERNAL = ["lmdeploy", "sglang", "ollama", "llama.cpp", "transformers-serve",
                       "litellm", "vllm-responses"]


def test_every_profile_has_its_fields():
    profiles = load_profiles()
    assert {"url", "reference", "vllm", *SPAWNED_OR_EXTERNAL} <= set(profiles)
    features = {s.feature for s in load_scenarios()}
    for p in profiles.values():
        d = p.to_dict()
        assert set(d) == set(PROFILE_FIELDS), p.name
        assert set(d["needs"]) == set(NEEDS_FIELDS), p.name
        assert p.kind in KINDS and p.description, p.name
        # documented-unsupported features are suite features, so a run can expect `unsupported`
        assert set(p.unsupported) <= features, p.name
        if p.kind == "external":
            assert p.default_url.startswith("http://127.0.0.1:") and p.default_url.endswith("/v1")
            assert p.default_url.endswith(f":{p.default_port}/v1"), p.name
            assert p.start and p.needs.install, p.name


def test_external_default_ports_are_the_documented_ones():
    ports = {n: p.default_port for n, p in load_profiles().items()}
    assert ports["lmdeploy"] == 23333 and ports["sglang"] == 30000
    assert ports["ollama"] == 11434 and ports["llama.cpp"] == 8080
    assert ports["transformers-serve"] == 8000 and ports["litellm"] == 4000


def test_targets_lists_every_profile(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.split("\n\n")[0].splitlines()
    assert header.split() == ["NAME", "KIND", "DEFAULT", "URL", "INSTALLED", "UNSUPPORTED"]
    assert [r.split()[0] for r in rows] == list(load_profiles())
    assert "lmdeploy serve api_server MODEL --server-port 23333" in out
    assert "scripts/install-vllm.sh" in out
    assert "reference+UPSTREAM" in out


def test_targets_json(capsys):
    assert main(["targets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["ollama"]["unsupported"] == ["state", "background"]
    assert by_name["reference"]["installed"] is None
    assert all(r["installed"] in (True, False, None) for r in rows)


@pytest.mark.parametrize("spec", ["nosuch", "url", "reference+", "reference+reference",
                                  "reference+nosuch"])
def test_unknown_target_is_exit_2_one_line(spec, capsys, tmp_path):
    assert main(["run", "--target", spec, "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("respcheck: error: ")
    assert "respcheck targets" in err or "reference+URL" in err


def test_external_profile_not_running_says_what_to_start(monkeypatch, closed_port, capsys,
                                                         tmp_path):
    lmdeploy = load_profiles()["lmdeploy"]
    moved = dataclasses.replace(lmdeploy, default_url=f"http://127.0.0.1:{closed_port}/v1")
    monkeypatch.setattr(target, "load_profiles", lambda: {**load_profiles(), "lmdeploy": moved})
    assert main(["run", "--target", "lmdeploy", "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"lmdeploy: nothing answers at http://127.0.0.1:{closed_port}/v1" in err
    assert "start it with `lmdeploy serve api_server MODEL --server-port 23333`" in err


def test_vllm_not_installed_is_exit_2_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RESPCHECK_VLLM_PYTHON", str(tmp_path / "no-venv" / "bin" / "python"))
    assert main(["run", "--target", "vllm", "--report-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "respcheck: error: vllm is not installed: run scripts/install-vllm.sh\n")
    assert target.is_installed(load_profiles()["vllm"]) is False


def test_start_timeout_from_env(monkeypatch):
    monkeypatch.setenv("RESPCHECK_START_TIMEOUT", "12.5")
    assert target.resolve_start_timeout(None) == 12.5
    assert target.resolve_start_timeout(3) == 3
    monkeypatch.setenv("RESPCHECK_START_TIMEOUT", "soon")
    with pytest.raises(TargetError, match="RESPCHECK_START_TIMEOUT"):
        target.resolve_start_timeout(None)


def test_reference_in_front_of_a_url():
    """reference+URL: the gateway over any chat-completions server (here the mock upstream)."""
    import httpx

    from harness.run.client import get_models
    from reference_gateway.launch import start_mock_upstream

    with start_mock_upstream() as upstream:
        with open_target(f"reference+{upstream.base_url}", preflight=get_models) as target:
            assert target.name == f"reference+127.0.0.1:{upstream.port}"
            assert target.model == "mock-1"
            assert target.base_url != upstream.base_url
            r = httpx.post(target.base_url + "/responses", timeout=10, trust_env=False,
                           json={"model": target.model, "input": "hi", "max_output_tokens": 16})
            assert r.status_code == 200 and r.json()["object"] == "response"
        with pytest.raises(httpx.HTTPError):  # the gateway is gone, the upstream is not
            httpx.get(target.base_url + "/models", timeout=2, trust_env=False)
        assert httpx.get(upstream.base_url + "/models", timeout=2, trust_env=False).status_code == 200
