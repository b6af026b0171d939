"""A tiny model that follows the tool protocol, so tool scenarios against real servers judge
the server rather than random weights (issue 19, part 4).

    conversations.py   the synthetic conversations it learns from and is checked on
    chat.py            the chat template rendered as transformers/vLLM render it
    tokenizer.py       its byte-level BPE tokenizer, trained on the conversations
    train.py           training (CPU or CUDA) and the model directory it writes
    check.py           greedy evaluation on held-out conversations
    weights/           the committed model directory vLLM serves for `--target vllm`
"""
