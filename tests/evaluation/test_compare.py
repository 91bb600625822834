"""`care eval compare`: mean +- std over seeds, refusal of unlike evaluations, CLI outputs."""

import json

import numpy as np
import pytest

from care.cli import main
from care.configs import CompareConfig
from care.errors import CareError
from care.evaluation.compare import compare
from care.evaluation.evaluate import aggregate


def _write_eval(path, successes: dict, seed0=1000, max_steps=200, execution="chunk"):
    rows = []
    for task, succ in successes.items():
        for i, s in enumerate(succ):
            rows.append({"task": task, "episode_ix": i, "seed": seed0 + i, "success": bool(s),
                         "length": 10 if s else max_steps, "sum_reward": None, "video_path": None})
    info = aggregate(rows, list(successes))
    info["config"] = {"max_steps": max_steps, "execution": execution, "n_action_steps": None,
                      "size": 128, "camera": "corner", "seed": seed0}
    info["policy"] = {"path": str(path).replace("_eval", "")}
    path.mkdir(parents=True)
    (path / "eval_info.json").write_text(json.dumps(info))


def test_mean_std_over_seeds(tmp_path):
    a = {"reach-v3": [1, 1, 0, 0], "push-v3": [0, 0, 0, 0]}  # 50, 0  -> overall 25
    b = {"reach-v3": [1, 1, 1, 0], "push-v3": [1, 0, 0, 0]}  # 75, 25 -> overall 50
    c = {"reach-v3": [1, 1, 1, 1], "push-v3": [1, 1, 0, 0]}  # 100, 50 -> overall 75
    for i, s in enumerate((a, b, c)):
        _write_eval(tmp_path / f"care_s{i}_eval", s)
    _write_eval(tmp_path / "none_s0_eval", a)
    cfg = CompareConfig(methods={"CARE": str(tmp_path / "care_s*_eval"), "none": str(tmp_path / "none_s*_eval")},
                        output_dir=tmp_path / "out")
    summary = compare(cfg)
    care = summary["methods"]["CARE"]
    assert care["n_seeds"] == 3 and care["per_task"]["reach-v3"]["seeds"] == [50.0, 75.0, 100.0]
    assert care["per_task"]["reach-v3"]["mean"] == 75.0
    assert care["per_task"]["reach-v3"]["std"] == pytest.approx(np.std([50, 75, 100], ddof=1))  # 25.0
    assert care["overall"]["mean"] == 50.0 and care["overall"]["std"] == pytest.approx(25.0)
    assert summary["methods"]["none"]["overall"] == {"seeds": [25.0], "mean": 25.0, "std": 0.0}
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "| reach-v3 | 75.0 ± 25.0 | 50.0 |" in md and "**50.0 ± 25.0**" in md
    assert (tmp_path / "out" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["tasks"] == ["reach-v3", "push-v3"]


def test_refuses_evaluations_on_other_episodes(tmp_path):
    _write_eval(tmp_path / "a_s0_eval", {"reach-v3": [1, 0]})
    _write_eval(tmp_path / "b_s0_eval", {"reach-v3": [1, 0]}, seed0=2000)
    cfg = CompareConfig(methods={"a": str(tmp_path / "a_s*"), "b": str(tmp_path / "b_s*")}, output_dir=tmp_path / "o")
    with pytest.raises(CareError, match="b_s0_eval.*other tasks or episode seeds"):
        compare(cfg)
    _write_eval(tmp_path / "c_s0_eval", {"reach-v3": [1, 0]}, max_steps=100)
    cfg = CompareConfig(methods={"a": str(tmp_path / "a_s*"), "c": str(tmp_path / "c_s*")}, output_dir=tmp_path / "o")
    with pytest.raises(CareError, match=r"c_s0_eval.*max_steps=100 vs 200"):
        compare(cfg)
    # how chunks are executed is part of the method: comparable
    _write_eval(tmp_path / "e_s0_eval", {"reach-v3": [1, 1]}, execution="ensemble")
    cfg = CompareConfig(methods={"a": str(tmp_path / "a_s*"), "e": str(tmp_path / "e_s*")}, output_dir=tmp_path / "o")
    assert compare(cfg)["methods"]["e"]["execution"] == ["ensemble"]
    assert "- e (ensemble execution): " in (tmp_path / "o" / "compare.md").read_text()


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["eval", "compare", "--methods", json.dumps({"x": str(tmp_path / "nothing_*")})]) == 2
    assert "no folder matches" in capsys.readouterr().err
    (tmp_path / "broken_eval").mkdir()
    (tmp_path / "broken_eval" / "eval_info.json").write_text("{not json")
    assert main(["eval", "compare", "--methods", json.dumps({"x": str(tmp_path / "broken_eval")})]) == 2
    err = capsys.readouterr().err
    assert "broken_eval/eval_info.json" in err and "malformed JSON" in err
    assert main(["eval", "compare"]) == 2
    assert "methods is empty" in capsys.readouterr().err


def test_yaml_config_keeps_the_order_of_methods(tmp_path):
    for name in ("zeta", "alpha", "mid"):
        _write_eval(tmp_path / f"{name}_s0_eval", {"reach-v3": [1, 0]})
    cfg = tmp_path / "cmp.yaml"
    cfg.write_text("methods:\n" + "".join(f"  {n}: {tmp_path}/{n}_s*_eval\n" for n in ("zeta", "alpha", "mid"))
                   + f"output_dir: {tmp_path / 'out'}\n")
    assert main(["eval", "compare", "--config", str(cfg)]) == 0
    header = (tmp_path / "out" / "compare.md").read_text().splitlines()[2]
    assert header == "| Task | zeta | alpha | mid |"


def test_paired_with_a_reference(tmp_path):
    from care.evaluation.compare import sign_test_p

    # seed 0: A wins episode 1 and 2, loses episode 3; seed 1: A wins episode 0
    _write_eval(tmp_path / "ref_s0_eval", {"reach-v3": [1, 0, 0, 1]})
    _write_eval(tmp_path / "a_s0_eval", {"reach-v3": [1, 1, 1, 0]})
    _write_eval(tmp_path / "ref_s1_eval", {"reach-v3": [0, 0, 0, 0]})
    _write_eval(tmp_path / "a_s1_eval", {"reach-v3": [1, 0, 0, 0]})
    cfg = CompareConfig(methods={"A": str(tmp_path / "a_s*"), "ref": str(tmp_path / "ref_s*")},
                        reference="ref", output_dir=tmp_path / "o")
    pr = compare(cfg)["paired"]["A"]
    assert pr["diff_seeds"] == [25.0, 25.0] and pr["diff_mean"] == 25.0 and pr["diff_std"] == 0.0
    assert (pr["wins"], pr["losses"]) == (3, 1)
    assert pr["p_sign_test"] == pytest.approx(2 * (1 + 4) / 16)  # n=4, min(b, c)=1
    assert sign_test_p(0, 0) == 1.0 and sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert "| A | +25.0 ± 0.0 | +25.0, +25.0 | 3 / 1 | 0.625 |" in (tmp_path / "o" / "compare.md").read_text()

    with pytest.raises(CareError, match="reference 'nope' is not one of the methods"):
        compare(CompareConfig(methods=cfg.methods, reference="nope", output_dir=tmp_path / "o"))
    _write_eval(tmp_path / "b_s0_eval", {"reach-v3": [1, 1, 1, 0]})
    with pytest.raises(CareError, match="'B' has 1 seed folder.*reference 'ref' has 2"):
        compare(CompareConfig(methods={"B": str(tmp_path / "b_s*"), "ref": str(tmp_path / "ref_s*")},
                              reference="ref", output_dir=tmp_path / "o"))


def test_seed_folders_pair_in_natural_order(tmp_path):
    from care.evaluation.compare import load_method

    for s in (10, 2, 1):
        _write_eval(tmp_path / f"m_s{s}_eval", {"reach-v3": [1]})
    assert [d.name for d, _ in load_method("m", str(tmp_path / "m_s*_eval"))] == ["m_s1_eval", "m_s2_eval", "m_s10_eval"]
