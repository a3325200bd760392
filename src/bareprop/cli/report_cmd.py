"""``bareprop report RUN_DIR``: write RUN_DIR/report.html (self-contained)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report of a run folder")
    p.add_argument("run_dir", help="the --out folder of a train (or compare) run")
    p.add_argument("--data-dir", dest="data_dir", help="dataset folder for test-set figures")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report import build_report

    out = build_report(args.run_dir, data_dir=args.data_dir)
    print(out)
    return 0
