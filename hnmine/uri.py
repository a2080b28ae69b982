"""What a storage URI is (s3://BUCKET/KEY, gs://BUCKET/KEY) and how a path option's value is typed: a URI stays
text, a local path is a Path. Below the options (hnmine.option_spec types path options with `as_path`); the
file systems and errors are hnmine.io.storage's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hnmine.errors import OptionError

# Schemes hnmine opens, by the name a URI gives (gcs:// is pyarrow's other spelling of gs://).
SCHEMES = {"s3": "s3", "gs": "gs", "gcs": "gs"}
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def uri_scheme(value: Any) -> str | None:
    """The scheme of a URI (`s3`, `gs`), or None for a local path. A scheme hnmine does not open is an error
    listing those it does (a local file cannot be named `x://`: Path would fold the two slashes)."""
    if not isinstance(value, str):
        return None
    m = _URI.match(value)
    if m is None:
        return None
    scheme = m.group(1).lower()
    if scheme == "file":
        return None
    if scheme not in SCHEMES:
        raise OptionError(f"{value}: unknown storage scheme '{scheme}://' (valid: gs://, s3://, or a local path)")
    return SCHEMES[scheme]


def is_uri(value: Any) -> bool:
    return uri_scheme(value) is not None


def as_path(value: str | Path) -> str | Path:
    """A path option's value: a URI stays text (Path('s3://b/k') would be 's3:/b/k'), a local path is a Path
    (file:// URIs included)."""
    if is_uri(value):
        return parse(str(value)).uri
    text = str(value)
    return Path(text[len("file://") :] if text.lower().startswith("file://") else text)


@dataclass(frozen=True)
class Remote:
    """An object or a prefix in a bucket."""

    scheme: str
    bucket: str
    key: str  # without leading or trailing slashes; "" for the bucket's root

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.bucket}" + (f"/{self.key}" if self.key else "")

    @property
    def path(self) -> str:
        """The path pyarrow's file system takes."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def child(self, rel: str) -> Remote:
        rel = rel.strip("/")
        return Remote(self.scheme, self.bucket, f"{self.key}/{rel}" if self.key else rel) if rel else self

    def rel(self, path: str) -> str:
        """A pyarrow path below this prefix, relative to it."""
        return path[len(self.path) :].lstrip("/")


def parse(uri: str) -> Remote:
    scheme = uri_scheme(uri)
    if scheme is None:
        raise OptionError(f"{uri}: not a storage URI (s3://BUCKET/KEY or gs://BUCKET/KEY)")
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise OptionError(f"{uri}: no bucket named (s3://BUCKET/KEY or gs://BUCKET/KEY)")
    parts = [p for p in key.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise OptionError(f"{uri}: '.' and '..' are not parts of an object's name")
    return Remote(scheme, bucket, "/".join(parts))
