"""Regenerate examples/sample_requests.jsonl: the demo's input, in Anthropic's batch-file shape."""

from __future__ import annotations

import json
import random
from pathlib import Path

TENANTS = {
    "doc-extract": ("Extract the invoice number, date and total from this document: {}", "claude-haiku-4-5"),
    "enrich": ("Write a one-sentence description of the product '{}' for a catalogue.", "claude-sonnet-4-6"),
    "evals": ("Grade this answer from 1 to 5 and explain briefly: {}", "claude-haiku-4-5"),
}
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
]


def main(n: int = 3000, seed: int = 1) -> None:
    rng = random.Random(seed)
    out = Path(__file__).with_name("sample_requests.jsonl")
    with out.open("w") as f:
        for i in range(n):
            tenant = list(TENANTS)[i % len(TENANTS)]
            template, model = TENANTS[tenant]
            text = template.format(" ".join(rng.choices(WORDS, k=rng.randint(5, 40))))
            if i % 250 == 7:  # a few the provider will refuse, so the demo shows an errored outcome
                text += " [[emulator:error=invalid_request_error]]"
            params = {
                "model": model,
                "max_tokens": rng.choice([64, 128, 256]),
                "messages": [{"role": "user", "content": text}],
            }
            line = {
                "custom_id": f"{tenant}-{i:05d}",
                "params": params,
                "tenant": tenant,
                "reply_to": f"redis-stream:batchline-demo:{tenant}",
            }
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
