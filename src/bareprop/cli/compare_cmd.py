"""``bareprop compare``: the notebook's question, answered exactly: train bareprop and the
equivalent PyTorch model from the same weights on the same batches, epoch by epoch."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from ..experiment import build_run, check_flags, make_config
from ..runs.layout import COMPARE, COMPARE_FILES, COMPARE_PLOT
from ..runs.lock import claim_run_folder
from ..runs.results import wrote_line
from ..runs.writer import write_whole
from .args import add_config_arguments, count, explicit_settings


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="train bareprop and PyTorch side by side and compare",
                       argument_default=argparse.SUPPRESS)
    add_config_arguments(p, without=("log",))   # the twins train without loggers
    p.add_argument("--framework", default="torch", choices=["torch", "keras"],
                   help="the twin: torch (default) or keras (Keras 3 on the torch backend)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder that already holds a compare result")
    p.set_defaults(run=run)


def _fmt(row, name) -> str:
    b, t = row["bareprop"], row[name]
    return (f"{row['epoch']:>5}  {b['train_loss']:>10.6f} {t['train_loss']:>10.6f}  "
            f"{b['test_accuracy']:>8.4f} {t['test_accuracy']:>8.4f}  "
            f"{b['seconds']:>7.2f} {t['seconds']:>7.2f}  {row['max_abs_weight_diff']:>10.3e}")


def run(args) -> int:
    explicit = explicit_settings(args)
    cfg = make_config(explicit)
    check_flags(explicit, cfg)
    if cfg.update_order != "standard":
        raise ConfigError("compare needs the standard update order (PyTorch has no equivalent "
                          "of the notebook's interleaved update); add --update-order standard")
    fw = args.framework
    try:
        import torch  # noqa: F401
    except ImportError:  # the [keras] extra brings PyTorch too (Keras runs on it here)
        raise ConfigError(f"compare needs PyTorch: pip install 'bareprop[{fw}]'") from None
    label = {"torch": "PyTorch", "keras": "Keras"}[fw]

    # a train run's folder is welcome (compare.json beside it feeds its report); an
    # earlier compare result there is not replaced without --overwrite
    # it writes nothing in place (no events, logs or TensorBoard folder to check for links)
    out, lock = claim_run_folder(cfg.out, overwrite=getattr(args, "overwrite", False),
                                 protect=COMPARE_FILES, in_place=())
    with lock:
        return _compare(cfg, out, fw, label)


def _compare(cfg, out, fw: str, label: str) -> int:
    from ..reference.compare import compare, verdict as judge

    r = build_run(cfg, out, quiet=True)
    print(f"comparing bareprop with {label}: {cfg.dataset}, preset {cfg.preset}, {cfg.dtype}, "
          f"{count(cfg.epochs, 'epoch')}, same initial weights and batches", flush=True)
    print(f"epoch  loss(bp)  loss({fw:<5})  acc(bp) acc({fw})  s(bp) s({fw})  max|dW|")
    result = compare(r.model, r.optimizer, r.loss_fn, r.train, r.test, cfg.epochs,
                     scheduler=r.scheduler, max_norm=cfg.max_norm, seed=cfg.seed,
                     on_epoch=lambda row: print(_fmt(row, fw), flush=True), framework=fw)
    verdict, ok = judge(result, cfg.dtype, count(cfg.epochs, "epoch"))
    print(verdict)
    report = {"config": cfg.to_dict(), "verdict": verdict, **result}
    write_whole(out, COMPARE, json.dumps(report, indent=1).encode())
    from .. import plots

    plotted = plots.save_compare_plot(result, out / COMPARE_PLOT)
    print(wrote_line(out, [COMPARE, *([COMPARE_PLOT] if plotted else [])]), file=sys.stderr)
    return 0 if ok else 1
