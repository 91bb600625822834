"""run_episode drives any gymnasium env with obs["pixels"] and info["is_success"]: it stops at
the first success or at the env's end of episode, and sums the env's rewards."""

import numpy as np

from care.evaluation.rollout import run_episode


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
