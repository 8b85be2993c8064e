"""Serving our envs to other frameworks: an OpenEnv server (``deepresearch serve-env``).

Needs the ``openenv`` extra (``openenv-core``); nothing here is imported by ``deepresearch.envs``.
"""
