"""The run directory owns its layout: a marker, a lock, a sweep that touches only hnmine's own files,
typed manifests, and hints that name commands that exist."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HNMINE, TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, reran, snapshot, write_beir


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hnmine: error: "), err
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in err, (f, err)
    return err


def test_a_folder_of_other_files_is_refused_as_out(tiny_beir, tmp_path):
    user = tmp_path / "my-folder"
    (user / "export").mkdir(parents=True)
    (user / "export" / "triplet.parquet").write_bytes(b"the user's own file")
    (user / "notes.txt").write_text("keep me")
    before = snapshot(user)
    result = invoke(["mine", tiny_beir, "--out", user, "--quiet"])
    assert_one_line_error(result, str(user), "not an hnmine run directory", "new or empty folder")
    assert snapshot(user) == before
    assert not (user / ".hnmine-run").exists() and not (user / ".hnmine-lock").exists()


def test_an_empty_folder_is_taken_and_marked(tiny_beir, tmp_path, finished_tiny):
    run = tmp_path / "empty"
    run.mkdir()
    mine_json(tiny_beir, run)
    assert json.loads((run / ".hnmine-run").read_text())["kind"] == "hnmine run directory"


def test_the_sweep_leaves_the_users_temporary_files_alone(tmp_path):
    """`hnmine mine /nonexistent --out userdir` once deleted the user's *.tmp files, recursively."""
    user = tmp_path / "userdir"
    (user / "sub").mkdir(parents=True)
    for p in (user / ".draft.tmp", user / "sub" / ".notes.abc.tmp", user / "work.tmp"):
        p.write_text("mine")
    before = snapshot(user)
    result = invoke(["mine", tmp_path / "nonexistent", "--out", user, "--quiet"])
    assert_one_line_error(result, "nonexistent: no such file or folder")
    assert snapshot(user) == before


def test_the_sweep_in_a_run_directory_touches_only_its_own_folders(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    stale = run / "inputs" / ".corpus.parquet.x1y2.tmp"
    stale.write_bytes(b"partial")
    (run / "mine").mkdir()
    kept = run / "mine" / ".draft.tmp"
    kept.write_text("the user's")
    assert reran(mine_json(data, run)) == []
    assert not stale.exists() and kept.read_text() == "the user's"


def test_a_failed_first_run_leaves_no_folder_behind(tmp_path):
    bad = write_beir(tmp_path / "bad", [{"_id": "d1", "title": "", "text": ""}], TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "new-run"
    result = invoke(["mine", bad, "--out", run, "--quiet"])
    assert_one_line_error(result, "the corpus has no non-empty documents")
    assert not run.exists()


def test_a_second_process_is_refused_while_one_holds_the_run(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = snapshot(run)
    with open(run / ".hnmine-lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = invoke(["mine", data, "--out", run, "--method", "naive", "--quiet"])
    assert_one_line_error(result, "another hnmine process is working in this run directory")
    assert snapshot(run) == before


def test_two_real_processes_on_one_run(tmp_path):
    """Two `hnmine mine` at once on a new run: one finishes, the other is refused clearly (never a
    false 'not writable', never a half-written run)."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    cmd = [str(HNMINE), "mine", str(data), "--out", str(run), "--quiet"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:  # wait until the first one holds the lock
        lock = run / ".hnmine-lock"
        if lock.exists():
            with open(lock, "a") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                except OSError:
                    break
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    if second.returncode != 0:  # it ran while the first held the lock
        assert second.returncode == 2 and "another hnmine process is working in this run directory" in second.stderr
        assert "Traceback" not in second.stderr and "not writable" not in second.stderr
    summary = subprocess.run([*cmd[:-1], "--json"], capture_output=True, text=True, timeout=300)
    assert summary.returncode == 0 and all(s["skipped"] for s in json.loads(summary.stdout)["stages"])


@pytest.mark.parametrize(
    "field, value",
    [("outputs", []), ("counts", {"rows_in": "many"}), ("seconds", "fast"), ("models", ["x"]), ("warnings", "one"), ("key", 7)],
)
def test_a_manifest_field_of_the_wrong_type_is_not_trusted(finished_tiny, tmp_path, field, value):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    path = run / "manifests/score.json"
    m = json.loads(path.read_text())
    m[field] = value
    path.write_text(json.dumps(m))
    report = invoke(["report", run])
    assert_one_line_error(report, "score.json is not a readable JSON manifest", "hnmine score")
    summary = mine_json(data, run)
    assert "score" in reran(summary)  # redone, then trusted again
    assert invoke(["report", run]).exit_code == 0


def test_export_with_a_damaged_filter_manifest_is_one_line(finished_tiny, tmp_path):
    _, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    (run / "manifests/filter.json").write_text('{"stage": "filter", "outputs": 3}')
    result = invoke(["export", "--out", run, "--quiet"])
    assert_one_line_error(result, "stage 'filter' has not run here", "hnmine filter")


def test_hints_name_commands_that_exist(tmp_path):
    from typer.main import get_command

    from hnmine.cli import app

    run = tmp_path / "run"
    run.mkdir()
    err = assert_one_line_error(invoke(["retrieve", "--out", run]), "has not run here")
    command = err.split("run `hnmine ")[1].split("`")[0]
    assert command in get_command(app).commands and command == "index"


def test_every_path_of_a_run_is_named_in_the_layout(finished_tiny):
    """Every file a finished run holds is a LAYOUT entry or lies under one (no path is spelled elsewhere)."""
    from hnmine.run_layout import LAYOUT, LOCK, MARKER

    _, done = finished_tiny
    folders = [v for v in LAYOUT.values()]
    for p in done.rglob("*"):
        if p.is_file():
            rel = str(p.relative_to(done))
            assert rel in (MARKER, LOCK) or any(rel == f or rel.startswith(f + "/") for f in folders), rel


def test_an_earlier_run_without_a_marker_is_still_a_run(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    (run / ".hnmine-run").unlink()
    assert reran(mine_json(data, run)) == []
    assert (run / ".hnmine-run").exists()


def test_out_of_date_outputs_of_a_stage_are_removed(finished_tiny, tmp_path):
    """An export of an earlier --format does not stay beside the new one, looking current."""
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    mine_json(data, run, "--format", "n-tuple")
    assert sorted(p.name for p in (run / "export").iterdir()) == ["n-tuple.parquet"]


def test_cli_help_of_a_stage_command_is_fast_and_imports_no_model(tmp_path):
    code = (
        "import sys; from hnmine.cli import app; "
        "assert not {'torch', 'sentence_transformers', 'pandas', 'faiss'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert Path(HNMINE).exists()


# -- one reader, one wording; no path spelled outside the layout (issue 24, item 3) ----------------


@pytest.mark.parametrize("command", [["report"], ["inspect", "{run}", "q1"], ["eval"], ["review"]])
def test_a_damaged_table_is_named_alike_by_every_reader(finished_tiny, tmp_path, command):
    """report and inspect said `RUN/negatives.parquet is not a readable Parquet file: ...`, eval and the
    stages `RUN/negatives.parquet: not a readable Parquet file (...)`: two readers, two wordings."""
    import hashlib

    _, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    damaged = run / "negatives.parquet"
    damaged.write_bytes(b"PAR1 not a table PAR1")
    manifest_path = run / "manifests" / "filter.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["outputs"]["negatives.parquet"] = hashlib.sha256(damaged.read_bytes()).hexdigest()  # damaged as written
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    args = [a.replace("{run}", str(run)) for a in command] if len(command) > 1 else [command[0], str(run)]
    assert_one_line_error(invoke(args), f"{damaged}: not a readable Parquet file (")


def test_no_module_spells_a_path_of_the_run_layout():
    """report/ spelled about 20 run paths ("negatives.parquet", "inputs/queries.parquet"...): every one is a
    LAYOUT name, so a path is changed in one place (hnmine/run_layout.py)."""
    import ast

    from hnmine.run_layout import LAYOUT

    root = Path(__file__).resolve().parent.parent / "hnmine"
    paths = {rel for rel in LAYOUT.values() if "." in rel or "/" in rel}  # ("export", "inputs": also stage names)
    spelled = []
    for module in sorted(root.rglob("*.py")):
        if module.name == "run_layout.py":
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in paths:
                spelled.append(f"{module.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert not spelled, "run paths spelled outside hnmine/run_layout.py:\n" + "\n".join(spelled)
