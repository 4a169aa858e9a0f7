"""Every zoo model is an ordinary nn.Module that standard tools see as written: forward hooks fire on
every module that owns parameters, every parameter gets a gradient, dynamic quantization and LoRA
(through peft) work. (DDP with find_unused_parameters=False: tests/test_reliability.py.)"""
from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

import zoo
from zoo.registry import model_entry, test_models

from _contract import check_task_output, make_input
from _shared import one_thread  # noqa: F401  (autouse: one thread)

TESTS = [n for n in test_models() if not n.startswith("zoo_toy")]  # zoo families only
ONE_PER_FAMILY = list({model_entry(n).family: n for n in reversed(TESTS)}.values())

# dynamic int8 quantization of the Linears of a random-init tiny model: relative L2 distance of the
# output to the float output (measured 0.1%-4.2% over the families, test_vsa_swin the largest)
QUANT_REL_TOL = 0.1
# the attention projections LoRA adapts (last name component, inside a module path containing "attn")
ATTN_PROJECTIONS = re.compile(r"(^|.*\.)[^.]*attn[^.]*\..*?(qkv|q|kv|kv1|kv2|query|proj|project_out)$")




def _input(name: str) -> torch.Tensor:
    torch.manual_seed(0)
    return make_input(name, model_entry(name).test_sizes[-1])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", TESTS)
def test_forward_hook_fires_on_every_module_that_owns_parameters(name, mode):
    """No forward computes with a submodule's weights behind its back: hooks, quantization, LoRA and
    pruning all rely on the module being called."""
    model = zoo.create_model(name).train(mode == "train")
    owners = {n: m for n, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None}
    fired = set()
    for n, m in owners.items():
        m.register_forward_hook(lambda mod, args, out, n=n: fired.add(n))
    with torch.no_grad():
        model(_input(name))
    missing = sorted(set(owners) - fired)
    assert not missing, f"{name} ({mode}): modules never called by forward: {missing[:8]}"


@pytest.mark.parametrize("name", TESTS)
def test_every_parameter_gets_a_gradient(name):
    """timm's contract (tests/test_models.py::test_model_backward), with no exceptions list."""
    model = zoo.create_model(name).train()
    assert not getattr(model, "no_grad_params", ()), f"{name} declares parameters forward never uses"
    x = _input(name)
    out = model(x)
    check_task_output(name, model, x, out)
    out.float().square().mean().backward()
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.grad is None]
    assert not missing, f"{name}: no gradient reached {len(missing)}/{len(params)} parameters: {missing[:8]}"


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_dynamic_quantization_stays_close_to_float(name):
    model = zoo.create_model(name).eval()
    x = _input(name)
    with torch.no_grad():
        ref = model(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notice
            q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
        n_quantized = sum(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in q.modules())
        n_linear = sum(type(m) is nn.Linear for m in model.modules())
        assert n_quantized == n_linear, f"{name}: {n_quantized} of {n_linear} Linears quantized"
        out = q(x)
    assert out.shape == ref.shape
    if n_linear == 0:  # Restormer is all convolutions: dynamic quantization (Linears only) leaves it as is
        assert torch.equal(out, ref)
        return
    err = _rel(out, ref)
    assert err < QUANT_REL_TOL, f"{name}: int8 dynamic quantization moved the output by {err:.3f} (relative L2)"


def _lora_targets(model: nn.Module):
    return [n for n, m in model.named_modules() if ATTN_PROJECTIONS.match(n) and (
        type(m) is nn.Linear or (type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.groups == 1))]


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_lora_on_attention_projections_trains_adapters_only_and_merges_exactly(name):
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = zoo.create_model(name)
    targets = _lora_targets(model)
    assert targets, f"{name}: no attention projection found for LoRA"
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    lora = peft.get_peft_model(model, config).train()
    adapted = [n for n, m in lora.named_modules() if isinstance(m, peft.tuners.lora.LoraLayer)]
    assert len(adapted) == len(targets)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable), trainable[:5]
    x = _input(name)
    lora(x).float().square().mean().backward()
    for n, p in lora.named_parameters():
        if "lora_" in n:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reached {n}"
        else:
            assert p.grad is None, f"{name}: the frozen base parameter {n} got a gradient"
    lora.eval()
    with torch.no_grad():
        unmerged = lora(x)
        merged = lora.merge_and_unload()
        assert not any(isinstance(m, peft.tuners.lora.LoraLayer) for m in merged.modules())
        out = merged(x)
    assert _rel(out, unmerged) < 1e-5, f"{name}: merged LoRA differs from the unmerged one"
