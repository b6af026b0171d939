"""Train the tool-following model and write its model directory.

    python -m harness.targets.tool_model.train OUT_DIR [--device cuda] [--steps 3000] ...

Needs torch, transformers, tokenizers and jinja2 (the GPU machine has them; here: .venv-vllm).
Everything is seeded: data (conversations.generate), the tokenizer (trained on a fixed corpus),
the initial weights (torch.manual_seed). Loss is on the assistant's last turn only (the target and
its ``<|im_end|>``); the prompt is context. Weights are saved as bfloat16 safetensors (vLLM serves
bfloat16 on the CPU), with the tokenizer files and the chat template beside them.

The weights committed under weights/ came from the GPU machine (reports/tool-model.md says
with which command and what check.py measured).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

from harness.targets.model_dir import IM_END
from harness.targets.tool_model.chat import render
from harness.targets.tool_model.conversations import generate
from harness.targets.tool_model.tokenizer import side_files, train_tokenizer

MODEL_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 32,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
}


def encode(tok, examples, max_len: int):
    """(ids, n_prompt) per example; examples longer than max_len are dropped."""
    prompts = [render(e.messages, e.tools) for e in examples]
    p_enc = tok.encode_batch(prompts)
    f_enc = tok.encode_batch([p + e.target + IM_END for p, e in zip(prompts, examples)])
    out = []
    for p, f in zip(p_enc, f_enc):
        ids = f.ids
        # the prompt is a prefix token-wise too (it ends in "assistant\n", a merge boundary)
        if ids[:len(p.ids)] != p.ids or len(ids) > max_len:
            continue
        out.append((ids, len(p.ids)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--examples", type=int, default=60000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=MODEL_CONFIG["hidden_size"])
    ap.add_argument("--layers", type=int, default=MODEL_CONFIG["num_hidden_layers"])
    ap.add_argument("--intermediate", type=int, default=MODEL_CONFIG["intermediate_size"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bucket", action="store_true",
                    help="draw each batch from neighbours in length order (less padding: the CPU run's choice)")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="seconds of training: the schedule runs to whichever of --steps and this comes first (0: steps only)")
    args = ap.parse_args(argv)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    t0 = time.monotonic()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tok = train_tokenizer()
    config = dict(MODEL_CONFIG, hidden_size=args.hidden, num_hidden_layers=args.layers,
                  intermediate_size=args.intermediate)
    files = side_files(tok, config)
    data = encode(tok, generate(args.examples, args.seed, "train"), args.max_len)
    print(f"{len(data)} examples encoded in {time.monotonic() - t0:.1f} s", flush=True)

    cfg = LlamaConfig(**{k: v for k, v in json.loads(files["config.json"]).items()
                         if k not in ("architectures", "torch_dtype", "model_type")})
    device = torch.device(args.device)
    model = LlamaForCausalLM(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f} M parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    pad = json.loads(files["config.json"])["pad_token_id"]
    warmup = max(1, args.steps // 20)
    rng = random.Random(args.seed)
    if args.bucket:
        data.sort(key=lambda d: len(d[0]))
    autocast = device.type == "cuda"
    model.train()
    step, t_train = 0, time.monotonic()
    for step in range(1, args.steps + 1):
        progress = step / args.steps
        if args.time_budget:
            progress = max(progress, (time.monotonic() - t_train) / args.time_budget)
        lr = args.lr * min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        if args.bucket:
            start = rng.randrange(len(data) - args.batch + 1)
            batch = data[start:start + args.batch]
        else:
            batch = rng.sample(data, args.batch)
        width = max(len(ids) for ids, _ in batch)
        x = torch.full((len(batch), width), pad, dtype=torch.long)
        y = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, n_prompt) in enumerate(batch):
            x[i, :len(ids)] = torch.tensor(ids)
            y[i, n_prompt:len(ids)] = torch.tensor(ids[n_prompt:])
            mask[i, :len(ids)] = 1
        x, y, mask = x.to(device), y.to(device), mask.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=x, attention_mask=mask, labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {time.monotonic() - t0:.0f} s", flush=True)
        if progress >= 1.0:
            print(f"schedule done at step {step}", flush=True)
            break

    args.out.mkdir(parents=True, exist_ok=True)
    model = model.to(torch.bfloat16).cpu()
    model.save_pretrained(args.out, safe_serialization=True)
    for name, data_ in files.items():   # ours replace what save_pretrained wrote
        (args.out / name).write_bytes(data_)
    (args.out / "training.json").write_text(json.dumps({
        "steps": step, "batch": args.batch, "examples": args.examples, "lr": args.lr,
        "seed": args.seed, "parameters": n_params, "final_loss": round(loss.item(), 5),
        "device": args.device, "seconds": round(time.monotonic() - t0, 1)}, indent=2) + "\n")
    print(f"saved to {args.out} after {time.monotonic() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
