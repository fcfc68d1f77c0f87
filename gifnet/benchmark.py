"""Speed and memory of fusion and training (a benchmark, not a test).

    gifnet benchmark mode=fuse [sizes=[256x256,512x512,1024x1280,2160x3840]] [repeat=2]
    gifnet benchmark mode=train [steps=3] [batch=8] [crop=128] [plain=true]
    gifnet benchmark mode=profile [tasks=[official]] [precisions=[fp32]] [top=10]
    gifnet benchmark mode=metrics [golden_set=vifb] [workers=2]

Options: configs/benchmark/benchmark.yaml (``gifnet benchmark --help``).

Every configuration runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``, which includes
the ~0.4 GB of the Python + torch runtime) is its own. Fusion paths:

* ``optimised``: :func:`~gifnet.inference.engine.fuse_tensors` — the band-wise engine (:mod:`gifnet.inference.banded`),
  fp32 or bf16.
* ``full-frame``: ``fuse_tensors(model, a, b, engine="full")`` — the whole image through the stage modules at once
  (``inference_mode``, channels-last, only what the output needs; bf16 through autocast).
* ``straightforward``: what a plain port does — autograd left on, both CFGM streams run to the end (the
  discarded one included) and the R-Dec computed, as the released test script's model call does.

Training rows time one iteration (every step of the protocol on one batch). ``plain=true`` adds, in the same
invocation, the in-project reference of a plain port's training step: the same step in the NCHW memory format
with glibc's default allocator (the two process-level choices a port of the released code does not make), so
every speed-up is reported against a reference measured beside it. ``profile`` runs the training case under
``torch.profiler`` and prints the operators with the largest self CPU time, split by input shapes.

GFLOP/s use the model's measured cost of the inference path (103.1 GFLOP at 256×256, linear in pixels:
1.573 MFLOP per pixel; GIFNET.md section 1), for both paths, so they compare useful work per second.
"""

from __future__ import annotations

import contextlib
import json
import platform
import resource
import subprocess
import sys
import time
from types import SimpleNamespace

from gifnet.inference.engine import fuse_tensors

FLOP_PER_PIXEL = 103.1e9 / (256 * 256)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_fuse_case(
    h: int, w: int, path: str, precision: str, device: str, repeat: int, keep_freed_memory: bool = True
) -> dict:
    import torch

    from gifnet.models import GIFNet

    torch.manual_seed(0)
    model = GIFNet().to(device).eval()
    a = torch.rand(1, 1, h, w, device=device)
    b = torch.rand(1, 1, h, w, device=device)

    def once():
        if path == "optimised":
            return fuse_tensors(model, a, b, precision=precision)
        if path == "full-frame":
            return fuse_tensors(model, a, b, precision=precision, engine="full")
        f = model.encode(a, b)
        out = model.decode(f, model.cfgm(f, f, "dp"))
        model.cfgm(f, f, "mm")  # the other stream to its end (discarded by the released code too)
        model.reconstruct(f)
        return out

    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        once()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    best = min(times)
    res = {
        "size": f"{w}x{h}", "path": path, "precision": precision, "device": device, "seconds": best,
        "gflops": FLOP_PER_PIXEL * h * w / best / 1e9,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }  # fmt: skip
    if device.startswith("cuda"):
        res["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return res


def run_train_case(
    task: str, steps: int, batch: int, crop: int, precision: str, weighting: str, keep_freed_memory: bool = True,
    channels_last: bool = True, profile_top: int = 0,
) -> dict:
    """Time ``steps`` training iterations after one warm-up iteration (fresh trainer, random batches).

    With ``profile_top`` > 0 the timed iterations run under :mod:`torch.profiler` and the result carries the
    operators with the largest self CPU time, split by input shapes (``profile``); the profiler's overhead
    makes ``seconds_per_iter`` of such a case a little slower than an unprofiled one.
    """
    import tempfile

    import torch

    from gifnet.config import compose
    from gifnet.engine.trainer import Trainer

    overrides = [
        f"task={task}", f"train.batch_size={batch}", f"data.crop_size={crop}", f"precision={precision}",
        f"loss.ivif_weighting={weighting}", "train.tensorboard=false", "train.progress=false",
        f"keep_freed_memory={str(keep_freed_memory).lower()}", f"channels_last={str(channels_last).lower()}",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        if weighting == "densenet":
            # Timing only: a randomly initialised DenseNet-121 costs what the ImageNet one costs.
            from torchvision.models import densenet121

            torch.save(densenet121(weights=None).state_dict(), f"{tmp}/densenet121-random.pth")
            overrides.append(f"loss.densenet_weights={tmp}/densenet121-random.pth")
        cfg = compose("train", overrides)
        t = Trainer(cfg, tmp)
        it = iter(t.loader)
        batches = [next(it) for _ in range(steps + 1)]
        first, _ = t.train_iteration(batches[0])  # warm-up
        trace = [first]
        last = {}
        prof = None
        if profile_top:
            from torch.profiler import ProfilerActivity, profile

            prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
        with prof or contextlib.nullcontext():
            t0 = time.perf_counter()
            for bt in batches[1:]:
                last, _ = t.train_iteration(bt)
                trace.append(last)
            dt = (time.perf_counter() - t0) / steps
    n_steps = len(t.steps)
    # training step ≈ 3× the forward cost (forward + backward) of the trained path, per optimiser step
    flop = 3 * FLOP_PER_PIXEL * crop * crop * batch * n_steps
    return {
        "task": task, "precision": precision, "batch": batch, "crop": crop, "steps_per_iter": n_steps,
        "seconds_per_iter": dt, "iters_per_s": 1 / dt, "approx_gflops": flop / dt / 1e9,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "losses": {k: round(v, 5) for k, v in last.items() if k.endswith("/total")},
        "loss_trace": [{k: v for k, v in sc.items() if k.endswith("/total")} for sc in trace],
        "threads": torch.get_num_threads(), "channels_last": channels_last,
        **({"profile": _top_operators(prof, profile_top, steps)} if prof is not None else {}),
    }  # fmt: skip


def _top_operators(prof, top: int, iterations: int) -> dict:
    """The ``top`` operators by self CPU time (split by input shapes), with their share of all self time."""
    rows = [e for e in prof.key_averages(group_by_input_shape=True) if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in rows)
    rows.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    out = []
    for e in rows[:top]:
        shapes = [list(s) for s in (e.input_shapes or []) if s][:3]
        out.append({
            "operator": e.key, "shapes": shapes, "calls_per_iter": e.count / iterations,
            "self_ms_per_iter": e.self_cpu_time_total / 1e3 / iterations,
            "share": e.self_cpu_time_total / total,
        })  # fmt: skip
    return {"total_self_ms_per_iter": total / 1e3 / iterations, "top": out}


def _subprocess(kind: str, payload: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "gifnet.benchmark", "_case", kind, json.dumps(payload)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**payload, "error": f"timeout after {timeout:.0f} s"}
    if r.returncode != 0:
        tail = (r.stderr or "").strip().splitlines()[-1:] or [f"exit code {r.returncode}"]
        return {**payload, "error": tail[0][:200]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _compare_losses(results: list[dict]) -> None:
    """bf16 vs fp32 loss terms of the same iterations (same seed, same batches, same initial weights)."""
    for r16 in results:
        r32 = next((r for r in results if r.get("task") == r16.get("task") and r.get("precision") == "fp32"), None)
        if r16.get("precision") != "bf16" or r32 is None or "loss_trace" not in r16 or "loss_trace" not in r32:
            continue
        worst = max(
            abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
            for a, b in zip(r16["loss_trace"], r32["loss_trace"], strict=True)
            for k in b
        )
        print(f"# {r16['task']}: bf16 vs fp32 loss terms over {len(r32['loss_trace'])} iterations (same seed and "
              f"batches): max relative difference {worst:.2e}")


def _train_payload(args, task: str, precision: str, **extra) -> dict:
    """Arguments of one training case (:func:`run_train_case`) from the benchmark config; ``extra`` overrides."""
    return {"task": task, "steps": args.steps, "batch": args.batch, "crop": args.crop, "precision": precision,
            "weighting": args.weighting, "keep_freed_memory": args.malloc == "keep", **extra}  # fmt: skip


def _case_main(argv: list[str]) -> int:
    """``python -m gifnet.benchmark _case KIND JSON``: one case in this (fresh) process; prints its JSON."""
    from gifnet.runtime import keep_freed_memory

    kind, payload = argv[1], json.loads(argv[2])
    if payload.get("keep_freed_memory", True):
        keep_freed_memory()  # as the fuse and train commands do
    fn = run_fuse_case if kind == "fuse" else run_train_case
    print(json.dumps(fn(**payload)))
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"sizes: {text!r} is not HxW (e.g. 480x640)") from None
    return h, w


def run_benchmark(cfg) -> int:
    """``gifnet benchmark``: the rows of ``cfg.mode`` (fuse | train | profile | metrics) printed as a table."""
    from omegaconf import OmegaConf

    args = OmegaConf.to_container(cfg, resolve=True)
    mode = args["mode"]
    if mode not in ("fuse", "train", "profile", "metrics"):
        raise ValueError(f"mode must be fuse, train, profile or metrics, got {mode!r}")
    if mode == "metrics":
        return run_metrics_benchmark(args["paths"]["shared"], args["golden_set"], int(args["workers"]))
    args = SimpleNamespace(**{k: v for k, v in args.items() if k != "paths"})
    sizes = [_size(s) for s in args.sizes]
    import torch

    devices = [d for d in args.devices if d == "cpu" or torch.cuda.is_available()]
    print(f"# machine: {_cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    results = []
    if mode == "fuse":
        print("| device | size (W×H) | path | precision | seconds | GFLOP/s | peak RSS GB |")
        print("|---|---|---|---|---|---|---|")
        for dev in devices:
            for h, w in sizes:
                for path in args.fusion_paths:
                    precs = list(args.precisions) if path != "straightforward" else ["fp32"]
                    for prec in precs:
                        if path == "straightforward" and h * w > args.max_straightforward_pixels:
                            continue
                        r = _subprocess("fuse", {"h": h, "w": w, "path": path, "precision": prec, "device": dev,
                                                 "repeat": args.repeat, "keep_freed_memory": args.malloc == "keep"},
                                       args.timeout)
                        results.append(r)
                        if "error" in r:
                            print(f"| {dev} | {w}×{h} | {path} | {prec} | error: {r['error']} | | |")
                        else:
                            print(f"| {dev} | {w}×{h} | {path} | {prec} | {r['seconds']:.2f} | {r['gflops']:.1f} "
                                  f"| {r['peak_rss_gb']:.2f} |", flush=True)
    elif mode == "profile":
        for task in args.tasks:
            for prec in args.precisions:
                r = _subprocess("train", _train_payload(args, task, prec, profile_top=args.top), args.timeout)
                results.append(r)
                if "error" in r:
                    print(f"# {task} {prec}: error: {r['error']}")
                    continue
                prof = r["profile"]
                print(f"\n# {task}, {prec}, batch {r['batch']} × {r['crop']}², {r['steps_per_iter']} steps per "
                      f"iteration: {r['seconds_per_iter']:.2f} s/iter under the profiler, self CPU time "
                      f"{prof['total_self_ms_per_iter']:.0f} ms per iteration (both threads' work counted once)")
                print("| # | operator | input shapes | calls/iter | self ms/iter | share |")
                print("|---|---|---|---|---|---|")
                for i, op in enumerate(prof["top"], 1):
                    shapes = ", ".join("×".join(str(d) for d in sh) for sh in op["shapes"])
                    print(f"| {i} | `{op['operator']}` | {shapes} | {op['calls_per_iter']:g} | "
                          f"{op['self_ms_per_iter']:.0f} | {100 * op['share']:.1f} % |", flush=True)
    else:
        print("| task | precision | variant | batch × crop | steps/iter | s/iter | it/s | ≈GFLOP/s | peak RSS GB |")
        print("|---|---|---|---|---|---|---|---|---|")
        variants = {"gifnet": {}} | ({"plain": {"keep_freed_memory": False, "channels_last": False}} if args.plain
                                     else {})
        for task in args.tasks:
            for prec in args.precisions:
                rows = {}
                for name, extra in variants.items():
                    r = _subprocess("train", _train_payload(args, task, prec, **extra), args.timeout)
                    r["variant"] = name
                    rows[name] = r
                    results.append(r)
                    if "error" in r:
                        print(f"| {task} | {prec} | {name} | error: {r['error']} |")
                    else:
                        print(f"| {task} | {prec} | {name} | {r['batch']} × {r['crop']}² | {r['steps_per_iter']} | "
                              f"{r['seconds_per_iter']:.2f} | {r['iters_per_s']:.3f} | {r['approx_gflops']:.1f} | "
                              f"{r['peak_rss_gb']:.2f} |", flush=True)
                plain, ours = rows.get("plain"), rows["gifnet"]
                if plain and "error" not in plain and "error" not in ours:
                    print(f"# {task} {prec}: gifnet is {plain['seconds_per_iter'] / ours['seconds_per_iter']:.2f}× "
                          "the plain reference measured beside it")
        _compare_losses([r for r in results if r.get("variant") == "gifnet"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def _metric_job(job: tuple[str, str, str, str, list[str]]) -> tuple[str, str, dict[str, float]]:
    from pathlib import Path

    from gifnet.metrics import compute
    from gifnet.metrics.golden import GOLDEN_SETS, load_triplet

    shared, golden_set, image, method, metrics = job
    a, b, f = load_triplet(Path(shared), golden_set, image, method)
    return image, method, compute(GOLDEN_SETS[golden_set][0], a, b, f, metrics)


def run_metrics_benchmark(shared: str, golden_set: str = "vifb", workers: int = 2) -> int:
    """Time a whole golden set (VIFB: 105 fused images x 13 metrics = 1,365 values) and check every value against
    the MATLAB golden CSV (METRICS.md tolerance). Returns 1 if any value mismatches, 2 without the golden data."""
    import collections
    import os
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from gifnet.metrics.golden import GOLDEN_SETS, matches, read_rows
    from gifnet.paths import resolve_path

    root = resolve_path(shared)
    if golden_set not in GOLDEN_SETS:
        raise ValueError(f"golden_set must be one of {sorted(GOLDEN_SETS)}, got {golden_set!r}")
    if not (root / "data" / "metrics_golden").is_dir():
        print(f"golden data not found under {root}", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per metric process
    groups: dict[tuple[str, str], dict[str, float]] = collections.defaultdict(dict)
    for r in read_rows(Path(root), golden_set):
        groups[(r.image, r.method)][r.metric] = r.value
    jobs = [(str(root), golden_set, im, me, sorted(v)) for (im, me), v in sorted(groups.items())]
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            results = list(ex.map(_metric_job, jobs, chunksize=1))
    else:
        results = [_metric_job(j) for j in jobs]
    elapsed = time.perf_counter() - t0
    n_ok = n_all = 0
    for image, method, vals in results:
        for metric, x in vals.items():
            n_all += 1
            if matches(x, groups[(image, method)][metric]):
                n_ok += 1
            else:
                print(f"MISMATCH {image} {method} {metric}: {x!r} vs {groups[(image, method)][metric]!r}")
    print(f"# machine: {_cpu_name()}")
    print(f"{golden_set}: {n_all} values for {len(jobs)} fused images in {elapsed:.2f} s ({workers} worker(s)); "
          f"{n_ok}/{n_all} match the golden values")
    return 0 if n_ok == n_all else 1


if __name__ == "__main__":
    sys.exit(_case_main(sys.argv[1:]))
