"""``bareprop compare``: the notebook's question, answered exactly: train bareprop and the
equivalent PyTorch model from the same weights on the same batches, epoch by epoch."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from .train_cmd import add_config_arguments, build_run, explicit_settings, prepare_out_dir
from .config import make_config


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="train bareprop and PyTorch side by side and compare",
                       argument_default=argparse.SUPPRESS)
    add_config_arguments(p)
    p.add_argument("--framework", default="torch", choices=["torch"],
                   help="the framework twin (PyTorch)")
    p.set_defaults(run=run)


def _fmt(row) -> str:
    b, t = row["bareprop"], row["torch"]
    return (f"{row['epoch']:>5}  {b['train_loss']:>10.6f} {t['train_loss']:>10.6f}  "
            f"{b['test_accuracy']:>8.4f} {t['test_accuracy']:>8.4f}  "
            f"{b['seconds']:>7.2f} {t['seconds']:>7.2f}  {row['max_abs_weight_diff']:>10.3e}")


def run(args) -> int:
    explicit = explicit_settings(args)
    cfg = make_config(explicit)
    if cfg.update_order != "standard":
        raise ConfigError("compare needs the standard update order (PyTorch has no equivalent "
                          "of the notebook's interleaved update); add --update-order standard")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError("compare needs PyTorch: pip install 'bareprop[torch]'") from None
    from ..reference.compare import compare

    out = prepare_out_dir(cfg.out)
    r = build_run(cfg, out, quiet=True)
    print(f"comparing bareprop with PyTorch: {cfg.dataset}, preset {cfg.preset}, {cfg.dtype}, "
          f"{cfg.epochs} epochs, same initial weights and batches", flush=True)
    print("epoch  loss(bp)   loss(torch)  acc(bp) acc(torch)  s(bp) s(torch)  max|dW|")
    result = compare(r.model, r.optimizer, r.loss_fn, r.train, r.test, cfg.epochs,
                     scheduler=r.scheduler, max_norm=cfg.max_norm, seed=cfg.seed,
                     on_epoch=lambda row: print(_fmt(row), flush=True))
    last = result["epochs"][-1]
    tol = 1e-8 if cfg.dtype == "float64" else None
    diff = last["max_abs_weight_diff"]
    if tol is not None:
        verdict = ("MATCH: the two runs agree to round-off" if diff < tol
                   else f"DIFFER: weights differ by {diff:.3e} (> {tol:g})")
    else:
        verdict = (f"float32: weights drift apart by round-off, max |dW| = {diff:.3e} after "
                   f"{cfg.epochs} epochs (use --dtype float64 for an exact match)")
    print(verdict)
    report = {"config": cfg.to_dict(), "verdict": verdict, **result}
    (out / "compare.json").write_text(json.dumps(report, indent=1))
    from .. import plots

    plots.save_compare_plot(result, out / "compare.png")
    print(f"wrote {out}/compare.json, compare.png", file=sys.stderr)
    return 0 if (tol is None or diff < tol) else 1
