"""Gymnasium's own vectorisation of our envs, with its default arguments.

``gym.make_vec(..., vectorization_mode="async")`` passes observations through shared
memory unless told otherwise; Gymnasium's ``Text`` encoding there returned ``"0000…"``
for every observation of ours. Each vector run here is compared, observation for
observation, with single envs stepped by hand under Gymnasium's autoreset rules.
"""

from __future__ import annotations

import copy
import multiprocessing

import gymnasium as gym
import pytest
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs.spaces import UnicodeText

ENV_ID = "DeepResearch-Wiki-v0"
SEED = 11
NUM_ENVS = 2


def scripted_actions() -> list[tuple[str, ...]]:
    """Per step, one action per env: env 1 ends at step 1, env 0 at step 2."""
    protocol = gym.make(ENV_ID).unwrapped.protocol
    return [
        (protocol.search_action("Velmora Quistad"), protocol.answer_action("Tarsenby")),
        (protocol.answer_action("Tarsenby"), protocol.search_action("Tarsenby")),
        (protocol.search_action("born"), protocol.answer_action("nowhere")),
    ]


def by_hand(index: int, actions: list[tuple[str, ...]], mode: AutoresetMode) -> list[dict]:
    """Env ``index`` of the vector, stepped alone: what each vector call must report for it."""
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=SEED + index)  # the vector env seeds env i with seed + i
    records = [{"obs": obs, "reward": 0.0, "terminated": False, "truncated": False, "final_obs": None}]
    reset_due = False
    for step in actions:
        if reset_due:  # next-step autoreset: this call resets the env and ignores its action
            obs, _ = env.reset()
            records.append({"obs": obs, "reward": 0.0, "terminated": False, "truncated": False, "final_obs": None})
            reset_due = False
            continue
        obs, reward, terminated, truncated, _ = env.step(step[index])
        record = {"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "final_obs": None}
        if terminated or truncated:
            if mode == AutoresetMode.SAME_STEP:
                record["final_obs"], (record["obs"], _) = obs, env.reset()
            else:
                reset_due = True
        records.append(record)
    env.close()
    return records


@pytest.mark.parametrize("autoreset_mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=["next_step", "same_step"])
@pytest.mark.parametrize("vectorization_mode", ["sync", "async"])
def test_make_vec_with_gymnasiums_defaults_returns_the_exact_observations(vectorization_mode, autoreset_mode):
    actions = scripted_actions()
    expected = [by_hand(index, actions, autoreset_mode) for index in range(NUM_ENVS)]
    # Gymnasium's defaults (shared memory on in async mode); the autoreset mode is the only argument.
    vector_kwargs = None if autoreset_mode == AutoresetMode.NEXT_STEP else {"autoreset_mode": autoreset_mode}
    vec = gym.make_vec(ENV_ID, num_envs=NUM_ENVS, vectorization_mode=vectorization_mode, vector_kwargs=vector_kwargs)
    try:
        obs, _ = vec.reset(seed=SEED)
        assert tuple(obs) == tuple(expected[i][0]["obs"] for i in range(NUM_ENVS))
        for call, step in enumerate(actions, start=1):
            obs, rewards, terminated, truncated, infos = vec.step(step)
            for i in range(NUM_ENVS):
                want = expected[i][call]
                assert obs[i] == want["obs"], f"call {call}, env {i}"
                assert (rewards[i], terminated[i], truncated[i]) == (want["reward"], want["terminated"], want["truncated"])
                if want["final_obs"] is not None:
                    assert infos["final_obs"][i] == want["final_obs"]
        assert any(r["final_obs"] is not None for e in expected for r in e) == (autoreset_mode == AutoresetMode.SAME_STEP)
    finally:
        vec.close()


class EchoEnv(gym.Env):
    """Observes the action it was given: any Unicode text through the vector env."""

    observation_space = UnicodeText(64)
    action_space = UnicodeText(64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "", {}

    def step(self, action):
        return action, 0.0, False, False, {}


def test_unicode_text_survives_async_shared_memory_and_copies_are_snapshots():
    texts = ("Estádio do Maracanã, 1817–1825 €", "<search> 東京 </search>")
    vec = AsyncVectorEnv([EchoEnv] * NUM_ENVS, copy=False)  # copy=False: the live view itself
    try:
        vec.reset(seed=0)
        live, *_ = vec.step(texts)
        snapshot = copy.deepcopy(live)
        assert tuple(live) == texts and snapshot == texts and isinstance(snapshot, tuple)
        vec.step(("ß", ""))
        assert tuple(live) == ("ß", "") and snapshot == texts
    finally:
        vec.close()


def test_an_observation_larger_than_its_shared_memory_slot_names_the_way_out():
    space = UnicodeText(100, shared_memory_bytes=8)
    memory = create_shared_memory(space, n=2, ctx=multiprocessing)
    write_to_shared_memory(space, 1, "€€", memory)  # 6 bytes fit
    assert tuple(read_from_shared_memory(space, memory, n=2)) == ("", "€€")
    with pytest.raises(ValueError, match=r"9-byte observation does not fit the 8-byte shared-memory slot.*'shared_memory': False"):
        write_to_shared_memory(space, 0, "€€€", memory)
    assert UnicodeText(10).shared_memory_bytes == 40 and UnicodeText(10_000_000).shared_memory_bytes == 1 << 20
