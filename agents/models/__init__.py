"""Policies: loading a checkpoint for training (LoRA, weight export for engines), GGUF
files converted once into cached Hugging Face folders, and the tiny offline model built
locally for tests and the demo."""
