"""Evaluation: greedy held-out rewards for the trainer, and the resumable harness
behind ``deepresearch eval`` (local models, chat endpoints, recorded transcripts,
LLM judge)."""
