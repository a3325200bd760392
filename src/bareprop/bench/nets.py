"""The named-net rows of the benchmark: any ``--arch`` model against its PyTorch twin,
eager, on the same batches.

Both start from the same weights: the PyTorch side is the twin ``bareprop compare``
trains (reference/torch_twin.py: torch.nn.LSTM, torch.nn.MultiheadAttention ... with
bareprop's state dict loaded), so the row times the two implementations of one
computation, not two initialisations. Float32, Adam (lr 1e-3, both sides), MNIST in
(N, 1, 28, 28) scaled to [0, 1]; seconds per 60k-example epoch, the median of the rounds,
each row in its own subprocess (kit.run_task). ``--nets`` picks them:

* ``lstm``: ``rows lstm(128) linear(10)``, an image read as 28 rows of 28 features;
* ``vit``: the ``vit`` preset's vision transformer (experiment/presets.py).
"""
from __future__ import annotations

from .cnn import NET, Profile, image_batches, report_profile
from .kit import (available, epoch_of, epoch_result, md_row, run_task, timed_epochs,
                  torch_epoch, torch_step)
from .pairing import paired_task

#: net name -> its --arch string, or the preset whose arch it is; "cnn-ref" is the
#: convolutional rows' reference CNN (cnn.NET) and "cnn" the cnn preset's model, here
#: paired with their twins in one process (the convolutional rows time each framework
#: in a subprocess of its own)
NETS = {"lstm": "rows lstm(128) linear(10)", "vit": "preset:vit", "cnn-ref": NET,
        "cnn": "preset:cnn"}
#: the nets a plain run times (the convnets are asked for by name: --nets cnn-ref cnn)
DEFAULT_NETS = ["lstm", "vit"]


def arch_of(name: str) -> str:
    """The --arch string of the named net."""
    text = NETS[name]
    if text.startswith("preset:"):
        from ..experiment.presets import PRESETS

        return PRESETS[text.split(":", 1)[1]]["arch"]
    return text


def build(name: str):
    """The named net in bareprop, float32, seed 0 (the default init of ``--arch``)."""
    from ..experiment.arch import build as build_arch

    return build_arch(arch_of(name), (1, 28, 28), n_classes=10, seed=0, dtype="float32")


def net_row(task: dict) -> dict:
    """One row: {"kind": "net-bareprop" | "net-torch" | "net-paired", "net": name, ...};
    with "profile" set, one profiled bareprop epoch instead of the timed ones."""
    batches, source = image_batches(task)
    warm = max(1, min(len(batches), 1000 // task["batch"]))
    model = build(task["net"])
    if task["kind"] == "net-paired":
        return {**paired_nets(model, task), "source": source}
    if task["kind"] == "net-torch":
        import torch

        from ..reference.torch_twin import torch_module

        torch.set_num_threads(task["threads"])
        twin = torch_module(model).train()
        epoch = torch_epoch(twin, torch.optim.Adam(twin.parameters(), lr=1e-3), batches, warm)
        return epoch_result(timed_epochs(epoch, task["repeats"]), task["examples"], source)
    from .. import core, optim
    from ..train.step import TrainStep

    opt = optim.Adam(model.parameters(), lr=1e-3)
    step = TrainStep(model, core.CrossEntropyLoss(), opt)
    if not task.get("profile"):
        epoch = epoch_of(step, batches, warm)
        return epoch_result(timed_epochs(epoch, task["repeats"]), task["examples"], source)
    import time

    from .kit import EPOCH, blas_info

    profile = Profile(step)
    profile.wrap(opt, "step", "optimizer step")
    epoch = epoch_of(step, batches, warm)
    epoch(-1, warmup=True)
    profile.seconds.clear()
    t = time.perf_counter()
    epoch(0)
    scale = EPOCH / task["examples"]
    return {"seconds": (time.perf_counter() - t) * scale, "source": source, **blas_info(),
            "profile": {k: v * scale for k, v in profile.seconds.items()}}


def paired_nets(model, task: dict) -> dict:
    """bareprop's training step and its PyTorch twin's in alternating segments of one
    process (pairing.paired_task): {"seconds": {framework: s per 60k epoch}, "ratio":
    bareprop's time / PyTorch's, the median over segments, "spread": its quartiles}."""
    import torch

    from .. import core, optim
    from ..reference.torch_twin import torch_module
    from ..train.step import TrainStep

    torch.set_num_threads(task["threads"])
    twin = torch_module(model).train()                   # the same weights, its own copy
    steps = {"bareprop": TrainStep(model, core.CrossEntropyLoss(),
                                   optim.Adam(model.parameters(), lr=1e-3)),
             "PyTorch eager": torch_step(twin, torch.optim.Adam(twin.parameters(), lr=1e-3))}
    got = paired_task(steps, lambda: image_batches(task)[0], task)
    key = ("bareprop", "PyTorch eager")
    return {"seconds": got["seconds"], "ratio": got["ratio"][key],
            "spread": list(got["spread"][key])}


def report_nets(out, base: dict, names: list[str], batch: int, profile: bool,
                rss: bool = True) -> None:
    """Print each named net's rows (bareprop, PyTorch eager, the ratio) through ``out``."""
    cols = ["net", "framework", "s/epoch (median)", "x PyTorch eager"] + \
        (["peak RSS MB"] if rss else [])
    out()
    out(f"Named nets, batch {batch}, float32, Adam (lr 1e-3), MNIST (N, 1, 28, 28); the "
        "PyTorch side is bareprop's twin (same weights, torch.nn layers), eager:")
    out()
    out(md_row(*cols))
    out("|---|---|" + "---:|" * (len(cols) - 2))
    for name in names:
        task = {**base, "batch": batch, "net": name}
        rows = {"bareprop": run_task({**task, "kind": "net-bareprop"})}
        if available("torch"):
            rows["PyTorch eager"] = run_task({**task, "kind": "net-torch"})
        torch_s = rows.get("PyTorch eager", {}).get("seconds")
        for framework, r in rows.items():
            label = f"`{arch_of(name)}`" if framework == "bareprop" else ""
            if "error" in r:
                out(md_row(label, framework, f"error: {r['error']}", width=len(cols)))
                continue
            s = r["seconds"]
            out(md_row(label, framework, f"{s:.2f}", f"{s / torch_s:.2f}" if torch_s else "-",
                       *([f"{r['rss_mb']:.0f}"] if rss else [])))
        if profile:
            report_profile(out, run_task({**task, "kind": "net-bareprop", "profile": True,
                                          "repeats": 1}))
    if available("torch"):
        report_paired(out, base, names, batch)


def report_paired(out, base: dict, names: list[str], batch: int) -> None:
    """The ratio the speed targets name, read where drift cannot bias it: both
    frameworks in one process, in alternating segments of ~5,120 examples."""
    out()
    out("The same nets, bareprop and its PyTorch twin paired in one process (alternating "
        "segments of ~5,120 examples; the ratio is the median over segments):")
    out()
    out(md_row("net", "bareprop s/epoch", "PyTorch eager s/epoch",
               "x PyTorch eager (paired)", "middle half of the segments"))
    out("|---|---:|---:|---:|---|")
    for name in names:
        r = run_task({**base, "batch": batch, "net": name, "kind": "net-paired"})
        if "error" in r:
            out(md_row(f"`{arch_of(name)}`", f"error: {r['error']}", width=5))
            continue
        s, (lo, hi) = r["seconds"], r["spread"]
        out(md_row(f"`{arch_of(name)}`", f"{s['bareprop']:.2f}", f"{s['PyTorch eager']:.2f}",
                   f"{r['ratio']:.2f}", f"{lo:.2f}..{hi:.2f}"))
