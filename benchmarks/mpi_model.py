"""Project data-parallel scaling past one machine from what mpi_bench.py measured here.

    python benchmarks/mpi_model.py mpi_bench.json [--out table.md]

The model (everything below the measured inputs is MODELLED, not measured):

    t_step(K)  = t_c(B / K) + t_ar(K)                 bareprop reduces after the whole
                                                      backward: no overlap
    t_c(b)     = c0 + c1 b                            compute of a b-example shard, 1 thread
    t_ar(K)    = 2 (K - 1) / K * bytes / bandwidth    ring allreduce (reduce-scatter +
                 + 2 (K - 1) * latency                allgather: 2(K-1) messages a rank)
    speedup(K) = t_c(B) / t_step(K),   efficiency(K) = speedup(K) / K

Measured (mpi_bench.json): t_c(B) = the 1-process x 1-thread step time; t_c(B / K) =
the K-rank step time minus its allreduce time (so c0, c1 through those two points);
bytes = the allreduce buffer (every gradient, the batch-norm statistics, 2 values).
Assumed: the network's bandwidth at line rate and its per-message latency (flags).

The batch size at which a net stops scaling: the global batch B50(K) at which the
efficiency falls to 50%, i.e. compute per rank equals what K ranks add:
    c0 + c1 B = (K c0 + c1 B + K t_ar(K)) / 2  =>  B50(K) = ((K - 2) c0 + K t_ar(K)) / c1
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KS = (2, 4, 8, 16, 32, 64)
#: (name, bandwidth in Gbit/s, per-message latency in s): assumptions, not measurements
NETWORKS = (("10 Gbit/s Ethernet (TCP)", 10.0, 30e-6), ("100 Gbit/s (RDMA)", 100.0, 3e-6))


def fit_compute(rows: list[dict]) -> dict:
    """c0, c1 of t_c(b) = c0 + c1 b from one net's rows (1 x 1 thread and K x 1 thread)."""
    one = next(r for r in rows if r["processes"] == 1 and r["blas_threads"] == 1)
    par = next(r for r in rows if r["processes"] > 1)
    b1, t1 = one["batch"], one["seconds_per_step"]
    bk = par["batch"] / par["processes"]
    tk = par["seconds_per_step"] - par["allreduce_seconds_per_step"]
    c1 = (t1 - tk) / (b1 - bk)
    c0 = t1 - c1 * b1
    note = ""
    if c1 <= 0 or c0 < 0:     # noise: fall back to pure proportionality through t_c(B)
        c0, c1, note = 0.0, t1 / b1, "c0 < 0 or c1 <= 0 from the two points: t_c = c1 b used"
    return {"c0": c0, "c1": c1, "batch": b1, "bytes": one["allreduce_bytes"], "note": note,
            "measured_ranks": par["processes"],
            "measured_allreduce_s": par["allreduce_seconds_per_step"]}


def allreduce_seconds(k: int, nbytes: float, gbit: float, latency: float) -> float:
    return 2 * (k - 1) / k * nbytes / (gbit * 1e9 / 8) + 2 * (k - 1) * latency


def project(fit: dict, k: int, gbit: float, latency: float, batch: int | None = None) -> dict:
    b = fit["batch"] if batch is None else batch
    tc = lambda n: fit["c0"] + fit["c1"] * n                  # noqa: E731
    tar = allreduce_seconds(k, fit["bytes"], gbit, latency)
    step = tc(b / k) + tar
    speedup = tc(b) / step
    b50 = ((k - 2) * fit["c0"] + k * tar) / fit["c1"]
    return {"k": k, "step_s": step, "allreduce_s": tar, "speedup": speedup,
            "efficiency": speedup / k, "b50": b50}


def table(result: dict, ks=KS, networks=NETWORKS) -> str:
    nets = sorted({r["net"] for r in result["rows"]}, key=[r["net"] for r in result["rows"]].index)
    out = [f"Measured {result['date']} on {result['machine'].get('cpu', '?')} "
           f"({result['machine'].get('cpus', '?')} CPUs): `{result['command']}`; "
           "everything below the fit is modelled.", ""]
    for net in nets:
        fit = fit_compute([r for r in result["rows"] if r["net"] == net])
        out += [f"### {net} (batch {fit['batch']}, allreduce {fit['bytes'] / 2**20:.1f} MiB)",
                "",
                f"Fitted compute: t_c(b) = {fit['c0'] * 1e3:.2f} ms + {fit['c1'] * 1e6:.1f} us x b"
                + (f" ({fit['note']})" if fit["note"] else "")
                + f"; measured allreduce on this machine ({fit['measured_ranks']} ranks, shared "
                  f"memory): {fit['measured_allreduce_s'] * 1e3:.2f} ms/step.", "",
                "| network | K | step (ms) | allreduce (ms) | speedup | efficiency | "
                "batch for 50% efficiency |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, gbit, lat in networks:
            for k in ks:
                p = project(fit, k, gbit, lat)
                out.append(f"| {name} | {k} | {p['step_s'] * 1e3:.1f} | "
                           f"{p['allreduce_s'] * 1e3:.2f} | {p['speedup']:.2f} | "
                           f"{p['efficiency']:.0%} | {p['b50']:,.0f} |")
        for name, gbit, lat in networks:
            good = [k for k in ks if project(fit, k, gbit, lat)["efficiency"] >= 0.5]
            out.append("")
            out.append(f"{name}: at batch {fit['batch']} the efficiency stays >= 50% up to "
                       f"K = {max(good) if good else 'none of ' + str(ks)}.")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("measured", help="the JSON written by benchmarks/mpi_bench.py")
    p.add_argument("--out", help="also write the table (markdown) here")
    args = p.parse_args(argv)
    text = table(json.loads(Path(args.measured).read_text()))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
