"""The cost of a bucket against a local disk: SciFact mined with the inputs and the run in S3, against the same
command on local paths (issue 27).

The S3 server is moto's, started here on 127.0.0.1 from `.moto-venv` (`make setup`): a stand-in on loopback,
so the figures are hnmine's own overhead (copying the inputs, pulling and checking the run, sending each
stage) with no network in it; a real bucket adds its latency and bandwidth to the bytes moved (in the
results). So that the figures are the bucket's and not the encoder's (this 2-core machine is shared), the
vectors are given: 384-d vectors from a fixed seed for SciFact's corpus and queries (`--corpus-embeddings`,
`--query-embeddings`, each query near its first positive), uploaded with the data; everything else is the
`hnmine mine` of bench_scifact.py (train split, depth 50, 5 negatives). Local first, then the bucket:

  cold         a fresh run directory (the bucket's staging copy and input copies fresh too)
  rerun        the same command again: every stage skipped (the bucket pulls and checks the run)
  filter       `hnmine filter RUN --method topk-percpos`: filter and export rerun

  python benchmarks/bench_bucket.py [--work /tmp/hnmine-bench-bucket] [--results benchmarks/results/bucket-scifact.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, HNMINE, ROOT, SCIFACT, bench_env, machine, manifest_seconds, measure, ratio, write_results  # noqa: E402
from bench_scifact import hnmine_cmd  # noqa: E402

BUCKET = "hnmine-bench"


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ROOT / ".moto-venv" / "bin" / "moto_server"
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("moto's server did not start (make setup installs .moto-venv)")


def upload(folder: Path, prefix: str, url: str) -> int:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=url, region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    n = 0
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with fs.open_output_stream(f"{prefix}/{p.relative_to(folder).as_posix()}") as out:
                out.write(p.read_bytes())
            n += p.stat().st_size
    return n


def vectors(data: Path, scratch: Path) -> None:
    """corpus_emb.npy and query_emb.npy in `data`: one 384-d vector per row of the run's corpus and queries
    tables, from a fixed seed (tests/ray_helpers.py's recipe)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ray_helpers import seeded_vectors

    seeded_vectors(scratch, data, data, seed=0, dim=384, split="train")
    shutil.rmtree(scratch, ignore_errors=True)


def staging(cache: Path) -> Path:
    return next((cache / "bucket-runs").glob("*/write/run"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/hnmine-bench-bucket"))
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "bucket-scifact.json")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    proc, url = start_moto()
    cache = args.work / "cache"
    aws = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HNMINE_CACHE_DIR": str(cache),
    }
    os.environ.update(aws)
    out: dict = {"machine": machine(), "server": "moto 5.2.6 on 127.0.0.1 (a stand-in: no network in these figures)", "rows": []}
    try:
        data = args.work / "scifact"
        shutil.copytree(SCIFACT, data)
        vectors(data, args.work / "seed-run")
        started = time.perf_counter()
        out["uploaded_bytes"] = upload(data, f"{BUCKET}/scifact", url)
        out["upload_s"] = round(time.perf_counter() - started, 2)
        local, remote = args.work / "local", f"s3://{BUCKET}/runs/run"
        given = ["--corpus-embeddings", str(data / "corpus_emb.npy"), "--query-embeddings", str(data / "query_emb.npy")]
        where_is = {str(data): f"s3://{BUCKET}/scifact", str(local): remote}  # the same command, on the bucket
        where_is.update({str(data / n): f"s3://{BUCKET}/scifact/{n}" for n in ("corpus_emb.npy", "query_emb.npy")})
        steps = {
            "cold": hnmine_cmd(data, local) + given,
            "rerun": hnmine_cmd(data, local) + given,
            "filter": [HNMINE, "filter", str(local), "--method", "topk-percpos"],
        }
        for step, local_cmd in steps.items():
            bucket_cmd = [where_is.get(c, c) for c in local_cmd]
            for where, cmd in (("local", local_cmd), ("bucket", bucket_cmd)):
                load = os.getloadavg()
                m = measure(f"{step}-{where}", cmd, env=bench_env(**aws))
                run = local if where == "local" else staging(cache)
                row = {
                    "step": step,
                    "where": where,
                    "command": " ".join(cmd),
                    "rc": m.rc,
                    "wall_s": round(m.seconds, 2),
                    "cpu_s": m.cpu_s,
                    "loadavg_before": load,
                    "stages_s": manifest_seconds(run),
                }
                out["rows"].append(row)
                print(f"{step:<7} {where:<7} wall {m.seconds:8.1f} s  rc {m.rc}  load {load[0]:.1f}", flush=True)
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(endpoint_override=url, region="us-east-1")
        held = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/runs/run", recursive=True))
        out["run_objects"] = sum(1 for i in held if i.type == pafs.FileType.File)
        out["run_bytes"] = sum(i.size or 0 for i in held if i.type == pafs.FileType.File)
        with fs.open_input_stream(f"{BUCKET}/runs/run/export/triplet.parquet") as fh:
            exported = fh.read()
        out["same_export"] = (
            hashlib.sha256(exported).hexdigest() == hashlib.sha256((local / "export/triplet.parquet").read_bytes()).hexdigest()
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    by = {(r["step"], r["where"]): r["wall_s"] for r in out["rows"]}
    out["bucket_over_local"] = {step: ratio(by[(step, "bucket")], by[(step, "local")]) for step in ("cold", "rerun", "filter")}
    out["bucket_minus_local_s"] = {step: round(by[(step, "bucket")] - by[(step, "local")], 2) for step in ("cold", "rerun", "filter")}
    write_results(args.results, out)
    print(json.dumps({k: out[k] for k in ("upload_s", "bucket_over_local", "bucket_minus_local_s", "same_export", "run_objects")}))


if __name__ == "__main__":
    main()
