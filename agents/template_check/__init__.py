"""``deepresearch check-template``: whether a tokenizer's chat template keeps multi-turn rollouts exact."""
