"""run_episode drives any gymnasium env with obs["pixels"] and info["is_success"]: it stops at
the first success or at the env's end of episode, and sums the env's rewards."""

import numpy as np
import pytest

from care.evaluation.rollout import run_episode, run_episodes


class _Env:
    """Success after `success_at` steps (never when None); truncated at `limit` steps."""

    env_name = "toy"

    def __init__(self, success_at=None, limit=100):
        self.success_at, self.limit = success_at, limit

    def reset(self, *, seed=None, options=None):
        self.t, self.seed = 0, seed
        return {"pixels": np.full((4, 4, 3), self.t, np.uint8)}, {"is_success": False}

    def step(self, action):
        self.t += 1
        success = self.success_at is not None and self.t >= self.success_at
        obs = {"pixels": np.full((4, 4, 3), self.t, np.uint8)}
        return obs, 0.5 * self.t, False, self.t >= self.limit, {"is_success": success}


class _Policy:
    def __init__(self):
        self.seen = []

    def reset(self):
        self.seen.clear()

    def select_action(self, image, instruction, state=None):
        self.seen.append(int(image[0, 0, 0]))
        return np.zeros(4, np.float32)


def test_stops_at_success_and_sums_rewards():
    env, policy = _Env(success_at=3), _Policy()
    r = run_episode(env, policy, "do it", seed=7, max_steps=10, record=True)
    assert (r.success, r.length, r.sum_reward, r.seed, r.task) == (True, 3, 0.5 + 1.0 + 1.5, 7, "toy")
    assert env.seed == 7 and policy.seen == [0, 1, 2]  # the policy sees each new frame
    assert [int(f[0, 0, 0]) for f in r.frames] == [0, 1, 2, 3]
    assert r.to_dict()["sum_reward"] == 3.0


def test_stops_at_the_step_limit_or_the_env_truncation():
    r = run_episode(_Env(), _Policy(), "x", seed=0, max_steps=4)
    assert (r.success, r.length, r.sum_reward, r.frames) == (False, 4, 0.5 * (1 + 2 + 3 + 4), [])
    r = run_episode(_Env(limit=2), _Policy(), "x", seed=0, max_steps=4)
    assert (r.success, r.length) == (False, 2)


class _BatchPolicy:
    """Batched: records each call's batch and the rows it is told to keep."""

    def __init__(self):
        self.batches, self.kept = [], []

    def reset(self):
        self.batches.clear()

    def keep(self, rows):
        self.kept.append(list(rows))

    def select_action(self, images, instructions, state=None):
        images = np.asarray(images)
        assert images.ndim == 4 and len(instructions) == len(images)
        self.batches.append(len(images))
        return np.zeros((len(images), 4), np.float32)


def test_lockstep_episodes_equal_one_at_a_time_and_finished_ones_drop_out():
    def envs():
        return [_Env(success_at=3), _Env(), _Env(success_at=1), _Env(limit=5)]

    policy = _BatchPolicy()
    seeds, instr = [10, 11, 12, 13], ["a", "b", "c", "d"]
    batched = run_episodes(envs(), policy, instr, seeds, max_steps=6, record=[True, False, False, True])
    alone = [run_episode(e, _Policy(), i, s, max_steps=6, record=r)
             for e, i, s, r in zip(envs(), instr, seeds, [True, False, False, True])]
    for b, a in zip(batched, alone):
        assert (b.success, b.length, b.sum_reward, b.seed, b.instruction) == (a.success, a.length, a.sum_reward, a.seed, a.instruction)
        assert [f[0, 0, 0] for f in b.frames] == [f[0, 0, 0] for f in a.frames]
    assert [(r.success, r.length) for r in batched] == [(True, 3), (False, 6), (True, 1), (False, 5)]
    # env 2 finished after step 1, env 0 after step 3, env 3 after step 5: the batch shrinks
    assert policy.batches == [4, 3, 3, 2, 2, 1]
    assert policy.kept == [[0, 1, 3], [1, 2], [0]]  # rows of the batch at the time


def test_lockstep_needs_matching_inputs():
    with pytest.raises(ValueError, match="as many envs"):
        run_episodes([_Env()], _BatchPolicy(), ["a", "b"], [0], max_steps=2)
