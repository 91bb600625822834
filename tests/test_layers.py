"""Data flows one way: dataset -> clip -> model -> loss -> checkpoint -> policy -> environment.

Each module of the package sits in a layer; it may import its own package or any lower layer,
never a higher one, and never `care.cli` (the command line sits on top of everything). Packages
of one layer are siblings and do not import each other (training and evaluation meet only in
the policy folder). Imports inside functions count: a lazy import is still a dependency, and so
is an import by string (`importlib.import_module("care....")`, a "care.module:Name" target).
The one string a lower layer may hold is a method config's `modeling` / `lam_modeling`: it names
a module of its own method's package, which the registry (care.methods.registry) imports.
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "care"

# (layer, module pattern); the most specific pattern (most dotted parts, then most letters) wins
LAYERS: list[tuple[float, str]] = [
    (0, "care.errors"), (0.5, "care.io"), (0.5, "care.folders"),
    (0.8, "care.methods.base"), (0.8, "care.methods.*.configuration_*"), (0.8, "care.envs.configs"),  # named by
    (1, "care.configs"),                                                                               # the stage configs
    (1.5, "care.presets"),  # presets are configs of the configs
    (2, "care.envs"),
    (3, "care.data"),
    (4, "care.tracking"),
    (5, "care.models"),
    (5.5, "care.methods"), (5.5, "care.methods.*"), (5.5, "care.methods.*.*"),  # built on the shared models
    (6, "care.policy"),
    (7, "care.training"), (7, "care.evaluation"), (7, "care.serve"), (7, "care.probes"), (7, "care.labels"),
    (8, "care.report"),  # reads what evaluation and the probes wrote
    (9, "care.cli"), (9, "care.cli_help"), (9, "care.__main__"),
]


def layer_of(module: str) -> float:
    hits = [(len(p.split(".")), len(p.replace("*", "")), n) for n, p in LAYERS
            if fnmatch(module, p) or fnmatch(module, p + ".*")]
    if not hits:
        raise AssertionError(f"{module} has no layer in tests/test_layers.py: add it")
    return max(hits)[2]


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def allowed(module: str, target: str) -> bool:
    """A module may import a lower layer, or its own package at its layer or below; never
    care.cli, and never a sibling package of the same layer."""
    if target == "care":
        return True
    if target.startswith("care.cli"):
        return module.startswith(("care.cli", "care.__main__"))
    own, theirs = layer_of(module), layer_of(target)
    if package_of(target) == package_of(module):
        return theirs <= own
    return theirs < own


def modules() -> dict[str, Path]:
    out = {}
    for f in SRC.rglob("*.py"):
        rel = f.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = f
    return out


PLUGIN_FIELDS = ("modeling", "lam_modeling")  # a method config's import strings (care.methods.registry)
TARGET = re.compile(r"^(care(?:\.\w+)+)(?::\w+)?$")


def imports(file: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement and import string in `file`."""
    tree = ast.parse(file.read_text())
    found = []
    plugin = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
              and isinstance(node.target, ast.Name) and node.target.id in PLUGIN_FIELDS and node.value is not None}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = module.split(".")[: -node.level] if not file.name == "__init__.py" else module.split(".")[
                    : len(module.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TARGET.match(node.value):
            if ":" in node.value or _is_import_call_arg(tree, node):
                target = TARGET.match(node.value).group(1)
                if id(node) in plugin and target.startswith(".".join(module.split(".")[:3]) + "."):
                    continue  # a method config naming its own modeling module
                found.append((node.lineno, target))
    return [(line, n) for line, n in found if n == "care" or n.startswith("care.")]


def _is_import_call_arg(tree: ast.AST, const: ast.Constant) -> bool:
    """Whether `const` is the first argument of an import_module(...) / __import__(...) call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and node.args[0] is const:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__"):
                return True
    return False


def violations() -> list[str]:
    bad = []
    for module, file in sorted(modules().items()):
        if module == "care":
            continue
        for line, target in imports(file, module):
            if not allowed(module, target):
                bad.append(f"{file.relative_to(SRC.parent)}:{line}: {module} (layer {layer_of(module)}) imports "
                           f"{target} (layer {layer_of(target)})")
    return bad


def test_no_module_imports_a_layer_above_its_own():
    bad = violations()
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_every_module_has_a_layer():
    for module in modules():
        if module != "care":
            layer_of(module)


@pytest.mark.parametrize("module,target,ok", [
    ("care.policy.controller", "care.training.finetune", False),  # downstream reaching back
    ("care.training.finetune", "care.policy.folder", True),
    ("care.data.collect", "care.cli", False),
    ("care.models.vla", "care.evaluation.report", False),
    ("care.training.pretrain", "care.evaluation.report", False),  # siblings
    ("care.methods.care.modeling_care", "care.models.pretrained", True),
    ("care.methods.care.configuration_care", "care.methods.registry", False),  # config layer stays light
    ("care.models.latent_vlm", "care.methods.lapa.modeling_lapa", False),  # generic models name no method
    ("care.configs", "care.presets", False),  # one way: presets are built from configs
    ("care.envs.configs", "care.configs", False),
    ("care.evaluation.evaluate", "care.policy.controller", True),
])
def test_the_rule_itself(module, target, ok):
    """The checker would catch the imports issue 9 found (and allows the intended ones)."""
    assert allowed(module, target) == ok


def test_import_strings_are_seen(tmp_path):
    """A module that loads another by a string depends on it as if it imported it."""
    f = tmp_path / "m.py"
    f.write_text('import importlib\n'
                 'importlib.import_module("care.methods.lapa.modeling_lapa")\n'
                 'TARGET = "care.methods.como.modeling_como:ComoModel"\n'
                 'class C:\n    modeling: str = "care.methods.care.modeling_care:CareModel"\n'
                 'TEXT = "care.io is a module"\n')
    got = [n for _, n in imports(f, "care.methods.care.configuration_care")]
    assert sorted(got) == ["care.methods.como.modeling_como", "care.methods.lapa.modeling_lapa"]
    assert "care.methods.care.modeling_care" in [n for _, n in imports(f, "care.models.vla")]
