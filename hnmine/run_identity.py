"""Which data a run directory holds: a run is never silently replaced by a run of other data.

A run's inputs are the files it was mined from, each known by its absolute path and its content (inputs
the Python API staged in the run's own `sources/` folder have only content: an in-memory dataset has no
path). Other inputs are files at another path with other bytes: `hnmine mine OTHER --out RUN` (or
`hnmine.mine(other_dataset, out=RUN)`) on a run of other inputs is refused with a message naming the
run's inputs, unless the user asks to replace them (`--replace`, `replace=True`). The same files edited
in place, or the same bytes moved to another folder, are the same inputs: the stages that read what
changed rerun, as for any change. Review verdicts on texts that changed are set aside either way
(hnmine.judgments).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from hnmine.errors import RunDirError

if TYPE_CHECKING:
    from hnmine.options import Options
    from hnmine.rundir import RunDir


def input_identity(options: Options, run_path: Path, content_roots: Iterable[Path] = ()) -> dict[str, dict]:
    """{role: {"path": absolute path or None, "sha256": content}} of the files the inputs stage reads; files
    inside the run (or under `content_roots`, where the API stages data before moving it into the run)
    have no path of the user's."""
    from hnmine.io.fetch import uri_of
    from hnmine.io.hashing import content_hash
    from hnmine.io.locate import input_spec, resolve_files

    roots = [Path(run_path).resolve(), *(Path(r).resolve() for r in content_roots)]
    out = {}
    for role, path in resolve_files(input_spec(options)).items():
        if path is None:
            continue
        absolute = Path(path).resolve()
        staged = any(absolute.is_relative_to(root) for root in roots)
        out[role] = {"path": None if staged else (uri_of(absolute) or str(absolute)), "sha256": content_hash(absolute)}
    return out


def same_inputs(now: dict[str, dict], recorded: dict[str, dict]) -> list[str]:
    """The roles in which `now` names other data than `recorded`: another file (other path) with other bytes."""
    differ = []
    for role in sorted(set(now) | set(recorded)):
        a, b = now.get(role), recorded.get(role)
        if a is None or b is None or not isinstance(b, dict):
            differ.append(role)
        elif not ((a["path"] is not None and a["path"] == b.get("path")) or a["sha256"] == b.get("sha256")):
            differ.append(role)
    return differ


def check_same_inputs(run: RunDir, options: Options, *, replace: bool, content_roots: Iterable[Path] = ()) -> None:
    """Refuse to mine other inputs into a run that holds a run of these (RunDirError), unless `replace`."""
    m = run.manifest("inputs")
    recorded = m.stats.get("identity") if m is not None else None
    if replace or not isinstance(recorded, dict) or not recorded:
        return  # a new run, or one an older hnmine made (it recorded no identity)
    damaged = [role for role, entry in recorded.items() if not _whole(role, entry)]
    if damaged:  # comparing with it would call the user's own data other data
        raise RunDirError(
            f"{run.manifest_path('inputs')}: the record of the run's inputs is damaged ({', '.join(map(str, damaged))}); "
            f"give --replace to mine these inputs into the run, or another --out"
        )
    differ = same_inputs(input_identity(options, run.path, content_roots), recorded)
    if not differ:
        return
    held = ", ".join(f"{role} {_shown(recorded[role])}" for role in _ROLES if isinstance(recorded.get(role), dict))
    raise RunDirError(
        f"{run.path} holds a run of other inputs ({held}); these differ ({', '.join(differ)}): give --replace to mine "
        f"them into it (review verdicts on texts that changed are set aside), or another --out"
    )


_ROLES = ("pairs", "premined", "corpus", "queries", "qrels")


def _whole(role: str, entry: object) -> bool:
    """One role's identity as input_identity writes it: {"path": absolute path or None, "sha256": text}."""
    return (
        role in _ROLES
        and isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and (entry.get("path") is None or isinstance(entry.get("path"), str))
    )


def input_files(options: Options) -> dict[str, str]:
    """{role: absolute path} of the files the inputs stage reads (for its manifest: a relative path would
    name a file only from the folder the command ran in)."""
    from hnmine.io.fetch import uri_of
    from hnmine.io.locate import input_spec, resolve_files

    files = resolve_files(input_spec(options)).items()
    return {role: uri_of(p) or str(Path(p).absolute()) for role, p in files if p is not None}


def _shown(identity: dict) -> str:
    path = identity.get("path")
    return str(path) if path else f"(data given in memory, sha256 {str(identity.get('sha256'))[:12]})"
