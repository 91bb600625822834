"""run_episode drives any gymnasium env with obs["pixels"] and info["is_success"]: it stops at
the first success or at the env's end of episode, and sums the env's rewards."""

import numpy as np
import pytest

from care.evaluation.rollout import RenderEveryStep, run_episode, run_episodes


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


def test_frames_between_plans_are_not_rendered_and_the_episode_is_the_same(tmp_path):
    """A real Meta-World env and a micro policy (chunk 3): with render skipping, the env renders
    only at reset and before each plan (plus every frame of a recorded episode), and the episode
    (actions, length, rewards) is the one that renders every step."""
    from helpers import INSTR, META, micro_model, normalizer

    from care.envs.metaworld import MetaWorldEnv
    from care.models.vla import merge_lora
    from care.policy import CarePolicy, save_policy

    save_policy(tmp_path / "p", merge_lora(micro_model()), normalizer(), META)
    policy = CarePolicy.from_pretrained(tmp_path / "p")
    calls = []
    actions = []
    select = policy.select_action
    policy.select_action = lambda *a, **k: actions.append(np.array(select(*a, **k))) or actions[-1]

    def episode(env, record=False):
        calls.clear(), actions.clear()
        inner = getattr(env, "wrapped", env)
        render = inner.view.render
        inner.view.render = lambda *a, **k: calls.append(1) or render(*a, **k)
        r = run_episode(env, policy, INSTR[0], seed=1000, max_steps=10, record=record)
        inner.view.render = render
        return r, len(calls), [a.copy() for a in actions]

    with MetaWorldEnv("drawer-close-v3", size=48, max_steps=10) as env:
        skip, n_skip, a_skip = episode(env)
        assert env.render_on_step  # restored after the episode
        full, n_full, a_full = episode(RenderEveryStep(env))
        rec, n_rec, _ = episode(env, record=True)
    assert (skip.length, skip.sum_reward, skip.success) == (full.length, full.sum_reward, full.success) == (10, full.sum_reward, False)
    for a, b in zip(a_skip, a_full, strict=True):
        np.testing.assert_array_equal(a, b)
    assert n_full == 11 and n_skip == 1 + 3  # reset + the frames before plans at steps 4, 7, 10
    assert n_rec == 11 and len(rec.frames) == 11  # a recorded episode renders every frame

    # lockstep: the same episodes as one at a time, rendering only what the plans need
    with MetaWorldEnv("drawer-close-v3", size=48, max_steps=10) as e1, \
            MetaWorldEnv("drawer-close-v3", size=48, max_steps=10, share_renderer_with=e1) as e2:
        policy.select_action = select
        batch = run_episodes([e1, e2], policy, INSTR, [1000, 1001], max_steps=10)
        assert e1.render_on_step and e2.render_on_step
    with MetaWorldEnv("drawer-close-v3", size=48, max_steps=10) as e:
        alone = [run_episode(RenderEveryStep(e), policy, i, s, max_steps=10) for i, s in zip(INSTR, [1000, 1001])]
    for b, a in zip(batch, alone):
        assert (b.length, b.sum_reward, b.success) == (a.length, a.sum_reward, a.success)
