"""Build the random-weight GPU model directory: ``python -m loadtests.gpu_model DEST``.

For ``loadtests/gpu_run.sh`` on the lent GPU machine (shared/notes/gpu-machine.md): a
``LlamaForCausalLM`` of 0.76 B parameters (hidden 2048, 16 layers, 32 heads, 8 kv heads,
intermediate 5632) built directly on the GPU in bfloat16 with random weights and saved with
``save_pretrained``, plus the byte-level BPE tokenizer and ChatML chat template of
``harness.targets.model_dir`` (trained with ``tokenizers``, no download). Random weights never stop
early, so every answer is exactly ``max_tokens`` long: a fixed output length for the sweep.
The vocabulary is the tokenizer's own (a few hundred tokens: the embedding never produces an
id the tokenizer cannot decode).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ARCHITECTURE = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 4096,
}


# For a dry run of gpu_run.sh on a CPU (RESPCHECK_GPU_MODEL=small): same files, tiny weights.
SMALL = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 4096}


def build(dest: Path, *, device: str = "cuda", small: bool = False) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.targets import model_dir

    t0 = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    files = model_dir._files()  # tokenizer.json, tokenizer_config.json, ... (deterministic)
    config = json.loads(files["config.json"])
    config.update(SMALL if small else ARCHITECTURE)
    tok_config = json.loads(files["tokenizer_config.json"])
    tok_config["model_max_length"] = ARCHITECTURE["max_position_embeddings"]
    files["tokenizer_config.json"] = (json.dumps(tok_config, indent=2) + "\n").encode()
    for name, data in files.items():
        if name not in ("config.json", model_dir.STAMP_FILE):
            (dest / name).write_bytes(data)
    cfg = LlamaConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type", "torch_dtype")})
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.generation_config.eos_token_id = config["eos_token_id"]
    model.save_pretrained(dest)
    n = sum(p.numel() for p in model.parameters())
    dtype = "bfloat16"
    print(f"model ({dtype}): {n / 1e9:.2f} B parameters, vocab {cfg.vocab_size}, built and saved in "
          f"{time.monotonic() - t0:.1f} s -> {dest}", file=sys.stderr)
    return dest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or len(argv) > 2:
        print("usage: python -m loadtests.gpu_model DEST [cuda|cpu]", file=sys.stderr)
        return 2
    import os

    build(Path(argv[0]), device=argv[1] if len(argv) > 1 else "cuda",
          small=os.environ.get("RESPCHECK_GPU_MODEL") == "small")
    return 0


if __name__ == "__main__":
    sys.exit(main())
