"""`make bench`: hnmine vs sentence-transformers' miner on SciFact (train), in alternation, plus the encoding floor.

For each tool: wall seconds and peak RSS of the whole process (imports, model load, encoding, search,
selection, writing the output) with a fresh run directory / cache, and the ratio hnmine / ST. The floor is
the seconds to encode every unique corpus text and query once with the same model, batch size and length
sorting (model load excluded), at hnmine's precision (bf16 where the CPU has it) and at float32.

Rounds alternate the order (hnmine first, then ST first, …) so background load drifts hit both alike;
ratios are taken within a round, and the median over rounds is reported.

Then, on the last hnmine run: the filter/export-only rerun (bench_rerun.py) and the bf16-vs-fp32 top-10
agreement (bench_dtype_agreement.py, from the floor's saved vectors).

With --backend openvino, each round also runs `hnmine mine --backend openvino` (a third tool in the
alternation) and its floor (encoding alone with the transformer run by OpenVINO); the figures add its wall
and CPU time over today's hnmine run (target <= 0.7), over sentence-transformers' miner and over the torch
bf16 floor, and its top-10 agreement with float32.

  python benchmarks/bench_scifact.py [--rounds 2] [--work /tmp/hnmine-bench] [--no-extras] [--backend openvino]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, PY, ROOT, SCIFACT, machine, manifest_seconds, measure, ratio, write_results  # noqa: E402

DEPTH = 50
NEG = 5
BATCH = 64
TARGET_VS_ST = 0.6
TARGET_VS_FLOOR = 1.1
TARGET_BACKEND_VS_HNMINE = 0.7  # issue 16: cold `mine` with the faster backend vs today's (torch, bf16) run


def hnmine_cmd(data: Path, run: Path, dtype: str | None = None, backend: str | None = None) -> list[str]:
    cmd = [
        HNMINE,
        "mine",
        str(data),
        "--split",
        "train",
        "--out",
        str(run),
        "--depth",
        str(DEPTH),
        "--max-depth",
        str(DEPTH),
        "--num-negatives",
        str(NEG),
        "--batch-size",
        str(BATCH),
        "--cache-dir",  # an embedding store of its own beside the run: a cold run finds no vector made before
        f"{run}-store",
        "--quiet",
    ]
    return cmd + (["--dtype", dtype] if dtype else []) + (["--backend", backend] if backend else [])


def st_cmd(data: Path, out: Path, dtype: str = "float32") -> list[str]:
    return [
        PY,
        str(BENCH / "st_mine.py"),
        "--data",
        str(data),
        "--out",
        str(out),
        "--range-max",
        str(DEPTH),
        "--num-negatives",
        str(NEG),
        "--batch-size",
        str(BATCH),
        "--dtype",
        dtype,
    ]


def floor_cmd(data: Path, dtype: str, save: Path, backend: str = "torch") -> list[str]:
    return [
        PY,
        str(BENCH / "floor_encode.py"),
        "--data",
        str(data),
        "--dtype",
        dtype,
        "--batch-size",
        str(BATCH),
        "--save",
        str(save),
        "--backend",
        backend,
    ]


# With a backend other than torch, loading the model once also builds its cached OpenVINO IR: a first run on
# a machine pays for the probe and the build, the timed runs find both in the user's cache.
CHOICE = (
    "import json, sys, time; from hnmine.inference.spec import EncoderSpec, dtype_record; "
    "t = time.perf_counter(); s = EncoderSpec(backend=sys.argv[1]); r = dtype_record(s); "
    "s.backend != 'torch' and s.load(); r['resolve_s'] = round(time.perf_counter() - t, 2); print(json.dumps(r))"
)


def hnmine_dtype(work: Path, backend: str = "torch") -> tuple[str, dict]:
    """The precision `--dtype auto` resolves to on this machine (what the floor must match), and how it was chosen.

    The choice is measured once per machine and cached in the user's hnmine cache, where the timed runs
    find it; a probe into an empty cache is timed too, as what a first-ever run on a machine adds.
    """
    fresh = subprocess.run(
        [PY, "-c", CHOICE, backend],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HNMINE_CACHE_DIR": str(work / f"fresh-cache-{backend}")},
    )
    out = subprocess.run([PY, "-c", CHOICE, backend], capture_output=True, text=True, check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    record["first_run_on_a_machine"] = json.loads(fresh.stdout.strip().splitlines()[-1])
    return record["dtype"], record


def git_state() -> dict:
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "hnmine_dirty": bool(git("status", "--porcelain", "--", "hnmine"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SCIFACT)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hnmine-bench"))
    ap.add_argument("--st-dtype", default="float32", help="sentence-transformers' precision (its default is float32)")
    ap.add_argument("--st-first", action="store_true", help="start round 1 with ST (to alternate across invocations)")
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--no-extras", action="store_true", help="skip the rerun and dtype-agreement checks")
    ap.add_argument(
        "--backend",
        choices=["openvino"],
        default=None,
        help="also run `hnmine mine --backend B` (and its floor) in every round, against today's run",
    )
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "scifact.json")
    args = ap.parse_args()

    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    low, choice = hnmine_dtype(args.work)
    if args.backend:
        b_low, b_choice = hnmine_dtype(args.work, args.backend)
    info = {
        "machine": machine(),
        "git": git_state(),
        "data": str(args.data),
        "depth": DEPTH,
        "num_negatives": NEG,
        "batch_size": BATCH,
        "hnmine_dtype": low,
        "hnmine_dtype_choice": choice,
        "st_dtype": args.st_dtype,
        "commands": {
            "hnmine": " ".join(hnmine_cmd(Path("../shared/data/scifact"), Path("RUN"))),
            "sentence-transformers": " ".join(st_cmd(Path("../shared/data/scifact"), Path("OUT"), args.st_dtype)),
            "floor": " ".join(floor_cmd(Path("../shared/data/scifact"), low, Path("floor.npz"))),
        },
    }
    if args.backend:
        info.update(backend=args.backend, backend_dtype=b_low, backend_dtype_choice=b_choice)
        info["commands"].update(
            {
                f"hnmine --backend {args.backend}": " ".join(hnmine_cmd(Path("../shared/data/scifact"), Path("RUN"), backend=args.backend)),
                f"floor --backend {args.backend}": " ".join(
                    floor_cmd(Path("../shared/data/scifact"), b_low, Path("floor.npz"), args.backend)
                ),
            }
        )
        print(
            f"--backend {args.backend}: dtype auto = {b_low}; a first run on a machine (probe + IR build) takes "
            f"{b_choice['first_run_on_a_machine']['resolve_s']} s",
            flush=True,
        )
    print(
        f"machine: {info['machine'].get('Model name')}, {info['machine'].get('CPU(s)')} CPUs, {info['machine'].get('RAM_GiB')} GiB; "
        f"hnmine dtype auto = {low} ({choice['dtype_choice']['reason']}; a first probe on a machine takes "
        f"{choice['first_run_on_a_machine']['resolve_s']} s)",
        flush=True,
    )
    rounds = []
    last_run = last_backend_run = None
    for r in range(args.rounds):
        row: dict = {"round": r + 1}
        flip = (r + int(args.st_first)) % 2
        tools = ["hnmine", "st"] + (["backend"] if args.backend else [])
        floors = [("torch", low), ("torch", "float32")] + ([(args.backend, b_low)] if args.backend else [])
        if flip:
            tools, floors = tools[::-1], floors[::-1]
        if args.no_floor:
            floors = []
        for tool in tools:
            if tool == "hnmine":
                run = args.work / f"hnmine-{r}"
                m = measure("hnmine", hnmine_cmd(args.data, run))
                row["hnmine"] = {"seconds": m.seconds, "cpu_s": m.cpu_s, "peak_rss_mb": m.peak_rss_mb, "stages_s": manifest_seconds(run)}
                last_run = run
            elif tool == "backend":
                run = args.work / f"hnmine-{args.backend}-{r}"
                m = measure(f"hnmine --backend {args.backend}", hnmine_cmd(args.data, run, backend=args.backend))
                row["backend"] = {"seconds": m.seconds, "cpu_s": m.cpu_s, "peak_rss_mb": m.peak_rss_mb, "stages_s": manifest_seconds(run)}
                last_backend_run = run
            else:
                out = args.work / f"st-{r}"
                m = measure("sentence-transformers", st_cmd(args.data, out, args.st_dtype))
                row["st"] = {
                    "seconds": m.seconds,
                    "cpu_s": m.cpu_s,
                    "peak_rss_mb": m.peak_rss_mb,
                    "inside": json.loads(m.extra["stdout_tail"].strip().splitlines()[-1]),
                }
            print(
                f"round {r + 1}: {m.label:<22} {m.seconds:8.1f} s wall  {m.cpu_s:8.1f} s CPU  peak RSS {m.peak_rss_mb:7.0f} MB", flush=True
            )
        for backend, dtype in floors:
            name = dtype if backend == "torch" else f"{backend}-{dtype}"  # torch floors keep their names
            save = args.work / f"floor-{name}.npz"
            m = measure(f"floor {name}", floor_cmd(args.data, dtype, save, backend))
            f = json.loads(m.extra["stdout_tail"].strip().splitlines()[-1])
            row[f"floor_{name}"] = {**f, "process_seconds": m.seconds, "process_cpu_s": m.cpu_s, "peak_rss_mb": m.peak_rss_mb}
            print(
                f"round {r + 1}: floor {name:<16} {f['floor_s']:8.1f} s wall  {f['floor_cpu_s']:8.1f} s CPU  (model load {f['model_load_s']} s, whole process {m.seconds:.1f} s)",
                flush=True,
            )
        row["hnmine_over_st"] = ratio(row["hnmine"]["seconds"], row["st"]["seconds"])
        row["hnmine_over_st_cpu"] = ratio(row["hnmine"]["cpu_s"], row["st"]["cpu_s"])
        row["hnmine_over_st_rss"] = ratio(row["hnmine"]["peak_rss_mb"], row["st"]["peak_rss_mb"])
        if not args.no_floor:
            row["hnmine_over_floor"] = ratio(row["hnmine"]["seconds"], row[f"floor_{low}"]["floor_s"])
            row["hnmine_cpu_over_floor_cpu"] = ratio(row["hnmine"]["cpu_s"], row[f"floor_{low}"]["floor_cpu_s"])
            row["st_over_floor_fp32"] = ratio(row["st"]["seconds"], row["floor_float32"]["floor_s"])
        if args.backend:
            row["backend_over_hnmine"] = ratio(row["backend"]["seconds"], row["hnmine"]["seconds"])
            row["backend_over_hnmine_cpu"] = ratio(row["backend"]["cpu_s"], row["hnmine"]["cpu_s"])
            row["backend_over_st"] = ratio(row["backend"]["seconds"], row["st"]["seconds"])
            row["backend_over_st_cpu"] = ratio(row["backend"]["cpu_s"], row["st"]["cpu_s"])
            if not args.no_floor:
                b_floor = row[f"floor_{args.backend}-{b_low}"]
                row["backend_over_floor"] = ratio(row["backend"]["seconds"], row[f"floor_{low}"]["floor_s"])
                row["backend_floor_over_floor"] = ratio(b_floor["floor_s"], row[f"floor_{low}"]["floor_s"])
                row["backend_floor_over_floor_cpu"] = ratio(b_floor["floor_cpu_s"], row[f"floor_{low}"]["floor_cpu_s"])
        rounds.append(row)
        print(
            f"round {r + 1}: hnmine/ST = {row['hnmine_over_st']}"
            + (f", hnmine/floor({low}) = {row['hnmine_over_floor']}" if not args.no_floor else ""),
            flush=True,
        )
        if args.backend:
            print(
                f"round {r + 1}: hnmine --backend {args.backend} / hnmine = {row['backend_over_hnmine']} wall, {row['backend_over_hnmine_cpu']} CPU; "
                f"/ ST = {row['backend_over_st']}"
                + (f"; its floor / floor({low}) = {row['backend_floor_over_floor']}" if not args.no_floor else ""),
                flush=True,
            )

    med = lambda key: statistics.median(x[key] for x in rounds)  # noqa: E731
    summary = {
        "hnmine_s_median": statistics.median(x["hnmine"]["seconds"] for x in rounds),
        "st_s_median": statistics.median(x["st"]["seconds"] for x in rounds),
        "hnmine_peak_rss_mb_max": max(x["hnmine"]["peak_rss_mb"] for x in rounds),
        "st_peak_rss_mb_max": max(x["st"]["peak_rss_mb"] for x in rounds),
        "hnmine_over_st_median": med("hnmine_over_st"),
        "hnmine_cpu_s_median": statistics.median(x["hnmine"]["cpu_s"] for x in rounds),
        "st_cpu_s_median": statistics.median(x["st"]["cpu_s"] for x in rounds),
        "hnmine_over_st_cpu_median": med("hnmine_over_st_cpu"),
        "target_hnmine_over_st": TARGET_VS_ST,
    }
    summary["met_vs_st"] = summary["hnmine_over_st_median"] <= TARGET_VS_ST
    if not args.no_floor:
        summary.update(
            {
                f"floor_{low}_s_median": statistics.median(x[f"floor_{low}"]["floor_s"] for x in rounds),
                "floor_float32_s_median": statistics.median(x["floor_float32"]["floor_s"] for x in rounds),
                "hnmine_over_floor_median": med("hnmine_over_floor"),
                "hnmine_cpu_over_floor_cpu_median": med("hnmine_cpu_over_floor_cpu"),
                "target_hnmine_over_floor": TARGET_VS_FLOOR,
            }
        )
        summary["met_vs_floor"] = summary["hnmine_over_floor_median"] <= TARGET_VS_FLOOR
    if args.backend:
        summary.update(
            {
                "backend_s_median": statistics.median(x["backend"]["seconds"] for x in rounds),
                "backend_over_hnmine_median": med("backend_over_hnmine"),
                "backend_over_hnmine_cpu_median": med("backend_over_hnmine_cpu"),
                "backend_over_st_median": med("backend_over_st"),
                "backend_over_st_cpu_median": med("backend_over_st_cpu"),
                "target_backend_over_hnmine": TARGET_BACKEND_VS_HNMINE,
            }
        )
        summary["met_backend_vs_hnmine"] = summary["backend_over_hnmine_median"] <= TARGET_BACKEND_VS_HNMINE
        if not args.no_floor:
            summary["backend_over_floor_median"] = med("backend_over_floor")
            summary["backend_floor_over_floor_median"] = med("backend_floor_over_floor")
            summary["backend_floor_over_floor_cpu_median"] = med("backend_floor_over_floor_cpu")
    result = {**info, "rounds": rounds, "summary": summary, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}

    print("\n== SciFact train: cold runs ==")
    print(f"{'':<26}{'wall s':>10}{'peak RSS MB':>14}")
    print(f"{'hnmine (' + low + ')':<26}{summary['hnmine_s_median']:>10.1f}{summary['hnmine_peak_rss_mb_max']:>14.0f}")
    print(f"{'sentence-transformers (' + args.st_dtype + ')':<26}{summary['st_s_median']:>10.1f}{summary['st_peak_rss_mb_max']:>14.0f}")
    print(
        f"hnmine / ST (median of per-round ratios): {summary['hnmine_over_st_median']} wall, {summary['hnmine_over_st_cpu_median']} CPU  (target ≤ {TARGET_VS_ST}: {'met' if summary['met_vs_st'] else 'NOT met'})"
    )
    if not args.no_floor:
        print(f"floor ({low}): {summary[f'floor_{low}_s_median']:.1f} s; floor (float32): {summary['floor_float32_s_median']:.1f} s")
        print(
            f"hnmine wall {summary['hnmine_s_median']:.1f} s, CPU {summary['hnmine_cpu_s_median']:.1f} s; ST wall {summary['st_s_median']:.1f} s, CPU {summary['st_cpu_s_median']:.1f} s"
        )
        print(
            f"hnmine / floor({low}): {summary['hnmine_over_floor_median']} wall, {summary['hnmine_cpu_over_floor_cpu_median']} CPU  (target ≤ {TARGET_VS_FLOOR}: {'met' if summary['met_vs_floor'] else 'NOT met'})"
        )

    if args.backend:
        print(
            f"hnmine --backend {args.backend} ({b_low}): {summary['backend_s_median']:.1f} s; over today's hnmine run "
            f"{summary['backend_over_hnmine_median']} wall, {summary['backend_over_hnmine_cpu_median']} CPU "
            f"(target ≤ {TARGET_BACKEND_VS_HNMINE}: {'met' if summary['met_backend_vs_hnmine'] else 'NOT met'}); "
            f"over ST {summary['backend_over_st_median']} wall, {summary['backend_over_st_cpu_median']} CPU"
        )
        if not args.no_floor:
            print(
                f"its encoding floor / torch {low} floor: {summary['backend_floor_over_floor_median']} wall, "
                f"{summary['backend_floor_over_floor_cpu_median']} CPU; its cold run / torch {low} floor: {summary['backend_over_floor_median']}"
            )

    write_results(args.results, result)  # the timed rounds are kept even if an extra check fails

    if not args.no_extras and last_run is not None:
        from bench_rerun import rerun

        result["rerun"] = rerun(last_run, args.data, repeats=2)
        print(
            f"rerun (filter/export only): median {result['rerun']['median_s']:.2f} s, max {result['rerun']['max_s']:.2f} s; "
            f"model modules imported: {', '.join(result['rerun']['model_modules_imported']) or 'none'}"
        )
        if not args.no_floor and low != "float32":
            from bench_dtype_agreement import agreement

            result["dtype_agreement"] = agreement(
                args.work / f"floor-{low}.npz", args.work / "floor-float32.npz", run=last_run, data=args.data
            )
            a = result["dtype_agreement"]
            print(
                f"top-10 agreement {low} vs float32: {a['agreement_all_docs']:.2%} (all docs), {a['agreement_positives_left_out']:.2%} (positives left out), "
                f"hnmine's {low} candidates vs float32: {a.get('hnmine_run_candidates_vs_fp32')}"
            )
        if args.backend and not args.no_floor:
            from bench_dtype_agreement import agreement

            result["backend_agreement"] = agreement(
                args.work / f"floor-{args.backend}-{b_low}.npz", args.work / "floor-float32.npz", run=last_backend_run, data=args.data
            )
            a = result["backend_agreement"]
            print(
                f"top-10 agreement --backend {args.backend} ({b_low}) vs torch float32: {a['agreement_all_docs']:.2%} (all docs), "
                f"{a['agreement_positives_left_out']:.2%} (positives left out), its run's candidates vs float32: {a.get('hnmine_run_candidates_vs_fp32')} "
                f"(target ≥ 98%: {'met' if a['met'] else 'NOT met'})"
            )
    write_results(args.results, result)


if __name__ == "__main__":
    main()
