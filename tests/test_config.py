"""Options declared once: flags, TOML keys and checks come from hnmine.options; one message style."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import invoke, mine_json, reran


def _config(tmp_path, text: str):
    path = tmp_path / "hn.toml"
    path.write_text(text)
    return path


def test_the_json_key_works_like_the_flag(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    result = invoke(["mine", data, "--out", run, "--quiet", "--config", _config(tmp_path, "json = true\n")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run_dir"] == str(run)


def test_a_stage_table_applies_under_mine_and_the_command_table_wins(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    cfg = _config(tmp_path, 'num_negatives = 4\n[filter]\nnum-negatives = 3\nmethod = "naive"\n[mine]\nnum_negatives = 2\n')
    summary = json.loads(invoke(["mine", data, "--out", run, "--quiet", "--json", "--config", cfg]).stdout)
    assert reran(summary) == ["filter", "export"]
    options = json.loads((run / "manifests/filter.json").read_text())["options"]["selection"]
    assert options["num_negatives"] == 2 and options["method"] == "naive"
    # the [filter] table alone, for the filter command
    invoke(["filter", "--out", run, "--quiet", "--config", _config(tmp_path, "[filter]\nnum_negatives = 3\n")])
    assert json.loads((run / "manifests/filter.json").read_text())["options"]["selection"]["num_negatives"] == 3


def test_a_flag_beats_the_config_file(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    cfg = _config(tmp_path, "[mine]\nnum_negatives = 2\n")
    mine_json(data, run, "--config", cfg, "--num-negatives", "3")
    assert json.loads((run / "manifests/filter.json").read_text())["options"]["selection"]["num_negatives"] == 3


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("batch_size = true\n", "batch_size must be a whole number, got True"),
        ('num_negatives = "abc"\n', "num_negatives must be a whole number, got 'abc'"),
        ('margin = "x"\n', "margin must be a number, got 'x'"),
        ("[filtre]\nnum_negatives = 2\n", "unknown table [filtre] (valid:"),
        ('[filter]\nmodel = "x"\n', "[filter] model: not an option of the filter stage"),
        ("no_such_option = 1\n", "no_such_option: unknown option"),
        ("candidate_model = 3\n", "candidate_model must be text or a list of texts, got 3"),
        ('json = "yes"\n', "json must be true or false, got 'yes'"),
        ("num_negatives = 0\n", "--num-negatives must be between 1 and 1,000, got 0"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tiny_beir, tmp_path, text, fragment):
    cfg = _config(tmp_path, text)
    result = invoke(["mine", tiny_beir, "--out", tmp_path / "run", "--config", cfg, "--quiet"])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    if "--num-negatives" not in fragment:
        assert str(cfg) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--num-negatives", "1000000000"], "--num-negatives must be between 1 and 1,000, got 1000000000"),
        (["--random-negatives", "1000000000"], "--random-negatives must be between 0 and 1,000, got 1000000000"),
        (["--rrf-k", "-1"], "--rrf-k must be between 1 and 1,000,000, got -1"),
        (["--rrf-k", "0"], "--rrf-k must be between 1 and 1,000,000, got 0"),
        (["--workers", "0"], "--workers must be between 1 and 256, got 0"),
        (["--threads", "0"], "--threads must be between 1 and 4,096, got 0"),
        (["--min-recall", "0"], "--min-recall must be in (0, 1], got 0.0"),
        (["--seed", "-1"], "--seed must be between 0 and"),
        (["--depth", "0"], "--depth must be between 1 and 100,000, got 0"),
        (["--sample-pool", "0", "--method", "sampled"], "--sample-pool must be between 1 and 100,000, got 0"),
        (["--dedup-threshold", "0"], "--dedup-threshold must be in (0, 2], got 0.0"),
    ],
)
def test_every_numeric_option_is_bounded_before_any_work(tiny_beir, tmp_path, args, fragment):
    result = invoke(["mine", tiny_beir, "--out", tmp_path / "run", "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_every_numeric_option_has_bounds():
    from typing import get_args

    from hnmine.options import Options, option_fields, option_types, spec

    types = option_types(Options)
    for f in option_fields(Options):
        tp = types[f.name]
        if int in (tp, *get_args(tp)) or float in (tp, *get_args(tp)):
            s = spec(f)
            free = {"max_score", "min_score", "simans_b"}  # any finite score is meaningful
            assert f.name in free or s.low is not None, f.name


def test_the_api_takes_the_same_names_and_checks():
    from hnmine.errors import OptionError, UnknownName
    from hnmine.options import make_options

    # a model that can load (an unknown name is refused: hnmine.encode.check_model_found)
    o = make_options({"num_negatives": 3, "method": "naive", "candidate_model": "all-MiniLM-L6-v2"})
    assert o.num_negatives == 3 and o.candidate_model == ("all-MiniLM-L6-v2",)
    with pytest.raises(UnknownName, match="unknown method 'best' \\(valid:"):
        make_options({"method": "best"})
    with pytest.raises(OptionError, match="unknown option\\(s\\): nmu_negatives"):
        make_options({"nmu_negatives": 3})
