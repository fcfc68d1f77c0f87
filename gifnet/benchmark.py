"""Speed and memory of fusion and training (a benchmark, not a test).

    gifnet benchmark mode=fuse [sizes=[256x256,512x512,1024x1280,2160x3840]] [repeat=2]
    gifnet benchmark mode=train [steps=3] [batch=8] [crop=128] [references=[released,plain]] [rounds=2]
    gifnet benchmark mode=train layouts=[native,auto] [tasks=[official]] [precisions=[fp32]]
    gifnet benchmark mode=process [process_sizes=[480x640]] [repeat=3]
    gifnet benchmark mode=profile [tasks=[official]] [precisions=[fp32]] [top=10]
    gifnet benchmark mode=metrics [golden_set=vifb] [workers=2]

Options: configs/benchmark/benchmark.yaml (``gifnet benchmark --help``).

Every configuration runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``, which includes
the ~0.4 GB of the Python + torch runtime) is its own. Fusion paths:

* ``optimised``: :func:`~gifnet.inference.engine.fuse_tensors` — the band-wise engine (:mod:`gifnet.inference.banded`),
  fp32 or bf16.
* ``full-frame``: ``fuse_tensors(model, a, b, engine="full")`` — the whole image through the stage modules at once
  (``inference_mode``, channels-last, only what the output needs; bf16 through autocast).
* ``straightforward``: the released test script's model call (:func:`gifnet.reference.released_fuse`: under
  ``no_grad``, both CFGM streams through every block, the released window attention), NCHW.

Training rows time one iteration (every step of the protocol on one batch). ``references`` adds in-project
references timed in the same invocation, so that every speed-up is reported against a figure measured beside it
(``rounds`` > 1 repeats the cases with the order reversed every other round and reports each round's ratio and
their median; every row shows an sgemm probe of the machine's speed taken just before it, :func:`sgemm_rate`):

* ``released``: the released training step's computation (:mod:`gifnet.reference`: both CFGM streams to
  the end, ``cat(QK, V)`` windows, explicit attention, RLN statistics by convolution, the literal C×C DenseNet
  kernel), NCHW, glibc's default allocator, fp32 — what a port of the released train.py runs;
* ``plain``: gifnet's own step with only the two process-level choices undone (NCHW, glibc's allocator), per
  precision.

``process`` times whole fusion processes of one gray pair, start-up included, alternating: ``gifnet fuse`` with
the released checkpoint and the released-style process (:func:`gifnet.reference.fuse_process`), and checks that
both wrote the same image (up to the released script's truncation). ``profile`` runs the training case under
``torch.profiler`` (``profiler=torch``) or under a dispatch-level timer (``profiler=dispatch``, the default:
wall time of every ATen call made at the top of the dispatcher, forward and backward, whose sum is the
iteration's time) and prints the operators with the largest time, split by input shapes (and, for the dispatch
timer, layouts and dtypes).

GFLOP/s use the model's measured cost of the inference path (103.1 GFLOP at 256×256, linear in pixels:
1.573 MFLOP per pixel; GIFNET.md section 1), for both paths, so they compare useful work per second.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import platform
import resource
import statistics
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


def sgemm_rate(n: int = 2048, repeat: int = 5) -> float:
    """This process's fp32 matrix-product rate in GFLOP/s (best of ``repeat`` ``n``³ products, torch's threads).

    A probe of the machine's speed at one moment: virtual machines drift (the same product ran at 130 and at
    65 GFLOP/s on one 2-core VM within a day, docs/performance.md), so the train rows print it beside each case
    and a ratio between two cases is only read where the probe did not move between them.
    """
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up (MKL's buffers, the threads)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def run_fuse_case(
    h: int, w: int, path: str, precision: str, device: str, repeat: int, keep_freed_memory: bool = True
) -> dict:
    import torch

    from gifnet.models import GIFNet
    from gifnet.reference import released_fuse

    torch.manual_seed(0)
    model = GIFNet().to(device).eval()
    a = torch.rand(1, 1, h, w, device=device)
    b = torch.rand(1, 1, h, w, device=device)

    def once():
        if path == "optimised":
            return fuse_tensors(model, a, b, precision=precision)
        if path == "full-frame":
            return fuse_tensors(model, a, b, precision=precision, engine="full")
        return released_fuse(model, a, b)

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


PROFILERS = ("dispatch", "torch")


def _check_profiler(name: str) -> None:
    if name not in PROFILERS:
        raise ValueError(f"profiler must be one of {list(PROFILERS)}, got {name!r}")


def _describe_input(t) -> str | None:
    """``8×98×128×128 CL bf16``: shape, layout (C contiguous, CL channels-last, S other strides) and dtype."""
    import torch

    if not isinstance(t, torch.Tensor):
        return None
    if t.is_contiguous():
        layout = "C"
    elif t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        layout = "CL"
    else:
        layout = "S"
    dtype = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}
    return f"{'×'.join(map(str, t.shape)) or 'scalar'} {layout} {dtype.get(t.dtype, str(t.dtype)[6:])}"


def _dispatch_timer():
    """A ``TorchDispatchMode`` that adds up the wall time of every ATen call it sees, keyed by (operator, inputs).

    It sits below autograd, so it sees the forward and the backward kernels that run on this thread (on CPU the
    autograd engine runs the backward there), and calls made inside a kernel are not seen again: the times do
    not overlap and add up to the time spent in ATen. Unlike ``torch.profiler`` it adds only a Python call per
    operator; on the 2026-12-04 machine (docs/performance.md) the profiler stretched an iteration from 10.1 to
    15.1 s and charged 973 ms to an element-wise op that takes 49 ms.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpTimer(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.stats: dict[tuple[str, tuple[str, ...]], list] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            t0 = time.perf_counter()
            out = func(*args, **(kwargs or {}))
            dt = time.perf_counter() - t0
            key = (func.__name__.split(".")[0], tuple(d for d in map(_describe_input, args) if d)[:3])
            entry = self.stats.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += dt
            return out

        def top(self, n: int, iterations: int) -> dict:
            total = sum(sec for _, sec in self.stats.values())
            rows = sorted(self.stats.items(), key=lambda kv: kv[1][1], reverse=True)[:n]
            return {
                "total_self_ms_per_iter": total * 1e3 / iterations,
                "top": [{"operator": f"aten::{name}", "shapes": [], "inputs": list(inputs),
                         "calls_per_iter": calls / iterations, "self_ms_per_iter": sec * 1e3 / iterations,
                         "share": sec / total} for (name, inputs), (calls, sec) in rows],
            }  # fmt: skip

    return OpTimer()


def run_train_case(
    task: str, steps: int, batch: int, crop: int, precision: str, weighting: str, keep_freed_memory: bool = True,
    channels_last: bool = True, profile_top: int = 0, reference: str | None = None, layouts: list[str] | None = None,
    profiler: str = "dispatch",
) -> dict:
    """Time ``steps`` training iterations after one warm-up iteration (fresh trainer, random batches).

    With ``profile_top`` > 0 the timed iterations run under ``profiler`` — the dispatch-level timer
    (:func:`_dispatch_timer`) or :mod:`torch.profiler` — and the result carries the operators with the largest
    time, split by inputs (``profile``); either makes ``seconds_per_iter`` of such a case slower than an
    unprofiled one (the timer a little, the profiler by up to half on the 2026-12-04 machine). ``reference="released"``
    times :func:`gifnet.reference.released_iteration` on the same trainer's model, batches and optimiser
    instead of gifnet's iteration (with the literal DenseNet kernel). ``layouts`` (values of
    :data:`gifnet.models.conv.WEIGHT_GRAD_LAYOUT`) times the same ``steps`` batches once per layout, the layouts
    alternating iteration by iteration in this one process (order reversed every other round), so that a lever
    smaller than the spread between processes can still be read; the result carries ``layout_seconds``.
    """
    import tempfile

    import torch

    from gifnet.config import compose
    from gifnet.engine.trainer import Trainer

    if layouts and profile_top:
        raise ValueError("a training case is either profiled or times layouts, not both")
    _check_profiler(profiler)

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
        iteration = _released_iteration(t) if reference == "released" else t.train_iteration
        batches = []
        while len(batches) < steps + 1:  # the demo pool may hold fewer batches: go round it again
            before = len(batches)
            batches.extend(itertools.islice(t.loader, steps + 1 - len(batches)))
            if len(batches) == before:
                raise RuntimeError("the training loader yields no batch")
        first, _ = iteration(batches[0])  # warm-up
        trace = [first]
        last = {}
        prof = None
        if profile_top and profiler == "torch":
            from torch.profiler import ProfilerActivity, profile

            prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
        elif profile_top:
            prof = _dispatch_timer()
        layout_seconds = None
        if layouts:
            import gifnet.models.conv as conv_mod

            layout_seconds = {name: [] for name in layouts}
            saved = conv_mod.WEIGHT_GRAD_LAYOUT
            try:
                for i, bt in enumerate(batches[1:]):
                    for name in layouts if i % 2 == 0 else layouts[::-1]:
                        conv_mod.WEIGHT_GRAD_LAYOUT = name
                        t0 = time.perf_counter()
                        last, _ = iteration(bt)
                        layout_seconds[name].append(time.perf_counter() - t0)
                        trace.append(last)
            finally:
                conv_mod.WEIGHT_GRAD_LAYOUT = saved
            dt = sum(map(sum, layout_seconds.values())) / (steps * len(layouts))
        else:
            with prof or contextlib.nullcontext():
                t0 = time.perf_counter()
                for bt in batches[1:]:
                    last, _ = iteration(bt)
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
        **({"profile": _top_operators(prof, profile_top, steps), "profiler": profiler} if prof is not None else {}),
        **({"layout_seconds": layout_seconds} if layout_seconds is not None else {}),
    }  # fmt: skip


def _released_iteration(trainer):
    """``batch -> (scalars, None)``: the released step's computation on ``trainer``'s model and optimiser."""
    from gifnet.reference import check_released_semantics, released_iteration

    check_released_semantics(trainer.model)
    if hasattr(trainer.weighting, "literal"):
        trainer.weighting.literal = True  # the released C×C kernel

    def iteration(batch):
        batch = {k: v.to(trainer.device) for k, v in batch.items()}
        return released_iteration(trainer.model, trainer.optimizer, trainer.steps, batch, trainer.loss_cfg.msssim,
                                  trainer.weighting), None

    return iteration


def _top_operators(prof, top: int, iterations: int) -> dict:
    """The ``top`` operators by self CPU time (split by input shapes), with their share of all self time."""
    if hasattr(prof, "top"):  # the dispatch-level timer
        return prof.top(top, iterations)
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


def _max_relative_difference(x: dict, y: dict, skip: tuple[str, ...] = ()) -> float:
    """Largest relative difference between two cases' loss terms over the same iterations.

    ``skip``: terms whose name starts with one of these prefixes are left out (``nan`` if none is left).
    """
    diffs = [
        abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
        for a, b in zip(x["loss_trace"], y["loss_trace"], strict=True)
        for k in b
        if not k.startswith(skip)
    ]
    return max(diffs) if diffs else float("nan")


def _compare_losses(rows: dict[tuple[str, str], dict], task: str, weighting: str = "densenet") -> None:
    """Loss terms of the same iterations (same seed, batches and initial weights): bf16 vs fp32, and the released
    step's computation vs gifnet's (both fp32).

    With the randomly initialised DenseNet (``weighting=densenet``, timing only) the IVIF weights are a softmax
    of two huge feature energies, which round-off differing between processes moves by orders of magnitude
    (``w_ir`` 2.8e-23 in one process, 1.0e-3 in the next for the same batch; docs/performance.md): the IVIF term
    then says nothing about bf16, so the line also gives the difference without it and says so.
    """
    ours32 = rows.get(("gifnet", "fp32"))
    if ours32 is None or "loss_trace" not in ours32:
        return
    n = len(ours32["loss_trace"])
    labels = {("gifnet", "bf16"): "bf16 vs fp32", ("released", "fp32"): "released-step reference vs gifnet"}
    for key, label in labels.items():
        other = rows.get(key)
        if other is not None and "loss_trace" in other:
            line = (f"# {task}: {label} loss terms over {n} iterations (same seed and batches): max relative "
                    f"difference {_max_relative_difference(other, ours32):.2e}")
            if weighting == "densenet":
                line += (f"; {_max_relative_difference(other, ours32, skip=('ivif/',)):.2e} without the IVIF step "
                         "(the random-weight DenseNet makes the IVIF weights differ between processes; "
                         "weighting=gradient compares all steps)")
            print(line)


def _train_payload(args, task: str, precision: str, **extra) -> dict:
    """Arguments of one training case (:func:`run_train_case`) from the benchmark config; ``extra`` overrides."""
    return {"task": task, "steps": args.steps, "batch": args.batch, "crop": args.crop, "precision": precision,
            "weighting": args.weighting, "keep_freed_memory": args.malloc == "keep", **extra}  # fmt: skip


#: Training variants: gifnet's step and the in-project references (module docstring).
TRAIN_VARIANTS = {
    "gifnet": {},
    "plain": {"keep_freed_memory": False, "channels_last": False},
    "released": {"keep_freed_memory": False, "channels_last": False, "reference": "released"},
}
REFERENCES = ("released", "plain")


def _train_cases(precisions: list[str], references: list[str]) -> list[tuple[str, str]]:
    """(variant, precision) in the order they run: per precision gifnet then its plain reference; the released
    reference once, in fp32 (the released code has no other precision), after gifnet's fp32 row."""
    bad = [r for r in references if r not in REFERENCES]
    if bad:
        raise ValueError(f"references: unknown {bad}; choose from {list(REFERENCES)}")
    cases = []
    for prec in precisions:
        cases.append(("gifnet", prec))
        if "plain" in references:
            cases.append(("plain", prec))
        if "released" in references and prec == "fp32":
            cases.append(("released", "fp32"))
    if "released" in references and "fp32" not in precisions:
        cases.append(("released", "fp32"))
    return cases


def _check_layouts(layouts: list[str]) -> None:
    from gifnet.models.conv import _LAYOUTS

    bad = [x for x in layouts if x not in _LAYOUTS]
    if bad:
        raise ValueError(f"layouts: unknown {bad}; choose from {list(_LAYOUTS)}")
    if len(set(layouts)) != len(layouts):
        raise ValueError(f"layouts: each at most once, got {layouts}")


def _check_rounds(rounds) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    return rounds


def _speedups(per_round: list[dict[tuple[str, str], dict]]) -> dict[tuple[str, str], list[float]]:
    """gifnet's speed-up over each reference, one ratio per round: ``{(gifnet precision, reference): [...]}``.

    The plain reference is compared in the same precision, the released one (fp32 only) with every precision.
    A round whose gifnet or reference case failed gives no ratio.
    """
    out: dict[tuple[str, str], list[float]] = {}
    for rows in per_round:
        ok = {k: r["seconds_per_iter"] for k, r in rows.items() if "error" not in r}
        for (name, prec), sec in ok.items():
            if name != "gifnet":
                continue
            for ref, key in (("plain", ("plain", prec)), ("released", ("released", "fp32"))):
                if key in ok:
                    out.setdefault((prec, ref), []).append(ok[key] / sec)
    return out


def _print_speedups(per_round: list[dict[tuple[str, str], dict]], task: str) -> None:
    """gifnet's s/iteration against each reference measured beside it (the median over rounds, and each round)."""
    labels = {"plain": "the plain reference ({prec})", "released": "the released-step reference (fp32)"}
    by_prec: dict[str, list[str]] = {}
    for (prec, ref), ratios in _speedups(per_round).items():
        text = f"{statistics.median(ratios):.2f}× " + labels[ref].format(prec=prec)
        if len(ratios) > 1:
            text += f" (median of {len(ratios)} rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
        by_prec.setdefault(prec, []).append(text)
    for prec, parts in by_prec.items():
        print(f"# {task} {prec}: gifnet is " + ", ".join(parts) + " measured beside it")


#: Spread of the sgemm probe between the cases of one task above which the benchmark warns that ratios
#: between them mix the machine's drift with the code's speed (back-to-back probes on a quiet 2-core VM already
#: spread by up to 1.22×, 2026-12-07).
DRIFT_WARNING = 1.30


def _print_drift(rows: list[dict], task: str, rounds: int = 1) -> None:
    """The sgemm probe's range over one task's cases, with a warning when the machine's speed moved."""
    rates = [r["sgemm_gflops_before"] for r in rows if "sgemm_gflops_before" in r]
    if len(rates) < 2:
        return
    lo, hi = min(rates), max(rates)
    line = f"# {task}: sgemm probe {lo:.0f}–{hi:.0f} GFLOP/s before the cases"
    if hi > DRIFT_WARNING * lo:
        line += (f" — the machine's speed moved by {hi / lo:.2f}× during the comparison: ratios between cases "
                 "mix that drift with the code's speed")
        line += (" (the median over rounds evens it out only in part: read the rounds' spread)" if rounds > 1
                 else " (rounds=3 or more: each round's ratio and their median)")
    print(line)


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
    if mode not in ("fuse", "train", "profile", "metrics", "process"):
        raise ValueError(f"mode must be fuse, train, profile, metrics or process, got {mode!r}")
    _train_cases(["fp32"], list(args["references"]))  # a bad reference name is an error before anything runs
    rounds = _check_rounds(args["rounds"])
    _check_layouts(list(args["layouts"]))
    _check_profiler(args["profiler"])
    if mode == "metrics":
        return run_metrics_benchmark(args["paths"]["shared"], args["golden_set"], int(args["workers"]))
    if mode == "process":
        return run_process_benchmark(args["checkpoint"], [_size(s) for s in args["process_sizes"]],
                                     int(args["repeat"]), float(args["timeout"]))
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
                r = _subprocess("train", _train_payload(args, task, prec, profile_top=args.top,
                                                        profiler=args.profiler), args.timeout)
                results.append(r)
                if "error" in r:
                    print(f"# {task} {prec}: error: {r['error']}")
                    continue
                prof = r["profile"]
                total = prof["total_self_ms_per_iter"]
                detail = (f"under torch.profiler, self CPU time {total:.0f} ms per iteration (both threads' work "
                          "counted once)" if r["profiler"] == "torch" else
                          f"under the dispatch timer, of which {total:.0f} ms in ATen operators (wall time; inputs: "
                          "shape, layout C/CL/S, dtype)")
                print(f"\n# {task}, {prec}, batch {r['batch']} × {r['crop']}², {r['steps_per_iter']} steps per "
                      f"iteration: {r['seconds_per_iter']:.2f} s/iter {detail}")
                print("| # | operator | inputs | calls/iter | ms/iter | share |")
                print("|---|---|---|---|---|---|")
                for i, op in enumerate(prof["top"], 1):
                    shapes = ", ".join(op.get("inputs") or ["×".join(str(d) for d in sh) for sh in op["shapes"]])
                    print(f"| {i} | `{op['operator']}` | {shapes} | {op['calls_per_iter']:g} | "
                          f"{op['self_ms_per_iter']:.0f} | {100 * op['share']:.1f} % |", flush=True)
    elif args.layouts:
        print("| task | precision | weight-gradient layout | batch × crop | steps/iter | s/iter (each iteration) | "
              "mean s/iter |")
        print("|---|---|---|---|---|---|---|")
        for task in args.tasks:
            for prec in args.precisions:
                r = _subprocess("train", _train_payload(args, task, prec, layouts=list(args.layouts)), args.timeout)
                results.append(r)
                if "error" in r:
                    print(f"| {task} | {prec} | {', '.join(args.layouts)} | error: {r['error']} |")
                    continue
                means = {}
                for name, secs in r["layout_seconds"].items():
                    means[name] = sum(secs) / len(secs)
                    print(f"| {task} | {prec} | {name} | {r['batch']} × {r['crop']}² | {r['steps_per_iter']} | "
                          f"{' '.join(f'{x:.2f}' for x in secs)} | {means[name]:.2f} |", flush=True)
                first = args.layouts[0]
                for name in args.layouts[1:]:
                    print(f"# {task} {prec}: {first} / {name} = {means[first] / means[name]:.3f} "
                          "(iterations alternating in one process)")
    else:
        print("| task | precision | variant | round | batch × crop | steps/iter | s/iter | it/s | ≈GFLOP/s | "
              "sgemm GFLOP/s before | peak RSS GB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for task in args.tasks:
            cases = _train_cases(args.precisions, args.references)
            per_round: list[dict[tuple[str, str], dict]] = []
            for rnd in range(rounds):
                rows: dict[tuple[str, str], dict] = {}
                for name, prec in cases if rnd % 2 == 0 else cases[::-1]:  # ABBA: drift cancels in the median
                    probe = sgemm_rate()
                    r = _subprocess("train", _train_payload(args, task, prec, **TRAIN_VARIANTS[name]), args.timeout)
                    r.update(variant=name, round=rnd + 1, sgemm_gflops_before=probe)
                    rows[(name, prec)] = r
                    results.append(r)
                    if "error" in r:
                        print(f"| {task} | {prec} | {name} | {rnd + 1} | error: {r['error']} |")
                    else:
                        print(f"| {task} | {prec} | {name} | {rnd + 1} | {r['batch']} × {r['crop']}² | "
                              f"{r['steps_per_iter']} | {r['seconds_per_iter']:.2f} | {r['iters_per_s']:.3f} | "
                              f"{r['approx_gflops']:.1f} | {probe:.0f} | {r['peak_rss_gb']:.2f} |", flush=True)
                per_round.append(rows)
            _print_speedups(per_round, task)
            _print_drift([r for rows in per_round for r in rows.values()], task, rounds)
            _compare_losses(per_round[0], task, args.weighting)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def _timed_process(cmd: list[str], timeout: float, log) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one child process; raises if it fails or runs past ``timeout``."""
    import os

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{cmd[:2]}: timeout after {timeout:.0f} s")
        time.sleep(0.005)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])}: exit code {proc.returncode} (stderr in {log.name})")
    return seconds, usage.ru_maxrss / 2**20


def run_process_benchmark(checkpoint: str, sizes: list[tuple[int, int]], repeat: int, timeout: float) -> int:
    """Whole fusion processes of one random gray pair per size: ``gifnet fuse`` and the released-style process
    (:func:`gifnet.reference.fuse_process`), alternating ``repeat`` times. Returns 2 without the checkpoint."""
    import shutil
    import tempfile
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from gifnet.paths import resolve_path

    ckpt = resolve_path(checkpoint)
    if not ckpt.is_file():
        print(f"checkpoint not found: {ckpt} (mode=process fuses with the released Final.model)", file=sys.stderr)
        return 2
    gifnet_cmd = shutil.which("gifnet") or str(Path(sys.executable).with_name("gifnet"))
    print(f"# machine: {_cpu_name()}; whole processes, start-up included, alternating; checkpoint {ckpt.name}")
    print("| size (W×H) | process | seconds (each run) | mean | peak RSS GB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp_dir, open(Path(tmp_dir) / "stderr.log", "w") as log:
        tmp = Path(tmp_dir)
        for h, w in sizes:
            rng = np.random.default_rng(0)
            a, b = tmp / f"a_{w}x{h}.png", tmp / f"b_{w}x{h}.png"
            for path in (a, b):
                Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(path)
            outs = {"gifnet fuse": tmp / "gifnet", "released-style": tmp / f"released_{w}x{h}.png"}
            cmds = {
                "gifnet fuse": [gifnet_cmd, "fuse", f"checkpoint={ckpt}", f"input.a={a}", f"input.b={b}",
                                f"out={outs['gifnet fuse']}", "progress=false"],
                "released-style": [sys.executable, "-m", "gifnet.reference", str(a), str(b), str(ckpt),
                                   str(outs["released-style"])],
            }  # fmt: skip
            runs: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
            for _ in range(repeat):
                for name, cmd in cmds.items():
                    runs[name].append(_timed_process(cmd, timeout, log))
            means = {}
            for name, rs in runs.items():
                means[name] = sum(t for t, _ in rs) / len(rs)
                print(f"| {w}×{h} | {name} | {' / '.join(f'{t:.2f}' for t, _ in rs)} | {means[name]:.2f} | "
                      f"{max(m for _, m in rs):.2f} |", flush=True)
            ours = np.asarray(Image.open(outs["gifnet fuse"] / a.name), dtype=np.int16)
            ref = np.asarray(Image.open(outs["released-style"]), dtype=np.int16)
            print(f"# {w}×{h}: gifnet fuse is {means['released-style'] / means['gifnet fuse']:.2f}× the released-style "
                  f"process (ratio of the means); outputs differ by at most {int(np.abs(ours - ref).max())} grey "
                  "level(s) (the released script truncates, gifnet rounds)")
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
