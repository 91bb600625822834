"""TASK_SUITES["SHARED"]: Meta-World tasks in groups that share a scene (the semantic probe's suite)."""

from __future__ import annotations

from care.envs.instructions import INSTRUCTIONS
from care.envs.metaworld import MT50, TASK_SUITES, resolve_tasks


def test_shared_suite_resolves_and_comes_in_groups():
    shared = TASK_SUITES["SHARED"]
    assert resolve_tasks("shared") == shared and len(set(shared)) == len(shared) >= 8
    assert set(shared) <= set(MT50) and all(t in INSTRUCTIONS for t in shared)
    # every task has a sibling in the suite (same scene, another goal)
    scene = {t: t.split("-")[0] + ("-side" if "-side" in t else "") for t in shared}
    assert all(sum(scene[u] == scene[t] for u in shared) >= 2 for t in shared)
