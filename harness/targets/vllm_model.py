"""Which model a spawned vLLM serves (`--target vllm`, `reference+vllm`, `respcheck serve
--spawn-vllm tool|tiny`).

    tool   the trained tool-following model under harness/targets/tool_model/weights/ (real
           weights; it calls offered functions with schema-valid arguments and answers after a
           tool result, so tool scenarios judge vLLM). Its weights come from
           loadtests/tool_model_gpu.sh (the GPU machine) and are committed there (<= 20 MB).
    tiny   the random-weight tiny Llama of model_dir.py (``--load-format dummy``: noise)
    PATH   any model directory, served with its own weights

Chosen by ``$RESPCHECK_VLLM_MODEL``; unset: ``tool`` when its weights are there, else ``tiny``
(so a checkout without trained weights still runs, as before). Both built-in models are served under the
name ``tiny`` with the same flags, so reports stay comparable; only ``--load-format dummy``
differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.targets.model_dir import ensure_model_dir

ENV = "RESPCHECK_VLLM_MODEL"
TOOL, TINY = "tool", "tiny"
WEIGHTS_DIR = Path(__file__).parent / "tool_model" / "weights"
WEIGHT_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
DUMMY_ARGS = ("--load-format", "dummy")


class ModelChoiceError(Exception):
    """The chosen model cannot be served; the message says what to do."""


def tool_weights_missing() -> list[str]:
    return [n for n in WEIGHT_FILES if not (WEIGHTS_DIR / n).is_file()]


def default() -> str:
    """``tool`` when its weights are committed, else ``tiny``."""
    return TINY if tool_weights_missing() else TOOL


@dataclass(frozen=True)
class VllmModel:
    path: Path
    args: tuple[str, ...]   # flags that depend on the model (DUMMY_ARGS for random weights)
    label: str              # for progress lines: "tool-following model", ...


def choose(choice: str | None = None) -> VllmModel:
    """The model for ``choice`` (default ``$RESPCHECK_VLLM_MODEL``, then :func:`default`).

    Raises ModelChoiceError (missing weights or directory), ModuleNotFoundError (tokenizers
    missing for ``tiny``), OSError (the cache is not writable for ``tiny``)."""
    choice = choice or os.environ.get(ENV) or default()
    if choice == TINY:
        return VllmModel(ensure_model_dir(), DUMMY_ARGS, "tiny random-weight model")
    if choice == TOOL:
        missing = tool_weights_missing()
        if missing:
            raise ModelChoiceError(
                f"the tool-following model is incomplete ({', '.join(missing)} missing in {WEIGHTS_DIR}): "
                f"train it (bash loadtests/tool_model_gpu.sh) and copy it there, or set {ENV}=tiny")
        return VllmModel(WEIGHTS_DIR, (), "tool-following model")
    path = Path(choice).expanduser()
    if not (path / "config.json").is_file():
        raise ModelChoiceError(f"{ENV}={choice}: not 'tool', 'tiny' or a model directory with a config.json")
    return VllmModel(path, (), f"model {path}")
