"""Task names and instructions: no simulator needed."""

import pytest

from care.envs.instructions import INSTRUCTIONS, derived_instructions, instruction_for, instructions_for
from care.envs.metaworld import MT10, TASK_SUITES, resolve_tasks
from care.errors import CareError


def test_suites():
    assert resolve_tasks("MT10") == MT10 and len(MT10) == 10
    assert resolve_tasks("mt50") == TASK_SUITES["MT50"] and len(set(TASK_SUITES["MT50"])) == 50
    assert set(MT10) <= set(TASK_SUITES["MT50"])
    assert resolve_tasks("MT40") == [t for t in TASK_SUITES["MT50"] if t not in MT10] and len(TASK_SUITES["MT40"]) == 40


def test_suite_matches_metaworld():
    env_dict = pytest.importorskip("metaworld.env_dict")
    assert sorted(TASK_SUITES["MT50"]) == sorted(env_dict.ALL_V3_ENVIRONMENTS)


def test_comma_list_and_suffix():
    assert resolve_tasks("drawer-close-v3, reach") == ["drawer-close-v3", "reach-v3"]
    assert resolve_tasks("reach-v3,reach-v3") == ["reach-v3"]


@pytest.mark.parametrize("spec", ["reach-v3,not-a-task", "", " , "])
def test_unknown_task_is_a_clear_error(spec):
    with pytest.raises(CareError) as e:
        resolve_tasks(spec)
    msg = str(e.value)
    assert "MT10" in msg
    if "not-a-task" in spec:
        assert "not-a-task" in msg and "drawer-close-v3" in msg  # names the bad one, lists valid ones


def test_instructions_for_every_task():
    for name in TASK_SUITES["MT50"]:
        options = INSTRUCTIONS[name]
        assert len(options) >= 4 and len(set(options)) == len(options), name
        assert all(s[0].isupper() and s.endswith(".") for s in options), name


def test_instruction_chosen_by_seed():
    picks = [instruction_for("drawer-open-v3", s) for s in range(40)]
    assert picks == [instruction_for("drawer-open-v3", s) for s in range(40)]
    assert len(set(picks)) > 1 and set(picks) <= set(INSTRUCTIONS["drawer-open-v3"])


def test_derived_instructions_for_unknown_name():
    options = instructions_for("stack-blocks-v4")
    assert options == derived_instructions("stack-blocks-v4") and len(options) >= 4
    assert all("stack blocks" in s for s in options)
