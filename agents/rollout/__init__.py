"""Rollouts: engines that sample token ids, turn encoding of the env's text, the
multi-turn episode loop, and the padded batch any trainer can consume."""
