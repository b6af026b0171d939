"""The tool model's tokenizer and the non-weight files of its model directory.

A byte-level BPE (any text encodes; nothing is ever unknown) trained with the `tokenizers` package
on the rendered synthetic conversations, so tool JSON, the chat markup and the request words are
a few tokens each. The special tokens are the tiny random model's (model_dir.py): ChatML markers,
with ``<tool_call>``/``</tool_call>`` as single non-special tokens -- vLLM's ``hermes`` tool
parser looks them up by id and needs them in the decoded text.
"""

from __future__ import annotations

import json
import re

from harness.targets.model_dir import (
    BOS,
    CHAT_TEMPLATE,
    EOS_TEXT,
    IM_END,
    IM_START,
    SPECIAL_TOKENS,
    TOOL_TOKENS,
)
from harness.targets.tool_model.chat import render
from harness.targets.tool_model.conversations import generate

# How the model's answers are read back, declared for `transformers serve`: it parses tool calls
# only with a tokenizer's ``response_template`` (transformers' declarative parser,
# ``tokenizer.parse_response``) or a built-in one for a few model types (Qwen's), none for
# ``llama``; without it a ``<tool_call>`` block comes back as message text. vLLM
# (``--tool-call-parser hermes``), LMDeploy and llama.cpp find the format on their own. The
# format is the chat template's: ChatML turns, Hermes ``<tool_call>`` blocks of JSON.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": f"{IM_START}assistant\n",
    "fields": {
        "tool_calls": {
            # leading whitespace belongs to no region: between two calls, or after the text
            "open_pattern": r"\s*<tool_call>",
            "close": "</tool_call>",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {
            "close_pattern": rf"\s*(?:{re.escape(IM_END)}|{re.escape(EOS_TEXT)})",
            "content": "text",
        },
    },
}

VOCAB_SIZE = 2048
CORPUS_EXAMPLES = 4000
CORPUS_SEED = 7


def train_tokenizer(vocab_size: int = VOCAB_SIZE):
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    texts = [render(e.messages, e.tools) + e.target + IM_END + "\n"
             for e in generate(CORPUS_EXAMPLES, CORPUS_SEED, "tokenizer")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=list(SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    return tok


def side_files(tok, model_config: dict) -> dict[str, bytes]:
    """config.json, the tokenizer files and generation_config.json for ``tok`` (bytes)."""
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    config = dict(model_config, vocab_size=tok.get_vocab_size(with_added_tokens=True),
                  bos_token_id=ids[BOS], eos_token_id=ids[IM_END], pad_token_id=ids[EOS_TEXT])
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": IM_END, "pad_token": EOS_TEXT, "unk_token": None,
        "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": model_config["max_position_embeddings"],
        "chat_template": CHAT_TEMPLATE,
        "response_template": RESPONSE_TEMPLATE,
    }
    generation = {"bos_token_id": ids[BOS], "eos_token_id": [ids[IM_END], ids[EOS_TEXT]],
                  "pad_token_id": ids[EOS_TEXT], "do_sample": False,
                  # greedy in vLLM too: it takes temperature (not do_sample) from this file, and
                  # a sampled tool model would make the baselines flaky
                  "temperature": 0.0}

    def dump(obj) -> bytes:
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

    return {
        "config.json": dump(config),
        "tokenizer.json": tok.to_str(pretty=False).encode() + b"\n",
        "tokenizer_config.json": dump(tok_config),
        "special_tokens_map.json": dump({"bos_token": BOS, "eos_token": IM_END, "pad_token": EOS_TEXT}),
        "generation_config.json": dump(generation),
    }
