"""Two-process DistributedDataParallel run (gloo, loopback) used by test_reliability and test_plain_pytorch.

usage: python _ddp_worker.py RESULT.json MODEL_NAME [MODEL_NAME ...]
One process group for all the models. Each rank trains each zoo model (gradient checkpointing on
where the model has it) on its own data for a few steps, under DDP with its default
``find_unused_parameters=False`` (a parameter that ``forward`` never uses makes the next step fail);
rank 0 then gathers every parameter from both ranks and records the largest difference per model.
"""
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(rank: int, world: int, name: str) -> dict:
    import zoo
    from zoo.registry import model_entry

    entry = model_entry(name)
    classify = entry.task in ("classification", "video")
    torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = zoo.create_model(name, num_classes=5) if classify else zoo.create_model(name)
    if hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    size = entry.test_sizes[0]
    in_chans = model.pretrained_cfg["input_size"][0]
    gen = torch.Generator().manual_seed(100 + rank)  # different data per rank
    losses = []
    steps = 3
    for _ in range(steps):
        x = torch.randn(2, in_chans, *size, generator=gen)
        out = ddp(x)
        if classify:
            loss = torch.nn.functional.cross_entropy(out, torch.randint(0, 5, (2,), generator=gen))
        else:
            loss = out.float().square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    diff = max((g - gathered[0]).abs().max().item() for g in gathered)
    return dict(steps=steps, max_param_diff=diff, losses=losses, loss_changed=len(set(losses)) > 1)


def _run(rank: int, world: int, result: str, names: list, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    if any(n.startswith("zoo_toy") for n in names):
        import toy_models  # noqa: F401
    out = dict(world_size=world, models={})
    for name in names:
        try:
            out["models"][name] = _train(rank, world, name)
        except Exception as e:  # a failing model is reported, the others still run (both ranks fail alike)
            out["models"][name] = dict(error=f"{type(e).__name__}: {e}"[:2000])
    if rank == 0:
        with open(result, "w") as f:
            json.dump(out, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(_run, args=(2, sys.argv[1], sys.argv[2:], _free_port()), nprocs=2, join=True)
