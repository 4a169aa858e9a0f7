"""Numbers the docs show come from the code: README.md and CONTRIBUTING.md are held to the registry.

The README's model table is generated (``python -m zoo table --markdown --quick --write-readme``) and
checked by test_cards; this file checks what is written by hand around it.
"""
import ast
import re
from pathlib import Path

import pytest

import zoo
from zoo.registry import measure, model_entry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "CONTRIBUTING.md")
TABLE = re.compile(r"<!-- zoo-table:start.*?<!-- zoo-table:end -->", re.S)
COUNT = re.compile(r"(?<![\w.,])\d{1,3}(?:[,_]\d{3})+(?!\w|[,_]\d)")  # 19,984,174 or 19_984_174


def _hand_written(doc):
    return TABLE.sub("", (ROOT / doc).read_text())


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _value(node):
    """A literal, or ``dict(...)`` of literals, as the examples write ``reported``."""
    return eval(compile(ast.Expression(node), "<doc>", "eval"), {"__builtins__": {}, "dict": dict})


def _register_model_examples(text):
    """(function name, {keyword: literal value}) of every ``@register_model(...)`` shown in a code block."""
    found = []
    for block in _python_blocks(text):
        for node in ast.walk(ast.parse(block)):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "register_model":
                    found.append((node.name, {k.arg: _value(k.value) for k in dec.keywords}))
    return found


def test_contributing_shows_a_public_variant_and_a_test_model():
    names = [name for name, _ in _register_model_examples(_hand_written("CONTRIBUTING.md"))]
    assert len(names) >= 2 and any(model_entry(n).test_model for n in names) \
        and any(not model_entry(n).test_model for n in names)


@pytest.mark.parametrize("name,kwargs", _register_model_examples(_hand_written("CONTRIBUTING.md")),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_register_model_examples_match_the_registered_model(name, kwargs):
    entry = model_entry(name)
    for key, shown in kwargs.items():
        actual = getattr(entry, key)
        if key == "test_sizes":
            shown = tuple(tuple(s) for s in shown)
        assert shown == actual, f"CONTRIBUTING.md shows {name} with {key}={shown!r}; the code has {actual!r}"
    if kwargs.get("official_params") is not None:
        assert measure(name, gmacs=False)["params"] == kwargs["official_params"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_parameter_count_written_in_the_docs_is_one_the_code_counts(doc):
    shown = {int(re.sub("[,_]", "", m)) for m in COUNT.findall(_hand_written(doc))}
    counted = set()
    for name in zoo.list_models():
        counted.add(measure(name, gmacs=False)["params"])
        counted.add(model_entry(name).official_params)
    assert not shown - counted, f"{doc} shows counts no registered model has: {sorted(shown - counted)}"


def test_count_pattern_finds_both_spellings():
    assert COUNT.findall("nat_mini has 19,984,174, (official_params=19_984_174,) 2x, v1.0.20, 5,400 s, 1,23") == \
        ["19,984,174", "19_984_174", "5,400"]
    assert COUNT.findall("official_params=20_006_344, manifest=") == ["20_006_344"]
