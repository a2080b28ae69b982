"""Inputs and run directories on object storage (issue 27), against a real S3-compatible server started here on
loopback: moto's standalone server, from its own virtual environment (`make setup` makes `.moto-venv`: moto
needs a python-dateutil older than the one requirements.lock pins). Every request goes to 127.0.0.1: the
endpoint, the credentials and the region are set in the environment for each test, and the EC2 metadata
lookup is off. gs:// is tested for its routing and its one-line errors only (no GCS server installs here).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, reran, write_beir
from test_hunt import one_line_error

MOTO_VENV = Path(os.environ.get("HNMINE_MOTO_VENV", ROOT / ".moto-venv"))
MOTO_SERVER = MOTO_VENV / "bin" / "moto_server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(env_extra: dict | None = None) -> tuple[subprocess.Popen, str]:
    if not MOTO_SERVER.exists():
        pytest.skip(f"moto's server is not installed ({MOTO_SERVER}); `make setup` installs it")
    port = _free_port()
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).read()  # loopback only
            return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.kill()
    pytest.fail("moto's server did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def moto():
    proc, url = _start_moto()
    yield url
    _stop(proc)


def _aws_env(monkeypatch, url: str, key: str = "testing", secret: str = "testing") -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


_BUCKETS = iter(range(10**6))


@pytest.fixture
def bucket(moto, monkeypatch):
    """A new, empty bucket on the loopback server; its name."""
    import pyarrow.fs as pafs

    _aws_env(monkeypatch, moto)
    name = f"hnmine-test-{os.getpid()}-{next(_BUCKETS)}"
    pafs.S3FileSystem(endpoint_override=moto, region="us-east-1", allow_bucket_creation=True).create_dir(name)
    return name


def _s3():
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], region="us-east-1")


def upload(folder: Path, prefix: str) -> None:
    """Every file under `folder` to `prefix` (BUCKET/KEY)."""
    fs = _s3()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            with fs.open_output_stream(f"{prefix}/{p.relative_to(folder).as_posix()}") as out:
                out.write(p.read_bytes())


def read_object(path: str) -> bytes:
    with _s3().open_input_stream(path) as fh:
        return fh.read()


def objects(prefix: str) -> list[str]:
    import pyarrow.fs as pafs

    infos = _s3().get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    return sorted(i.path[len(prefix) + 1 :] for i in infos if i.type == pafs.FileType.File)


def test_mine_from_and_into_a_bucket_gives_the_local_bytes(finished_tiny, bucket):
    """DATA in a bucket and --out in a bucket: every table and the export are the local run's bytes; the same
    command again skips every stage; the run is a run directory in the bucket (export by its plain name)."""
    data, local = finished_tiny
    upload(data, f"{bucket}/data/tiny")
    uri = f"s3://{bucket}/runs/tiny"
    summary = mine_json(f"s3://{bucket}/data/tiny", uri)
    assert summary["run_dir"] == uri
    assert summary["export"] == f"{uri}/export/triplet.parquet"
    held = objects(f"{bucket}/runs/tiny")
    assert not any(rel.startswith(("cache/", ".hnmine-lock")) for rel in held)  # the embedding store stays local
    for rel in ["export/triplet.parquet", "negatives.parquet", "scores.parquet", "candidates.parquet", "inputs/corpus.parquet"]:
        assert read_object(f"{bucket}/runs/tiny/{rel}") == (local / rel).read_bytes(), rel
    inputs = json.loads(read_object(f"{bucket}/runs/tiny/manifests/inputs.json"))
    assert inputs["stats"]["identity"]["corpus"]["path"] == f"s3://{bucket}/data/tiny/corpus.jsonl"
    assert inputs["settings"]["options"]["data"] == f"s3://{bucket}/data/tiny"
    again = mine_json(f"s3://{bucket}/data/tiny", uri)
    assert reran(again) == []


def test_a_filter_option_on_a_bucket_run_reruns_filter_and_export_only(finished_tiny, bucket, tmp_path):
    """A stage command on a bucket run takes the run's options from its record (DATA is a URI there) and
    reruns what the change touches; the bucket's export is then a local run's with the same options."""
    data, _ = finished_tiny
    upload(data, f"{bucket}/data")
    uri = f"s3://{bucket}/run"
    mine_json(f"s3://{bucket}/data", uri)
    result = invoke(["filter", uri, "--num-negatives", "2", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert reran(json.loads(result.stdout)) == ["filter"]
    result = invoke(["mine", f"s3://{bucket}/data", "--out", uri, "--num-negatives", "2", "--json", "--quiet"])
    assert reran(json.loads(result.stdout)) == ["export"]
    expected = tmp_path / "local"
    mine_json(data, expected, "--num-negatives", "2")
    assert read_object(f"{bucket}/run/export/triplet.parquet") == (expected / "export/triplet.parquet").read_bytes()


def test_report_inspect_and_eval_read_a_bucket_run(finished_tiny, bucket):
    data, local = finished_tiny
    upload(local, f"{bucket}/copied")  # a local run copied into a bucket is a bucket run
    uri = f"s3://{bucket}/copied"
    mine = invoke(["report", uri, "--json"])
    assert mine.exit_code == 0, mine.output
    here = invoke(["report", local, "--json"])
    assert json.loads(mine.stdout)["stages"] == json.loads(here.stdout)["stages"]
    assert json.loads(mine.stdout)["run"] == uri  # the run named as the user named it, not by its local copy
    inspect = invoke(["inspect", uri, "q1", "--json"])
    assert inspect.exit_code == 0, inspect.output
    assert json.loads(inspect.stdout)["candidates"] == json.loads(invoke(["inspect", local, "q1", "--json"]).stdout)["candidates"]
    evaluated = invoke(["eval", uri, "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)[0]["negatives_total"] == json.loads(invoke(["eval", local, "--json"]).stdout)[0]["negatives_total"]
    assert json.loads(evaluated.stdout)[0]["run"] == "copied"  # named by its last part, as a local folder is


def test_a_stage_killed_after_its_tables_resumes(finished_tiny, bucket, monkeypatch):
    """The filter's tables are in the bucket, its manifest is not (the process stopped between the two): the
    stage counts as not done, and the same command redoes filter and export only, to the local bytes."""
    from hnmine import run_bucket

    data, local = finished_tiny
    upload(data, f"{bucket}/data")
    uri = f"s3://{bucket}/run"
    real = run_bucket.BucketRun._upload

    def stop_at_the_filter_manifest(self, rel):
        if rel == "manifests/filter.json":
            raise KeyboardInterrupt
        real(self, rel)

    monkeypatch.setattr(run_bucket.BucketRun, "_upload", stop_at_the_filter_manifest)
    result = invoke(["mine", f"s3://{bucket}/data", "--out", uri, "--quiet"])
    assert result.exit_code == 130, result.output
    held = objects(f"{bucket}/run")
    assert "negatives.parquet" in held and "manifests/filter.json" not in held and "manifests/score.json" in held
    assert not any(rel.startswith(".hnmine-lock") for rel in held)  # the lease was given back
    monkeypatch.setattr(run_bucket.BucketRun, "_upload", real)
    again = mine_json(f"s3://{bucket}/data", uri)
    assert reran(again) == ["filter", "export"]
    assert read_object(f"{bucket}/run/export/triplet.parquet") == (local / "export/triplet.parquet").read_bytes()


def test_an_object_changed_behind_a_manifest_redoes_its_stage(finished_tiny, bucket):
    data, local = finished_tiny
    upload(local, f"{bucket}/run")
    with _s3().open_output_stream(f"{bucket}/run/negatives.parquet") as out:
        out.write(b"not the table")
    result = invoke(["mine", data, "--out", f"s3://{bucket}/run", "--json"])
    assert result.exit_code == 0, result.output
    assert reran(json.loads(result.stdout)) == ["filter"]  # the same negatives again: the export is up to date
    assert "manifests/filter.json names objects that are missing or changed" in result.stderr
    assert read_object(f"{bucket}/run/negatives.parquet") == (local / "negatives.parquet").read_bytes()


def test_a_second_writer_is_refused(finished_tiny, bucket):
    from hnmine.io.bucket_lock import Lease
    from hnmine.io.storage import parse

    _, local = finished_tiny
    upload(local, f"{bucket}/run")
    holder = Lease(parse(f"s3://{bucket}/run"))
    holder.acquire()
    try:
        result = invoke(["filter", f"s3://{bucket}/run", "-n", "2", "--quiet"])
        one_line_error(result, f"s3://{bucket}/run: another hnmine process is writing this run", f"pid {os.getpid()}")
    finally:
        holder.release()
    assert objects(f"{bucket}/run") == objects(f"{bucket}/run")  # nothing half-written: the filter did not run
    assert read_object(f"{bucket}/run/negatives.parquet") == (local / "negatives.parquet").read_bytes()


def test_a_lock_left_by_a_killed_process_is_taken_over(finished_tiny, bucket):
    """A lease whose process on this host is gone is removed (with a warning), as the kernel frees a local lock."""
    import socket as sock

    _, local = finished_tiny
    upload(local, f"{bucket}/run")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with _s3().open_output_stream(f"{bucket}/run/.hnmine-lock/0-dead.json") as out:
        out.write(json.dumps({"host": sock.gethostname(), "pid": dead.pid, "since": "then"}).encode())
    result = invoke(["filter", f"s3://{bucket}/run", "-n", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert f"removed the lock of host {sock.gethostname()}, pid {dead.pid} (its process is gone)" in result.stderr
    assert objects(f"{bucket}/run/.hnmine-lock") == []


def test_a_missing_bucket_is_one_line(tiny_beir, bucket, tmp_path):
    one_line_error(
        invoke(["mine", tiny_beir, "--out", "s3://no-such-bucket-here/run", "--quiet"]), "s3://no-such-bucket-here: no such bucket"
    )
    out = tmp_path / "run"
    one_line_error(invoke(["mine", "s3://no-such-bucket-here/data", "--out", out, "--quiet"]), "s3://no-such-bucket-here: no such bucket")
    assert not out.exists()
    one_line_error(invoke(["mine", f"s3://{bucket}/nothing", "--out", out, "--quiet"]), f"s3://{bucket}/nothing: no such file or folder")
    assert not out.exists()


def test_an_input_error_names_the_uri(bucket, tmp_path):
    """A bad row in a file read from a bucket is named by its URI, not by its local copy's path."""
    folder = write_beir(tmp_path / "bad", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n{not json}\n', encoding="utf-8")
    upload(folder, f"{bucket}/bad")
    result = invoke(["mine", f"s3://{bucket}/bad", "--out", tmp_path / "run", "--quiet"])
    one_line_error(result, f"s3://{bucket}/bad/queries.jsonl:2: invalid JSON")
    assert not (tmp_path / "run").exists()


def test_judgments_and_vectors_from_a_bucket(finished_tiny, bucket, tmp_path):
    import numpy as np

    data, _ = finished_tiny
    run = tmp_path / "run"
    mine_json(data, run)
    (tmp_path / "judged.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\n", encoding="utf-8")
    vectors = np.load(run / "index/dense/embeddings.npy")
    np.save(tmp_path / "docs.npy", vectors)
    fs = _s3()
    for name in ("judged.tsv", "docs.npy"):
        with fs.open_output_stream(f"{bucket}/{name}") as out:
            out.write((tmp_path / name).read_bytes())
    result = invoke(["filter", run, "--judgments", f"s3://{bucket}/judged.tsv", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    filt = json.loads((run / "manifests/filter.json").read_text())
    assert filt["settings"]["options"]["judgments"] == f"s3://{bucket}/judged.tsv"
    other, local = tmp_path / "vectors", tmp_path / "local-vectors"
    mine_json(data, other, "--corpus-embeddings", f"s3://{bucket}/docs.npy")
    mine_json(data, local, "--corpus-embeddings", tmp_path / "docs.npy")
    for rel in ("index/dense/embeddings.npy", "export/triplet.parquet"):
        assert (other / rel).read_bytes() == (local / rel).read_bytes()
    index = json.loads((other / "manifests/index.json").read_text())
    assert index["settings"]["options"]["corpus_embeddings"] == f"s3://{bucket}/docs.npy"


def test_a_permission_error_is_one_line(tiny_beir, monkeypatch, tmp_path):
    """A key allowed to read and list, not to write: the bucket and the refused permission in one line, and
    nothing left in the bucket. The server enforces IAM (moto with INITIAL_NO_AUTH_ACTION_COUNT: the set-up's
    four requests go unchecked)."""
    proc, url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        setup = (
            "import boto3, json, sys\n"
            f"kw = dict(endpoint_url={url!r}, region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n"
            "s3 = boto3.client('s3', **kw); iam = boto3.client('iam', **kw)\n"
            "s3.create_bucket(Bucket='readonly')\n"
            "iam.create_user(UserName='reader')\n"
            "policy = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': ['s3:Get*', 's3:List*', 's3:HeadBucket'], 'Resource': '*'}]}\n"
            "iam.put_user_policy(UserName='reader', PolicyName='read', PolicyDocument=json.dumps(policy))\n"
            "key = iam.create_access_key(UserName='reader')['AccessKey']\n"
            "print(json.dumps([key['AccessKeyId'], key['SecretAccessKey']]))\n"
        )
        out = subprocess.run([str(MOTO_VENV / "bin" / "python"), "-c", setup], capture_output=True, text=True, timeout=120, check=True)
        key, secret = json.loads(out.stdout)
        _aws_env(monkeypatch, url, key, secret)
        line = one_line_error(invoke(["mine", tiny_beir, "--out", "s3://readonly/run", "--quiet"]), "s3://readonly", "access denied")
        assert "s3:PutObject" in line and "bucket 'readonly'" in line
    finally:
        _stop(proc)


def test_gs_uris_are_routed_and_missing_credentials_are_one_line(tiny_beir, tmp_path, monkeypatch):
    """No GCS server installs here: the URI is kept as given (never a local path), and with no usable
    credentials the error is one line naming the object (no request is sent: the credentials file is missing)."""
    from hnmine.io.storage import as_path, parse

    assert as_path("gs://bucket/data/corpus.jsonl") == "gs://bucket/data/corpus.jsonl"
    assert parse("gcs://bucket//a/b/").uri == "gs://bucket/a/b"
    assert isinstance(as_path("runs/x"), Path)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    out = tmp_path / "run"
    line = one_line_error(
        invoke(["mine", "gs://some-bucket/data", "--out", out, "--quiet"]), "gs://some-bucket/data", "Google Cloud credentials"
    )
    assert "missing.json" in line
    assert not out.exists()
    one_line_error(
        invoke(["mine", tiny_beir, "--corpus", "hdfs://x/y.jsonl", "--out", out]), "unknown storage scheme 'hdfs://'", "gs://, s3://"
    )


def test_an_output_file_option_refuses_a_uri(finished_tiny):
    _, local = finished_tiny
    result = invoke(["report", local, "--html", "s3://bucket/report.html"])
    one_line_error(result, "this file is written on the local disk")


def test_the_python_api_mines_from_and_into_a_bucket(finished_tiny, bucket):
    import hnmine

    data, local = finished_tiny
    upload(data, f"{bucket}/data")
    result = hnmine.mine(f"s3://{bucket}/data", out=f"s3://{bucket}/run", progress=False)
    assert result.run_dir == f"s3://{bucket}/run"
    assert result.summary["export"] == f"s3://{bucket}/run/export/triplet.parquet"
    import pyarrow.parquet as pq

    assert result.table.equals(pq.read_table(local / "export/triplet.parquet"))
    assert result.read("negatives").equals(pq.read_table(local / "negatives.parquet"))
    with pytest.raises(hnmine.errors.OptionError, match="out= a bucket takes its inputs as paths or URIs"):
        hnmine.mine([{"query": "a", "positive": "b"}], out=f"s3://{bucket}/other", progress=False)


def test_the_ray_engine_mines_from_and_into_a_bucket(finished_tiny, bucket, tmp_path):
    """The driver copies the inputs and sends each stage; the parts run in Ray's actors on the staging copy:
    the same export bytes as the local engine's."""
    pytest.importorskip("ray", reason="Ray is not installed (make setup installs it)")
    from ray_helpers import small_local_ray

    from hnmine.api import mine

    data, local = finished_tiny
    upload(data, f"{bucket}/data")
    with small_local_ray():
        mine(f"s3://{bucket}/data", out=f"s3://{bucket}/run", engine="ray", progress=False)
    for rel in ("export/triplet.parquet", "negatives.parquet", "scores.parquet"):
        assert read_object(f"{bucket}/run/{rel}") == (local / rel).read_bytes(), rel


def test_review_of_a_bucket_run_is_refused_and_its_export_works(finished_tiny, bucket, tmp_path):
    _, local = finished_tiny
    upload(local, f"{bucket}/run")
    one_line_error(invoke(["review", f"s3://{bucket}/run"]), f"s3://{bucket}/run: `hnmine review` judges a run on the local disk")
    result = invoke(["review", f"s3://{bucket}/run", "--export", tmp_path / "judged.tsv"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "judged.tsv").exists()


def test_an_input_changed_in_the_bucket_is_copied_again(finished_tiny, bucket, tmp_path):
    """The local copy is keyed by the object's size and time: an edited object is read anew, and the stages
    that read what changed rerun (here a query's text: not the index)."""
    data, _ = finished_tiny
    upload(data, f"{bucket}/data")
    run = tmp_path / "run"
    mine_json(f"s3://{bucket}/data", run)
    edited = tmp_path / "edited"
    shutil.copytree(data, edited)
    queries = edited / "queries.jsonl"
    queries.write_text(queries.read_text(encoding="utf-8").replace('"text": "', '"text": "edited: ', 1), encoding="utf-8")
    upload(edited, f"{bucket}/data")
    summary = mine_json(f"s3://{bucket}/data", run)
    assert reran(summary)[:2] == ["inputs", "retrieve"]


def test_an_endpoint_that_does_not_answer_is_one_line(tiny_beir, moto, monkeypatch, tmp_path):
    _aws_env(monkeypatch, f"http://127.0.0.1:{_free_port()}")  # a closed port on loopback
    line = one_line_error(invoke(["mine", tiny_beir, "--out", "s3://some-bucket/run", "--quiet"]), "s3://some-bucket/run")
    assert "cannot reach the storage endpoint" in line
