"""Real weights for the tiny model, for servers that cannot fill them in themselves.

vLLM serves the tiny model with ``--load-format dummy`` (random weights made at load time);
`transformers serve` and llama.cpp's `llama-server` have no such mode: they read weights from
disk. This writes them once, next to the model directory, as ``<name>-weights/``: the same
config, tokenizer and chat template, plus ``model.safetensors`` with deterministic random
weights (a seeded normal, std 0.02, norms at 1.0, as transformers' own init), float32
(~1.7 MB). The safetensors format is written here by hand (an 8-byte header length, a JSON
header, the raw little-endian data) so the project's own venv needs neither torch nor numpy.

A model directory that already has ``model.safetensors`` (trained weights) is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from array import array
from pathlib import Path

from harness.targets.model_dir import publish_dir

WEIGHTS_FILE = "model.safetensors"
STAMP_FILE = "respcheck-model.json"
# Bump when the weights this module writes change.
WEIGHTS_VERSION = 1
SEED = 19
INIT_STD = 0.02


def tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """The tensors of a LlamaForCausalLM with ``config``, in transformers' names."""
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or h // heads
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (heads * head_dim, h),
            p + "self_attn.k_proj.weight": (kv * head_dim, h),
            p + "self_attn.v_proj.weight": (kv * head_dim, h),
            p + "self_attn.o_proj.weight": (h, heads * head_dim),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (inter, h),
            p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        }
    shapes["model.norm.weight"] = (h,)
    if not config.get("tie_word_embeddings"):
        shapes["lm_head.weight"] = (vocab, h)
    return shapes


def safetensors_bytes(config: dict, seed: int = SEED) -> bytes:
    """``model.safetensors`` for ``config``: float32, deterministic for a seed."""
    rng = random.Random(seed)
    header: dict = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, shape in tensor_shapes(config).items():
        n = 1
        for d in shape:
            n *= d
        values = array("f", [1.0] * n) if name.endswith("norm.weight") else \
            array("f", (rng.gauss(0.0, INIT_STD) for _ in range(n)))
        if struct.pack("=f", 1.0) != struct.pack("<f", 1.0):  # big-endian host
            values.byteswap()
        data = values.tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def ensure_weights_dir(model_dir: Path) -> Path:
    """A directory with ``model_dir``'s files and weights: ``model_dir`` itself when it has
    them, else ``<model_dir>-weights`` (built once, rebuilt when the model or this module's
    weights change; written to a temporary sibling and renamed into place)."""
    if (model_dir / WEIGHTS_FILE).is_file():
        return model_dir
    dest = model_dir.with_name(model_dir.name + "-weights")
    source_stamp = (model_dir / STAMP_FILE).read_bytes() if (model_dir / STAMP_FILE).is_file() else b""
    stamp = json.dumps({"weights_version": WEIGHTS_VERSION, "seed": SEED,
                        "model": hashlib.sha256(source_stamp).hexdigest()}, sort_keys=True) + "\n"
    if (dest / STAMP_FILE).is_file() and (dest / STAMP_FILE).read_text() == stamp \
            and (dest / WEIGHTS_FILE).is_file():
        return dest
    config = json.loads((model_dir / "config.json").read_text())
    files = {f.name: f.read_bytes() for f in model_dir.iterdir() if f.is_file() and f.name != STAMP_FILE}
    files[WEIGHTS_FILE] = safetensors_bytes(config)
    files[STAMP_FILE] = stamp.encode()
    return publish_dir(dest, files, stamp_file=STAMP_FILE)
