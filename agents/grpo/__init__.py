"""The GRPO update: group-relative advantages, the masked PPO-clip loss, and one
optimizer step over a rollout batch (LM head only at loss positions)."""
