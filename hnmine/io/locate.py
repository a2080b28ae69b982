"""Which files a run's inputs are, and which of their columns to read: a BEIR folder's files (its corpus,
queries and the qrels of a split), separate files, a pairs file or a saved `datasets` folder, each checked
to exist before anything is read (hnmine.io.inputs reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hnmine.errors import InputError, OptionError
from hnmine.io.files import choose_split, is_saved_dataset


@dataclass(frozen=True)
class InputSpec:
    """Where the inputs are and which columns hold what. None means: detect."""

    data: Path | None = None  # a BEIR folder, or a pairs file
    split: str | None = None
    corpus: Path | None = None
    queries: Path | None = None
    qrels: Path | None = None
    pairs: Path | None = None
    doc_id_column: str | None = None
    doc_text_column: str | None = None
    doc_title_column: str | None = None
    query_id_column: str | None = None
    query_text_column: str | None = None
    qrels_query_column: str | None = None
    qrels_doc_column: str | None = None
    qrels_score_column: str | None = None
    pair_query_column: str | None = None
    pair_positive_column: str | None = None
    premined: Path | None = None  # a pre-mined dataset (hnmine.io.premined): queries, positives and candidates
    premined_format: str | None = None
    min_relevance: int = 1

    def source_files(self) -> dict[str, Path]:
        """The files this spec reads, resolved, for fingerprints."""
        return {k: v for k, v in resolve_files(self).items() if v is not None}


def input_spec(options) -> InputSpec:
    """The inputs settings of a run's options (fields of the same names)."""
    from dataclasses import fields

    return InputSpec(**{f.name: getattr(options, f.name) for f in fields(InputSpec)})


def resolve_files(spec: InputSpec) -> dict[str, Path | None]:
    """Which files to read: from --data (folder or pairs file) or the explicit options."""
    files: dict[str, Path | None] = {"corpus": spec.corpus, "queries": spec.queries, "qrels": spec.qrels, "pairs": spec.pairs}
    if spec.premined is not None:
        return _premined_files(spec, {**files, "premined": spec.premined})
    folder = False
    if spec.data is not None:
        data = Path(spec.data)
        if not data.exists():
            raise InputError(f"{data}: no such file or folder")
        if spec.pairs is not None:
            raise OptionError(f"{data} and --pairs {spec.pairs}: give the data once, as DATA or as --pairs")
        if is_saved_dataset(data):  # (anchor, positive) pairs saved with datasets' save_to_disk
            files["pairs"] = data
            folder = (data / "dataset_dict.json").is_file()  # --split chooses one of its splits
        elif data.is_dir():
            folder = True
            files["corpus"] = files["corpus"] or _first_existing(data, _names("corpus"))
            files["queries"] = files["queries"] or _first_existing(data, _names("queries"))
            files["qrels"] = files["qrels"] or _beir_qrels(data, spec.split)
        else:
            files["pairs"] = data
    if spec.split is not None and not folder:
        raise OptionError(
            f"--split '{spec.split}' chooses the qrels file of a BEIR folder (or a split of a saved DatasetDict), and none is given"
            f"{' (--qrels names the file)' if spec.qrels is not None else ''}"
        )
    _check_column_options(spec, pairs=files["pairs"] is not None, corpus=files["corpus"] is not None)
    for role, given in files.items():
        if given is not None:
            _check_file(given, role)
    if files["pairs"] is not None:
        if files["queries"] is not None or files["qrels"] is not None:
            raise OptionError("a pairs file replaces --queries and --qrels: give one or the other")
        return files
    for role in ("corpus", "queries", "qrels"):
        if files[role] is None:
            raise OptionError(f"no {role} file: give a BEIR folder, --{role} FILE, or a pairs file")
    return files


def _premined_files(spec: InputSpec, files: dict[str, Path | None]) -> dict[str, Path | None]:
    """A pre-mined dataset is the run's data (its queries and positives): with --corpus, --queries (texts found there
    keep their ids) and, for a scored pool that marks no positives, --qrels; never with DATA or --pairs."""
    premined = Path(spec.premined)  # type: ignore[arg-type]
    other = spec.data if spec.data is not None else spec.pairs
    if other is not None:
        raise OptionError(f"{other} and --premined {premined}: a pre-mined dataset is the run's data; give one or the other")
    _check_file(premined, "premined")
    dict_folder = is_saved_dataset(premined) and (premined / "dataset_dict.json").is_file()
    if spec.split is not None and not dict_folder:
        raise OptionError(f"--split '{spec.split}' chooses a split of a saved DatasetDict, and --premined {premined} is none")
    if is_pool_folder(premined):
        given = [f"--{role}" for role in ("corpus", "queries") if files[role] is not None]
        if given:
            raise OptionError(
                f"--premined {premined} is a scored pool's folder, which holds its queries and documents: {' and '.join(given)} would be unused"
            )
    groups = [
        ("--queries", ("query_id_column", "query_text_column"), files["queries"]),
        ("--qrels", ("qrels_query_column", "qrels_doc_column", "qrels_score_column"), files["qrels"]),
        ("--corpus", ("doc_id_column", "doc_text_column", "doc_title_column"), files["corpus"]),
    ]
    for what, names, path in groups:
        named = ["--" + n.replace("_", "-") for n in names if getattr(spec, n) is not None]
        if path is None and named:
            raise OptionError(f"{', '.join(named)} names a column of {what}, and none is read: the option would be unused")
    for role in ("corpus", "queries", "qrels"):
        if files[role] is not None:
            _check_file(files[role], role)  # type: ignore[arg-type]
    return files


POOL_TABLES = ("train", "queries", "documents")  # a scored pool's folder (the scored-pool export): one file each


def is_pool_folder(path: Path) -> bool:
    """A folder holding a scored pool's three tables (train, queries, documents), as the scored-pool export writes them."""
    path = Path(path)
    return path.is_dir() and not is_saved_dataset(path) and all(_present(path, stem) for stem in POOL_TABLES)


def pool_files(folder: Path) -> dict[str, Path]:
    """{train, queries, documents: file} of a scored pool's folder (one file of each, any readable format)."""
    return {stem: _first_existing(Path(folder), _names(stem)) for stem in POOL_TABLES}


def _present(folder: Path, stem: str) -> bool:
    return any((folder / name).is_file() for name in _names(stem))


def _check_column_options(spec: InputSpec, *, pairs: bool, corpus: bool) -> None:
    """A column option for a file that is not read would be silently unused: refused."""
    groups = [
        ("a pairs file", ("pair_query_column", "pair_positive_column"), not pairs),
        (
            "a queries or qrels file (a pairs file replaces them)",
            ("query_id_column", "query_text_column", "qrels_query_column", "qrels_doc_column", "qrels_score_column"),
            pairs,
        ),
        ("a corpus file (with a pairs file: --corpus)", ("doc_id_column", "doc_text_column", "doc_title_column"), not corpus),
    ]
    for what, names, unread in groups:
        given = ["--" + n.replace("_", "-") for n in names if getattr(spec, n) is not None]
        if unread and given:
            raise OptionError(f"{', '.join(given)} names a column of {what}, and none is read: the option would be unused")


def _check_file(path: Path, role: str) -> None:
    from hnmine.io.files import check_regular_file, check_utf8_path

    path = Path(path)
    check_utf8_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file ({role})")
    check_regular_file(path, role)
    if path.is_dir() and not is_saved_dataset(path) and not (role == "premined" and is_pool_folder(path)):
        if role == "premined":
            raise InputError(
                f"{path}: is a folder that is neither a saved `datasets` folder nor a scored pool (train, queries and documents "
                f"files); name the file (--premined)"
            )
        raise InputError(f"{path}: is a folder, expected a {role} file")


def _names(stem: str) -> list[str]:
    """A BEIR folder's file names for `stem`, in the order they are looked for (gzip-compressed ones too)."""
    return [f"{stem}{ext}" for ext in (".jsonl", ".jsonl.gz", ".parquet", ".tsv", ".tsv.gz", ".csv", ".csv.gz")]


def _first_existing(folder: Path, names: list[str]) -> Path:
    present = [name for name in names if (folder / name).exists()]
    if len(present) > 1:  # which one is current is a guess: refuse rather than read a stale copy
        raise InputError(
            f"{folder}: several {names[0].split('.')[0]} files ({', '.join(present)}); keep one, or name it with --{names[0].split('.')[0]}"
        )
    if present:
        return folder / present[0]
    raise InputError(f"{folder}: no {names[0].split('.')[0]} file (looked for {', '.join(names)})")


def _beir_qrels(folder: Path, split: str | None) -> Path:
    qdir = folder / "qrels"
    found: dict[str, list[Path]] = {}
    for ext in (".tsv", ".tsv.gz"):
        for p in sorted(qdir.glob(f"*{ext}")) if qdir.is_dir() else []:
            found.setdefault(p.name[: -len(ext)], []).append(p)
    splits = sorted(found)
    if not splits:
        raise InputError(f"{qdir}: no qrels/<split>.tsv files")
    if split is not None and split not in splits:
        raise InputError(f"{qdir}: no split '{split}' (splits: {', '.join(splits)})")
    split = choose_split(splits, split, folder)
    if len(found[split]) > 1:  # which one is current is a guess: refuse rather than read a stale copy
        raise InputError(
            f"{qdir}: several files for split '{split}' ({', '.join(p.name for p in found[split])}); keep one, or name it with --qrels"
        )
    return found[split][0]
