"""Two-process DistributedDataParallel run (gloo, loopback) used by test_reliability.

usage: python _ddp_worker.py MODEL_NAME RESULT.json
Each rank trains the same zoo model with gradient checkpointing on its own data for a few steps;
rank 0 then gathers every parameter from both ranks and records the largest difference.
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


def _run(rank: int, world: int, name: str, result: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    import zoo
    from zoo.registry import model_entry
    if name.startswith("zoo_toy"):
        import toy_models  # noqa: F401

    torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = zoo.create_model(name, num_classes=5)
    model.set_grad_checkpointing(True)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    size = model_entry(name).test_sizes[0]
    in_chans = model.pretrained_cfg["input_size"][0]
    gen = torch.Generator().manual_seed(100 + rank)  # different data per rank
    losses = []
    steps = 3
    for _ in range(steps):
        x = torch.randn(2, in_chans, *size, generator=gen)
        y = torch.randint(0, 5, (2,), generator=gen)
        loss = torch.nn.functional.cross_entropy(ddp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        diff = max((g - gathered[0]).abs().max().item() for g in gathered)
        with open(result, "w") as f:
            json.dump(dict(world_size=world, steps=steps, max_param_diff=diff, losses=losses,
                           loss_changed=len(set(losses)) > 1), f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(_run, args=(2, sys.argv[1], sys.argv[2], _free_port()), nprocs=2, join=True)
