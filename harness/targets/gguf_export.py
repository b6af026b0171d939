"""Write a GGUF of the tiny model for llama.cpp's `llama-server`, with gguf-py.

    .venv-llama-cpp/bin/python harness/targets/gguf_export.py MODEL_DIR OUT.gguf

MODEL_DIR is a Llama model directory with weights (harness/targets/model_weights.py):
``config.json``, ``model.safetensors`` (F32, F16 or BF16; written as float32), ``tokenizer.json`` (byte-level BPE) and
``tokenizer_config.json`` (its chat template). llama.cpp's own converter
(``convert_hf_to_gguf.py``) refuses a BPE tokenizer whose pre-tokenizer hash it does not know,
and needs torch; this does what it does for a Llama, for this tokenizer only: the GPT-2
pre-tokenizer (``tokenizer.ggml.pre = gpt-2``, the byte-level split the tokenizer was trained
with), q/k rows permuted into GGUF's rotary layout (the converter's ``LlamaModel.permute``),
tensors renamed, float32 kept, the chat template carried so ``--jinja`` renders it and finds the
Hermes ``<tool_call>`` format.

Run by the harness in the venv of scripts/install-llama-cpp.sh (gguf, numpy); it imports
nothing from the project, so the project's venv needs neither.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

# gguf token types (gguf.TokenType)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5
LAYER_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def read_safetensors(path: Path):
    import numpy as np

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        data = raw[8 + n + start: 8 + n + end]
        if meta["dtype"] == "F32":
            arr = np.frombuffer(data, dtype="<f4")
        elif meta["dtype"] == "F16":
            arr = np.frombuffer(data, dtype="<f2").astype(np.float32)
        elif meta["dtype"] == "BF16":  # the top half of a float32
            arr = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"gguf_export: {name} is {meta['dtype']}; F32, F16 and BF16 are read")
        out[name] = arr.reshape(meta["shape"])
    return out


def permute(w, n_head: int):
    """HF's q/k rows -> GGUF's rotary layout (convert_hf_to_gguf.py, LlamaModel.permute)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_name(name: str) -> str:
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    _, _, i, rest = name.split(".", 3)
    return f"blk.{i}.{LAYER_NAMES[rest.removesuffix('.weight')]}.weight"


def vocabulary(tokenizer: dict, vocab_size: int):
    """Tokens in id order, their types, and the merges, from a tokenizers BPE tokenizer.json."""
    vocab = dict(tokenizer["model"]["vocab"])
    special = set()
    for added in tokenizer.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special.add(added["content"])
    added_plain = {a["content"] for a in tokenizer.get("added_tokens", [])} - special
    by_id = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        else:
            tokens.append(tok)
            types.append(CONTROL if tok in special else USER_DEFINED if tok in added_plain else NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"].get("merges", [])]
    return tokens, types, merges


def export(model_dir: Path, out: Path) -> None:
    import gguf

    config = json.loads((model_dir / "config.json").read_text())
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens, types, merges = vocabulary(tokenizer, config["vocab_size"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    if config.get("pad_token_id") is not None:
        writer.add_pad_token_id(config["pad_token_id"])
    writer.add_add_bos_token(bool(tok_config.get("add_bos_token", False)))
    writer.add_add_eos_token(bool(tok_config.get("add_eos_token", False)))
    if tok_config.get("chat_template"):
        writer.add_chat_template(tok_config["chat_template"])

    for name, w in read_safetensors(model_dir / "model.safetensors").items():
        if name.endswith("self_attn.q_proj.weight"):
            w = permute(w, heads)
        elif name.endswith("self_attn.k_proj.weight"):
            w = permute(w, kv)
        writer.add_tensor(gguf_name(name), w.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: gguf_export.py MODEL_DIR OUT.gguf", file=sys.stderr)
        return 2
    model_dir, out = Path(argv[0]), Path(argv[1])
    tmp = out.with_name(out.name + ".tmp")
    export(model_dir, tmp)
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
