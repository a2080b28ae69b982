"""Object storage (s3://, gs://): a URI told from a local path, its pyarrow file system, and one-line errors
that name the bucket and what was refused.

Credentials and endpoints are read as the AWS and Google SDKs read them: pyarrow's file systems run those
SDKs (environment variables, profile files, instance metadata). One addition: `AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL` (an S3-compatible server) is handed to pyarrow as its endpoint, because pyarrow's S3 file
system built by hand does not read it. hnmine.io.fetch makes local copies of remote inputs,
hnmine.run_bucket keeps a run directory on a bucket.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hnmine.errors import StorageError
from hnmine.uri import Remote, as_path, is_uri, parse, uri_scheme

__all__ = ["Remote", "as_path", "is_uri", "parse", "uri_scheme"]  # what a URI is: hnmine.uri's, named here too

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_FILESYSTEMS: dict[tuple, Any] = {}
_FS_GUARD = threading.Lock()


def endpoint() -> str | None:
    """The S3 endpoint the AWS SDK would use from the environment (an S3-compatible server), or None."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def filesystem(remote: Remote) -> pafs.FileSystem:
    """The pyarrow file system of a bucket, made once per process for the same settings."""
    env = (endpoint(), os.environ.get("AWS_PROFILE"), os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_REGION"))
    key = (remote.scheme, remote.bucket if remote.scheme == "s3" and env[0] is None else "", env)
    with _FS_GUARD:
        fs = _FILESYSTEMS.get(key)
        if fs is None:
            fs = _FILESYSTEMS[key] = _make_filesystem(remote)
    return fs


def _make_filesystem(remote: Remote) -> pafs.FileSystem:
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        if remote.scheme == "gs":
            return pafs.GcsFileSystem()
        url = endpoint()
        if url is None:  # AWS itself: from_uri asks the bucket for its region
            return pafs.FileSystem.from_uri(f"s3://{remote.bucket}")[0]
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return pafs.S3FileSystem(endpoint_override=url, region=region, connect_timeout=10)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise failure(remote, exc, "connecting") from None


# The IAM permission each S3 operation needs (pyarrow's message names the operation).
_PERMISSION = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
}


def failure(remote: Remote, exc: BaseException, doing: str) -> StorageError:
    """One line for a storage error: the object, the bucket, the refused permission or the cause."""
    text = " ".join(str(exc).split())
    m = re.search(r"AWS Error (\w+)(?: \(HTTP status (\d+)\))? during (\w+) operation", text)
    code, status, operation = (m.group(1), m.group(2), m.group(3)) if m else ("", None, "")
    where = remote.uri
    if code == "NO_SUCH_BUCKET" or "bucket does not exist" in text.lower() or ("Bucket '" in text and "not found" in text):
        return StorageError(f"{remote.scheme}://{remote.bucket}: no such bucket (while {doing} {where})")
    if code in ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH") or status == "403" or "PermissionDenied" in text:
        permission = _PERMISSION.get(operation, operation or "access")
        hint = "" if _has_credentials(remote.scheme) else f"; no credentials found ({_CREDENTIALS[remote.scheme]})"
        return StorageError(f"{where}: access denied while {doing}: bucket '{remote.bucket}' refuses {permission}{hint}")
    if code == "NETWORK_CONNECTION" or "Could not resolve" in text or "Couldn't connect" in text or "Connection refused" in text:
        return StorageError(f"{where}: cannot reach the storage endpoint ({endpoint() or remote.scheme}) while {doing}: {_short(text)}")
    if remote.scheme == "gs" and ("credentials" in text.lower() or "access token" in text.lower()):
        cause = re.search(r"underlying error message was: (.*?)(?: error_info=|$)", text)
        why = cause.group(1).strip().rstrip(",") if cause else _short(text)
        return StorageError(f"{where}: no usable Google Cloud credentials while {doing} ({why}); set {_CREDENTIALS['gs']}")
    return StorageError(f"{where}: {doing} failed: {_short(text)}")


_CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS, or `gcloud auth application-default login`",
}


def _has_credentials(scheme: str) -> bool:
    if scheme == "gs":
        return bool(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")) or (Path.home() / ".config/gcloud").is_dir()
    aws = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE") or aws.is_file())


def _short(text: str) -> str:
    text = re.sub(r"\s*\(Request ID: [^)]*\)", "", text)
    return text[:300]


def call(remote: Remote, doing: str, fn, *args, **kwargs):
    """`fn(*args)` with pyarrow's storage errors as one line naming `remote` (FileNotFoundError passes)."""
    import pyarrow as pa

    try:
        return fn(*args, **kwargs)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as exc:  # GCS's errors are ArrowException, S3's OSError
        raise failure(remote, exc, doing) from None


def check_bucket(remote: Remote) -> None:
    """The bucket exists and answers: a missing one is said at once, before anything is written."""
    import pyarrow.fs as pafs

    fs = filesystem(remote)
    info = call(remote, "looking up", fs.get_file_info, remote.bucket)
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"{remote.scheme}://{remote.bucket}: no such bucket (or no permission to see it) for {remote.uri}")
