"""How the processes of a launch share one model: DDP (a full copy each) or FSDP2 (sharded).

Parallelism is applied to a finished model, never written into it (torchtitan's `parallelize`):
the model files stay readable on one device, and `apply` takes the built `nn.Module` and, in a
fixed order,

    1. activation checkpointing: each transformer block wrapped by torch's checkpoint wrapper
       (non-reentrant), so backward recomputes the block from its input;
    2. fsdp2 only: `fully_shard` on every transformer block — the Llama's decoder layers, each
       vision tower's encoder layers, the method's decoder / Q-former blocks, the action head's
       residual blocks: the elements of the model's `nn.ModuleList`s — and then on the root, with
       a `MixedPrecisionPolicy` (bf16 compute copies where the run is bf16, fp32 gradient
       reduction). Each of N processes then keeps 1/N of every parameter (a DTensor sharded on
       dim 0), of its gradient and of its AdamW state, and all-gathers a block's weights just
       before the block runs.

Scalar parameters (CARE's uncertainty weights log σ²) cannot be sharded: they are left out of
`fully_shard` (`ignored_params`), replicated, and their gradients averaged over the processes
by a hook as soon as they are accumulated — what DDP would do.

The calls of the one training loop (care.training.loop.train, shared by `care pretrain`, `care
lam` and `care finetune`; it does not branch on the strategy):

    strategy = build_strategy(cfg.parallel, acc)            # TrainConfig.parallel
    model = strategy.apply(model)                           # the built model on acc.device, after
                                                            # the run's setup (prepare_training),
                                                            # BEFORE the optimiser
    optimizer = build_optimizer(model, ...)
    state = strategy.load_checkpoint(ckpt, model, optimizer, scheduler, acc, hint)   # resume
    train_model, optimizer = strategy.prepare(acc, model, optimizer)           # instead of acc.prepare
    ...                                                     # loss.backward: care.training.loop_utils
                                                            # clips sharded gradients with clip_grad_norm_
    strategy.save_checkpoint(root, step, net, optimizer, scheduler, state, acc, keep)
    if strategy.every_rank_validates or acc.is_main_process: run.validate()    # sharded weights need
                                                            # every process in each forward
    final = strategy.export(net, acc, private)              # every process calls; the plain model
    if acc.is_main_process: run.save(final, ...)            # with full weights on the main one

Checkpoints: `ddp` writes care.training.checkpoint's format (model.safetensors + optimizer.pt);
`fsdp2` writes the same folder with the model and AdamW state as a PyTorch Distributed
Checkpoint (`step_*/dcp/`: every process writes its shards, nothing is gathered; a run may
resume on another number of processes). Each refuses the other's checkpoint with advice.
The final model of either is the usual single `model.safetensors` folder: the sharded weights
are gathered to the main process on the CPU (`get_model_state_dict(full_state_dict=True,
cpu_offload=True)`) and loaded into a copy of the model made before sharding, whose parameters
lived on the meta device until then (no memory).

Launch: `torchrun --nproc-per-node 8 -m care pretrain ... --parallel.strategy fsdp2` on one
node; with `--nnodes N --node-rank i --rdzv-endpoint HOST:PORT` on each of N nodes (or
`accelerate launch` as before). On a CPU-only machine the processes talk over gloo.
Accelerate's own FSDP plugin is not used: Accelerate 1.16 does not apply it on CPUs, and the
path the tests exercise must be the one that ships.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from care.errors import ConfigError

DCP_DIR = "dcp"  # inside a step_* folder: the sharded model and optimiser state


# ----------------------------------------------------------------------------------------
# What gets sharded
# ----------------------------------------------------------------------------------------


def transformer_blocks(model: nn.Module) -> list[tuple[nn.ModuleList, int]]:
    """(list, index) of every block to shard or checkpoint: the elements with parameters of
    every `nn.ModuleList` that is not inside another such block. In care's models these are the
    Llama's decoder layers, the vision towers' encoder layers, the method's decoder blocks and
    the action head's residual blocks; everything else (embeddings, projector, norms, small
    heads) belongs to the root."""
    found: list[tuple[nn.ModuleList, int]] = []
    taken: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or any(name.startswith(t + ".") for t in taken):
            continue
        for i, block in enumerate(module):
            if any(True for _ in block.parameters()):
                found.append((module, i))
                taken.append(f"{name}.{i}" if name else str(i))
    return found


def meta_skeleton(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters are empty tensors on the meta device (buffers and
    everything else copied): the unsharded module to load the gathered weights into at export,
    made before sharding at no parameter memory."""
    memo = {id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    return copy.deepcopy(model, memo)


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Wrap every transformer block in torch's (non-reentrant) checkpoint wrapper; returns how many.
    State-dict keys are unchanged (the wrapper strips its prefix)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    blocks = transformer_blocks(model)
    for parent, i in blocks:
        parent[i] = checkpoint_wrapper(parent[i])
    return len(blocks)


def is_sharded(params) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in params)


@torch.no_grad()
def clip_grad_norm_(params, max_norm: float) -> torch.Tensor:
    """Global gradient norm of sharded (DTensor) and replicated gradients, before clipping, with
    one all-reduce (torchtitan's clip, for a mix of DTensor and plain parameters); clips in place
    when max_norm > 0. Returns a plain 0-d tensor, the same on every process."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in params if p.grad is not None]
    local = [g.to_local() if isinstance(g, DTensor) else g for g in grads]
    sharded = [t for g, t in zip(grads, local) if isinstance(g, DTensor)]
    replicated = [t for g, t in zip(grads, local) if not isinstance(g, DTensor)]
    dev = local[0].device
    sq = torch.zeros((), dtype=torch.float32, device=dev)
    for t in sharded:  # each process holds a disjoint shard: the squares add up over processes
        sq += t.detach().float().pow(2).sum()
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(sq)
    for t in replicated:  # already averaged, the same on every process: counted once
        sq += t.detach().float().pow(2).sum()
    total = sq.sqrt()
    if max_norm > 0:
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for t in local:
            t.mul_(coef.to(t.dtype))
    return total


# ----------------------------------------------------------------------------------------
# Strategies: one interface, the loop calls it without branching
# ----------------------------------------------------------------------------------------


class DataParallel:
    """ddp: every process holds the whole model; Accelerate wraps it in DistributedDataParallel."""

    name = "ddp"
    sharded = False
    every_rank_validates = False  # the main process validates alone on its full copy

    def __init__(self, cfg):
        self.cfg = cfg

    def apply(self, model: nn.Module) -> nn.Module:
        if self.cfg.activation_checkpointing:
            apply_activation_checkpointing(model)
        return model

    def prepare(self, acc, model: nn.Module, optimizer):
        return acc.prepare(model, optimizer)

    def save_checkpoint(self, root, step, model, optimizer, scheduler, state=None, acc=None, keep=3) -> Path:
        from care.training.checkpoint import save_checkpoint

        return save_checkpoint(root, step, model, optimizer, scheduler, state, acc, keep)

    def load_checkpoint(self, path, model, optimizer=None, scheduler=None, acc=None, hint: str = "") -> dict:
        """care.training.checkpoint.load_checkpoint (weights checked name by name, `hint` with a misfit)."""
        from care.training.checkpoint import load_checkpoint

        path = Path(path)
        if (path / DCP_DIR).is_dir():
            raise ConfigError(f"{path} was written by a sharded run (--parallel.strategy fsdp2): resume it with "
                              "--parallel.strategy fsdp2 (any number of processes)")
        return load_checkpoint(path, model, optimizer, scheduler, acc, hint=hint)

    def export(self, model: nn.Module, acc=None, private: bool = False) -> nn.Module | None:
        """The trained model with full weights on the main process (None elsewhere). private:
        a copy the caller may change (e.g. merge LoRA into) without touching the training one."""
        if acc is not None and not acc.is_main_process:
            return None
        return copy.deepcopy(model) if private else model


class FullyShardedDataParallel(DataParallel):
    """fsdp2: `fully_shard` per transformer block, then the root (see the module docstring)."""

    name = "fsdp2"
    sharded = True
    every_rank_validates = True  # a forward gathers sharded weights: every process takes part

    def __init__(self, cfg, acc):
        super().__init__(cfg)
        self.param_dtype = torch.bfloat16 if str(acc.mixed_precision) == "bf16" else None
        self.device = acc.device
        if not dist.is_initialized():  # one process (no launcher): a group of one, so the same code runs
            backend = "nccl" if acc.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        self.world_size = dist.get_world_size()
        self.skeleton: nn.Module | None = None
        self.num_blocks = 0

    def apply(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

        if dist.get_rank() == 0:
            self.skeleton = meta_skeleton(model)  # the unsharded module for export (no parameter memory)
        super().apply(model)  # activation checkpointing first, as torchtitan: FSDP wraps the checkpointed block
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        mp = MixedPrecisionPolicy(param_dtype=self.param_dtype, reduce_dtype=torch.float32)
        # fully_shard cannot shard 0-d parameters: they stay replicated, their gradients averaged here
        scalars = {p for p in model.parameters() if p.ndim == 0}
        for p in scalars:
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(_average_grad)
        blocks = transformer_blocks(model)
        for parent, i in blocks:
            block_params = set(parent[i].parameters())
            fully_shard(parent[i], mesh=mesh, mp_policy=mp, reshard_after_forward=self.cfg.reshard_after_forward,
                        ignored_params=scalars & block_params or None)
        # the root keeps the batch as it comes (point tracks in pixels lose precision in bf16)
        root_mp = MixedPrecisionPolicy(param_dtype=self.param_dtype, reduce_dtype=torch.float32,
                                       cast_forward_inputs=False)
        fully_shard(model, mesh=mesh, mp_policy=root_mp, reshard_after_forward=self.cfg.reshard_after_forward,
                    ignored_params=scalars or None)
        for method in ("diagnostics",):  # entry points other than forward that run the model
            if hasattr(model, method):
                register_fsdp_forward_method(model, method)
        self.num_blocks = len(blocks)
        return model

    def prepare(self, acc, model: nn.Module, optimizer):
        return model, optimizer  # no DDP wrapper: fully_shard already reduces the gradients

    def save_checkpoint(self, root, step, model, optimizer, scheduler, state=None, acc=None, keep=3) -> Path:
        """The folder of care.training.checkpoint with `dcp/` (every process writes its shards)
        in place of model.safetensors + optimizer.pt; atomic: written beside, renamed when complete."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        from care.training.checkpoint import PREFIX, _rng_state, list_checkpoints

        root = Path(root)
        rank = dist.get_rank()
        final, tmp = root / f"{PREFIX}{step:08d}", root / f".tmp-{PREFIX}{step:08d}"
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        dist.barrier()
        msd, osd = get_state_dict(model, optimizer)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp / DCP_DIR))
        torch.save(_rng_state(), tmp / f"rng_{rank}.pt")
        dist.barrier()
        if rank == 0:
            (tmp / "state.json").write_text(json.dumps({"step": step, "sharded": True, **(state or {})}, indent=2))
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()
        return final

    def load_checkpoint(self, path, model, optimizer=None, scheduler=None, acc=None, hint: str = "") -> dict:
        """DCP reshards the saved state into this run's shards (any number of processes); a
        misfit of names or shapes is DCP's own error."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        from care.training.checkpoint import _set_rng_state

        path = Path(path)
        if not (path / DCP_DIR).is_dir():
            raise ConfigError(f"{path} was written by an unsharded run (--parallel.strategy ddp): resume it with "
                              "--parallel.strategy ddp")
        msd, osd = get_state_dict(model, optimizer)  # the templates: this run's shards (DCP reshards into them)
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=str(path / DCP_DIR))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        if scheduler is not None:
            scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        rng = path / f"rng_{dist.get_rank()}.pt"
        if rng.is_file():  # absent when resuming on more processes than wrote it
            _set_rng_state(torch.load(rng, weights_only=True))
        return json.loads((path / "state.json").read_text())

    def export(self, model: nn.Module, acc=None, private: bool = False) -> nn.Module | None:
        """Gather the full weights on the main process's CPU and load them into the skeleton
        made before sharding; every process must call this. None on the other processes."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if dist.get_rank() != 0:
            return None
        out = self.skeleton
        out.load_state_dict(full, assign=True)  # meta parameters become the gathered CPU tensors
        return out.cpu()


def _average_grad(p: torch.Tensor) -> None:
    dist.all_reduce(p.grad)
    p.grad.div_(dist.get_world_size())


def build_strategy(cfg, acc) -> DataParallel:
    """The strategy of `--parallel.strategy` (ParallelConfig) for this launch."""
    if cfg.strategy == "ddp":
        return DataParallel(cfg)
    if cfg.strategy == "fsdp2":
        return FullyShardedDataParallel(cfg, acc)
    raise ConfigError(f"unknown --parallel.strategy {cfg.strategy!r}; choose ddp or fsdp2")
