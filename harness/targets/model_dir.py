"""The tiny random-weight model directory that `--target vllm` serves.

vLLM runs with ``--load-format dummy``: it reads the architecture from ``config.json`` and fills
the weights with noise, so no weights are ever downloaded or committed. What it still needs is
a tokenizer and a chat template (shared/notes/vllm-on-cpu.md). Both are built here, from data
in this file, so the directory is the same bytes on every machine and is built once per cache:

    config.json             LlamaForCausalLM, hidden 128, 2 layers, 4 heads, 2 kv heads
    tokenizer.json          byte-level BPE trained on CORPUS with the `tokenizers` package
    tokenizer_config.json   special tokens and CHAT_TEMPLATE (ChatML, Hermes tool calls)
    generation_config.json  bos/eos ids
    respcheck-model.json    the fingerprint of everything above; a mismatch rebuilds

Nothing here judges anything: the text the model writes is noise, and the suite only asserts
what the *server* must guarantee (DESIGN.md principle 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MODEL_NAME = "tiny-llama"
# Bump when the files this module writes change in a way the fingerprint would not see
# (e.g. a different tokenizers training recipe).
GENERATOR_VERSION = 1
STAMP_FILE = "respcheck-model.json"

# Llama-style tokens. `<tool_call>`/`</tool_call>` must be single tokens of the vocabulary:
# vLLM's `hermes` tool parser looks them up by id.
BOS, EOS_TEXT, IM_START, IM_END = "<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (BOS, EOS_TEXT, IM_START, IM_END)
TOOL_TOKENS = ("<tool_call>", "</tool_call>")
BPE_VOCAB_SIZE = 512

# The architecture: the smallest Llama vLLM accepted on the CPU (shared notes). The long
# max_position_embeddings lets real clients' prompts (10k+ byte-level tokens) fit.
MODEL_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
}

# ChatML with Hermes-style tools: the tool list in a system turn inside <tools></tools>, the
# assistant's calls as <tool_call>{"name": ..., "arguments": ...}</tool_call>, results as
# <tool_response> in a user turn -- the format `--tool-call-parser hermes` parses. The pieces are
# concatenated Python strings, so no whitespace control is needed: every newline is explicit.
CHAT_TEMPLATE = (
    "{% set ns = namespace(skip_first=false) %}"
    "{% if tools %}"
    "<|im_start|>system\n"
    "{% if messages and messages[0].role == 'system' %}{{ messages[0].content }}\n"
    "{% set ns.skip_first = true %}{% endif %}"
    "You may call functions. Their signatures are inside <tools></tools>:\n<tools>"
    "{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n"
    "To call one, reply with <tool_call>{\"name\": NAME, \"arguments\": ARGUMENTS}</tool_call>"
    "<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if loop.first and ns.skip_first %}"
    "{% elif message.role == 'assistant' and message.tool_calls %}"
    "<|im_start|>assistant\n{% if message.content %}{{ message.content }}\n{% endif %}"
    "{% for call in message.tool_calls %}"
    "{% set fn = call.function if call.function is defined else call %}"
    "<tool_call>{\"name\": {{ fn.name | tojson }}, \"arguments\": "
    "{% if fn.arguments is string %}{{ fn.arguments }}{% else %}{{ fn.arguments | tojson }}"
    "{% endif %}}</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% elif message.role == 'tool' %}"
    "<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n"
    "{% else %}"
    "<|im_start|>{{ message.role }}\n{{ message.content if message.content is not none else '' }}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Training text for the BPE merges: English, JSON, code-ish punctuation, the chat markup.
# Any text works (the weights are random); it only has to be fixed.
CORPUS = (
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "Say hello. Write a short story about a lighthouse keeper and the sea at night.",
    "What is the weather in Paris today? It is sunny, 21 degrees, with a light breeze.",
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
    '{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}',
    '[1, 2, 3, true, false, null, -0.5, 1e10, "a\\"b", {"k": []}]',
    "def add(a, b):\n    return a + b\n\nclass Point:\n    x: int = 0\n    y: int = 0\n",
    "<tool_call>{\"name\": \"lookup\", \"arguments\": {\"q\": \"responses api\"}}</tool_call>",
    "<tools>\n</tools>\n<tool_response>\n{\"temperature\": 21}\n</tool_response>",
    "user assistant system developer tool function call output message content text",
    "0123456789 +-*/=<>()[]{}.,;:!?'\"`~@#$%^&|\\_ \t\n",
    "Streaming events arrive in order: created, in_progress, deltas, done, completed.",
)


def cache_root() -> Path:
    """``$RESPCHECK_CACHE`` or ``~/.cache/respcheck``."""
    env = os.environ.get("RESPCHECK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "respcheck"


def _train_tokenizer():
    try:  # deferred: tokenizers is optional (the `vllm` extra) and only this step needs it
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        raise ModuleNotFoundError(
            "the `tokenizers` package is needed to build the tiny model: "
            "pip install -e '.[vllm]'") from None
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE, min_frequency=1, show_progress=False,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(CORPUS) * 4, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    return tok


def _files() -> dict[str, bytes]:
    """Every file of the model directory, as bytes (deterministic)."""
    tok = _train_tokenizer()
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    vocab = tok.get_vocab_size(with_added_tokens=True)
    config = dict(MODEL_CONFIG, vocab_size=vocab, bos_token_id=ids[BOS],
                  eos_token_id=ids[IM_END], pad_token_id=ids[EOS_TEXT])
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": IM_END, "pad_token": EOS_TEXT, "unk_token": None,
        "add_bos_token": False, "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL_CONFIG["max_position_embeddings"],
        "chat_template": CHAT_TEMPLATE,
    }
    generation = {"bos_token_id": ids[BOS], "eos_token_id": [ids[IM_END], ids[EOS_TEXT]],
                  "pad_token_id": ids[EOS_TEXT]}

    def dump(obj) -> bytes:
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

    files = {
        "config.json": dump(config),
        "tokenizer.json": tok.to_str(pretty=True).encode() + b"\n",
        "tokenizer_config.json": dump(tok_config),
        "special_tokens_map.json": dump({"bos_token": BOS, "eos_token": IM_END,
                                         "pad_token": EOS_TEXT}),
        "generation_config.json": dump(generation),
    }
    digest = hashlib.sha256(str(GENERATOR_VERSION).encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    files[STAMP_FILE] = dump({"generator_version": GENERATOR_VERSION,
                              "fingerprint": digest.hexdigest()})
    return files


def ensure_model_dir(cache: Path | None = None) -> Path:
    """The model directory under ``cache`` (default :func:`cache_root`)/models, built if it is
    missing or was built by a different generator. Safe against concurrent builders: files are
    written to a temporary sibling and renamed into place."""
    dest = (cache or cache_root()) / "models" / MODEL_NAME
    files = _files()
    stamp = dest / STAMP_FILE
    if stamp.is_file() and stamp.read_bytes() == files[STAMP_FILE] and all(
            (dest / n).is_file() for n in files):
        return dest
    return publish_dir(dest, files)


def publish_dir(dest: Path, files: dict[str, bytes], *, stamp_file: str = STAMP_FILE) -> Path:
    """Write ``files`` as the directory ``dest``, safely against concurrent builders: into a
    temporary sibling first, then renamed into place (a loser of the race with the same bytes
    keeps the winner's directory: it is the one with ``stamp_file``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:  # another builder won the race with the same bytes
            if not (dest / stamp_file).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
