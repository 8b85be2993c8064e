"""Policies: loading a checkpoint for training (LoRA, weight export for engines)
and the tiny offline model built locally for tests and the demo."""
