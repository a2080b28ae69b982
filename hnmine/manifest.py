"""A stage's manifest (`manifests/<stage>.json`): what it did, read through one typed, validated reader.

A manifest whose JSON is damaged, or any field of the wrong type, is not trusted: `parse` returns
None, the stage counts as not run and is redone. Nothing else in hnmine reads manifest JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Manifest:
    stage: str
    hnmine_version: str
    key: str
    options: dict[str, Any]
    inputs: dict[str, str]  # what the stage read (run-relative path or source name) -> content fingerprint
    outputs: dict[str, str]  # run-relative path -> sha256 (file) or tree hash (folder)
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    # every option the stage reads, as it ran (hnmine.run_options): what a later command on the run
    # takes for an option it is not given
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, data: Any) -> Manifest | None:
        """The manifest in `data` (decoded JSON) when every field has its type; else None."""
        if not isinstance(data, dict):
            return None
        try:
            m = cls(
                stage=_str(data["stage"]),
                hnmine_version=_str(data["hnmine_version"]),
                key=_str(data["key"]),
                options=_dict(data.get("options", {})),
                inputs=_str_map(data.get("inputs", {})),
                outputs=_str_map(data["outputs"]),
                counts={k: _int(v) for k, v in _dict(data.get("counts", {})).items()},
                stats=_dict(data.get("stats", {})),
                warnings=[_str(w) for w in _list(data.get("warnings", []))],
                seconds=_number(data.get("seconds", 0.0)),
                finished_at=_str(data.get("finished_at", "")),
                packages=_str_map(data.get("packages", {})),
                models={k: _dict(v) for k, v in _dict(data.get("models", {})).items()},
                settings=_dict(data.get("settings", {})),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return m

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return cls.parse(data)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TypeError
    return float(v)


def _dict(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise TypeError
    return v


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise TypeError
    return v


def _str_map(v: Any) -> dict[str, str]:
    return {_str(k): _str(x) for k, x in _dict(v).items()}
