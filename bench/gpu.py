"""GPU training benchmark: the lowered resnet50 and vit_b_16 against a reference module,
at bf16 autocast + channels_last + torch.compile, then a 2-process DDP scaling run.

For each network: images/s of a full training step (forward, backward, SGD step) for
the lowered module and for the reference (torchvision's model when torchvision is
importable; otherwise tests/reference_resnet.py for resnet50, and no reference for
vit_b_16), measured in one process, alternating, after warm-up and compilation; their
ratio; and model FLOPs utilisation, MFU = 6 x MACs per image x images/s / peak bf16
FLOP/s of the GPU (forward 2 FLOPs per MAC, backward twice the forward), from the table
PEAK_BF16 below. Then `archdsl stats --train`'s planned peak memory of a training step
against torch.cuda.max_memory_allocated, fp32 and fp16 autocast, at batches 32 and 128.
Then the lowered resnet50 under DistributedDataParallel on 2 processes
(NCCL, one GPU each) against 1 process at the same per-GPU batch: the scaling factor.

    python bench/gpu.py                 # on a CUDA machine; unattended, under 8 minutes
    python bench/gpu.py --smoke         # a tiny version on the CPU (gloo for the DDP part)
    python bench/gpu.py --json out.json # also write the figures as JSON
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from archdsl import ir  # noqa: E402
import archdsl  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, by a substring of the device name.
PEAK_BF16 = {
    "B200": 2250e12, "H200": 989e12, "GH200": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12,
    "H100": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12,
    "L40S": 362e12, "L40": 181e12, "L4": 121e12, "A10G": 70e12, "A10": 125e12,
    "RTX 6000 Ada": 364e12, "RTX A6000": 155e12, "RTX 4090": 165e12, "RTX 3090": 71e12,
}

NETWORKS = {"resnet50": "specs/resnet50.arch", "vit_b_16": "specs/vit_b_16.arch"}


def peak_bf16(device: torch.device) -> tuple[float | None, str]:
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    return peak_for_name(name), name


def peak_for_name(name: str) -> float | None:
    """The table's peak for a device name, the most specific entry first.

    >>> peak_for_name("NVIDIA H100 80GB HBM3") / 1e12, peak_for_name("NVIDIA GH200 480GB") / 1e12
    (989.0, 989.0)
    """
    for key in sorted(PEAK_BF16, key=len, reverse=True):
        if key in name:
            return PEAK_BF16[key]
    return None


def settings_for(network: str, smoke: bool) -> dict:
    if not smoke:
        return {}
    return {"vit_b_16": {"size": 32, "layers": 2, "width": 96, "heads": 4, "mlp_dim": 192,
                         "classes": 10}}.get(network, {"classes": 10})


def reference_for(network: str, settings: dict):
    """The module to compare against: torchvision's, else the hand-written ResNet-50."""
    try:
        import torchvision
        if network == "vit_b_16" and settings:
            return torchvision.models.VisionTransformer(
                settings["size"], 16, settings["layers"], settings["heads"], settings["width"],
                settings["mlp_dim"], num_classes=settings["classes"]), "torchvision"
        return getattr(torchvision.models, network)(num_classes=settings.get("classes", 1000)), \
            "torchvision"
    except ImportError:
        pass
    if network == "resnet50":
        from reference_resnet import resnet50
        return resnet50(settings.get("classes", 1000)), "tests/reference_resnet.py"
    return None, "none (torchvision not installed)"


def prepare(module, device, compile_it: bool):
    module = module.to(device).train()
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    forward = torch.compile(module) if compile_it else module
    return module, forward, optimizer


def make_step(forward, optimizer, x, y, device):
    def step():
        # bf16 autocast on the GPU; the CPU smoke run stays in fp32 (bf16 is slow there)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def synchronise(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(network: str, args, device) -> dict:
    settings = settings_for(network, args.smoke)
    result = archdsl.compile_file(ROOT / NETWORKS[network], settings=settings,
                                  inputs={"*": (3, args.size, args.size)} if network == "resnet50" else None)
    if not result.ok:
        raise archdsl.CompileError(result.diagnostics)
    size = result.graph.nodes[ir.network(result.graph).inputs[0]]["shape"]
    macs = archdsl.stats(result.graph).totals.macs
    classes = settings.get("classes", 1000)
    lowered = archdsl.lower(result.graph)
    reference, reference_name = reference_for(network, settings)
    if reference is not None:
        reference.load_state_dict(lowered.state_dict())
    x = torch.randn(args.batch, *size, device=device)
    if device.type == "cuda":
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (args.batch,), device=device)
    steps = {}
    for name, module in (("lowered", lowered), ("reference", reference)):
        if module is not None:
            _, forward, optimizer = prepare(module, device, args.compile)
            steps[name] = make_step(forward, optimizer, x, y, device)
    for step in steps.values():  # warm-up: compilation, autotuning, allocator
        for _ in range(args.warmup):
            step()
    synchronise(device)
    times = {name: [] for name in steps}
    for i in range(args.steps):
        for name in (list(steps) if i % 2 == 0 else list(steps)[::-1]):
            start = time.perf_counter()
            steps[name]()
            synchronise(device)
            times[name].append(time.perf_counter() - start)
    rates = {name: args.batch / statistics.median(t) for name, t in times.items()}
    peak, device_name = peak_bf16(device)
    row = {"network": network, "input": "x".join(map(str, size)), "batch": args.batch,
           "macs_per_image": macs, "lowered_images_per_s": rates["lowered"],
           "reference": reference_name, "reference_images_per_s": rates.get("reference"),
           "ratio": rates["lowered"] / rates["reference"] if "reference" in rates else None,
           "mfu": 6 * macs * rates["lowered"] / peak if peak else None, "device": device_name}
    return row


# ---- DDP scaling ------------------------------------------------------------------------------


def _ddp_worker(rank: int, world: int, args, port: int, results: str) -> None:
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = not args.smoke
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    settings = settings_for("resnet50", args.smoke)
    model = archdsl.load(ROOT / NETWORKS["resnet50"], inputs={"*": (3, args.size, args.size)},
                         **settings).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if cuda else None)
    forward = torch.compile(net) if args.compile else net
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, settings.get("classes", 1000), (args.batch,), device=device)
    step = make_step(forward, optimizer, x, y, device)
    for _ in range(args.warmup):
        step()
    synchronise(device)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronise(device)
    elapsed = time.perf_counter() - start
    if rank == 0:
        Path(results).write_text(json.dumps({"images_per_s": world * args.batch * args.steps / elapsed}))
    dist.destroy_process_group()


def ddp_scaling(args) -> dict:
    if not args.smoke and torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU(s): the DDP run needs 2"}
    import socket
    import torch.multiprocessing as mp
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        for world in (1, 2):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            results = str(Path(folder) / f"{world}.json")
            mp.spawn(_ddp_worker, args=(world, args, port, results), nprocs=world, join=True)
            rates[world] = json.loads(Path(results).read_text())["images_per_s"]
    return {"per_process_batch": args.batch, "one_process_images_per_s": rates[1],
            "two_process_images_per_s": rates[2], "scaling": rates[2] / rates[1]}


def memory_plans(args, device) -> list[dict]:
    """`archdsl stats --train`'s planned peak of one AdamW step against the measured one
    (torch.cuda.max_memory_allocated; the profiler on the CPU), fp32 and autocast, for
    each network at two batch sizes."""
    from archdsl.backends.plan_memory import Setup, plan_memory
    from archdsl.runtime.memory import measure_peak
    amp = "fp16" if device.type == "cuda" else "bf16"
    rows = []
    for network in args.networks.split(","):
        graph = archdsl.compile_file(ROOT / NETWORKS[network],
                                     settings=settings_for(network, args.smoke)).graph
        for batch in ((1, 2) if args.smoke else (32, 128)):
            for precision in ("none", amp):
                plan = plan_memory(graph, Setup(batch=batch, amp=precision,
                                                device=device.type))
                measured = measure_peak(graph, batch, amp=precision, device=device.type)
                rows.append({"network": network, "batch": batch, "amp": precision,
                             "planned_bytes": plan.peak, "measured_bytes": measured,
                             "ratio": plan.peak / measured})
                print(f"memory plan {network}, batch {batch}, {precision}: planned "
                      f"{plan.peak / 2**20:.0f} MiB, measured {measured / 2**20:.0f} MiB, "
                      f"ratio {plan.peak / measured:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny CPU version (small inputs and networks, few steps, no compile)")
    parser.add_argument("--networks", default="resnet50,vit_b_16")
    parser.add_argument("--batch", type=int, default=None, help="per process (default 128; smoke 2)")
    parser.add_argument("--size", type=int, default=None, help="resnet50 input side (224; smoke 32)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5; smoke 1)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", default=None)
    parser.add_argument("--no-ddp", dest="ddp", action="store_false")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    smoke = args.smoke
    args.batch = args.batch or (2 if smoke else 128)
    args.size = args.size or (32 if smoke else 224)
    args.steps = args.steps or (2 if smoke else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 5)
    args.compile = (not smoke) if args.compile is None else args.compile
    if not smoke and not torch.cuda.is_available():
        sys.exit("bench/gpu.py: no CUDA device here; run it on a GPU machine, or try --smoke")
    device = torch.device("cpu" if smoke else "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    start = time.perf_counter()
    rows = []
    for network in args.networks.split(","):
        row = throughput(network, args, device)
        rows.append(row)
        ratio = f"{row['ratio']:.3f}" if row["ratio"] else "n/a"
        reference = (f"{row['reference_images_per_s']:.1f}" if row["reference_images_per_s"]
                     else "n/a")
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a (no bf16 peak known)"
        print(f"{network} {row['input']}, batch {row['batch']}, "
              f"{'bf16' if device.type == 'cuda' else 'fp32'}"
              f"{' + channels_last' if device.type == 'cuda' else ''}"
              f"{' + compile' if args.compile else ''}, {row['device']}: lowered "
              f"{row['lowered_images_per_s']:.1f} images/s, reference ({row['reference']}) "
              f"{reference} images/s, ratio {ratio}, MFU {mfu}", flush=True)
    memory = memory_plans(args, device)
    ddp = ddp_scaling(args) if args.ddp else {"skipped": "--no-ddp"}
    if "skipped" in ddp:
        print(f"DDP scaling: skipped ({ddp['skipped']})")
    else:
        print(f"DDP scaling, resnet50, batch {ddp['per_process_batch']} per process: 1 process "
              f"{ddp['one_process_images_per_s']:.1f} images/s, 2 processes "
              f"{ddp['two_process_images_per_s']:.1f} images/s, scaling {ddp['scaling']:.2f}x")
    wall = time.perf_counter() - start
    print(f"wall {wall:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"throughput": rows, "memory_plan": memory,
                                               "ddp": ddp, "wall_s": wall, "smoke": smoke},
                                              indent=2))


if __name__ == "__main__":
    main()
