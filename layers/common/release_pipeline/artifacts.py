"""Pipeline artifacts: zip archives in S3, read and written safely.

Archives are read whole into memory with caps on their size, their number of entries and their
uncompressed size; entries with ``..``, an absolute path or a symbolic link are rejected before anything
is used. The archive cap follows from the function's memory, and a file is read from an archive only up
to CloudFormation's template limit, streamed, so a small archive that expands hugely is refused before
it fills the function's memory.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from release_pipeline.errors import ArtifactError, error_code
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _archive_cap() -> int:
    """An eighth of the function's memory (Lambda sets AWS_LAMBDA_FUNCTION_MEMORY_SIZE, in MB), at most
    50 MiB: the archive is held once as downloaded and once as uploaded, beside the runtime and boto3."""
    memory_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    cap = 50 * 1024 * 1024
    if memory_mb.isdigit() and int(memory_mb) > 0:
        cap = min(cap, int(memory_mb) * 1024 * 1024 // 8)
    return cap


MAX_ARCHIVE_BYTES = _archive_cap()
# CloudFormation reads a template of at most 1 MB from S3 (51,200 bytes inline): no file the functions
# read from an archive is larger.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
MAX_FILE_BYTES = 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_ENTRIES = 10_000


def download(s3: S3Client, location: S3Location, version_id: str | None = None, what: str = "artifact") -> bytes:
    """The object's bytes; a missing object or one over the cap is an :class:`ArtifactError`."""
    request = {"Bucket": location.bucket, "Key": location.key}
    if version_id:
        request["VersionId"] = version_id
    try:
        head = s3.head_object(**request)  # type: ignore[arg-type]
        if head["ContentLength"] > MAX_ARCHIVE_BYTES:
            raise ArtifactError(
                f"The {what} s3://{location.bucket}/{location.key} is {head['ContentLength']} bytes, "
                f"over the {MAX_ARCHIVE_BYTES} byte cap"
            )
        # Read at most one byte past the cap: an object that grew after the HEAD is still refused.
        data: bytes = s3.get_object(**request)["Body"].read(MAX_ARCHIVE_BYTES + 1)  # type: ignore[arg-type]
        if len(data) > MAX_ARCHIVE_BYTES:
            raise ArtifactError(
                f"The {what} s3://{location.bucket}/{location.key} is over the {MAX_ARCHIVE_BYTES} byte cap"
            )
        return data
    except ClientError as error:
        code = error_code(error)
        # A HEAD with a version id that does not exist answers 400 with no body.
        if code in {"400", "404", "NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound", "InvalidArgument"}:
            raise ArtifactError(f"The {what} s3://{location.bucket}/{location.key} does not exist") from None
        if code in {"403", "AccessDenied"}:
            raise ArtifactError(f"Access denied reading the {what} s3://{location.bucket}/{location.key}") from None
        raise


def upload(
    s3: S3Client,
    location: S3Location,
    body: bytes,
    kms_key_id: str | None,
    content_type: str = "application/zip",
    *,
    only_new: bool = False,
) -> str | None:
    """Write ``body``, encrypted with ``kms_key_id`` when given; returns the new version id, if any. With
    ``only_new``, S3 refuses the write (PreconditionFailed) when the key already has an object."""
    request = {"Bucket": location.bucket, "Key": location.key, "Body": body, "ContentType": content_type}
    if kms_key_id:
        request |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    if only_new:
        request["IfNoneMatch"] = "*"
    response = s3.put_object(**request)  # type: ignore[arg-type]
    return response.get("VersionId")


class Archive:
    """A validated zip archive held in memory."""

    def __init__(self, data: bytes, what: str) -> None:
        self.what = what
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise ArtifactError(f"The {what} is not a valid zip archive: {error}") from None
        if len(infos) > MAX_ENTRIES:
            raise ArtifactError(f"The {what} has {len(infos)} entries, over the cap of {MAX_ENTRIES}")
        total = 0
        for info in infos:
            check_entry_name(info.filename, what)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArtifactError(f"The {what} has a symbolic link: {info.filename!r}")
            total += info.file_size
        if total > MAX_UNCOMPRESSED_BYTES:
            raise ArtifactError(f"The {what} expands to {total} bytes, over the cap of {MAX_UNCOMPRESSED_BYTES}")
        self._infos = {info.filename: info for info in infos if not info.is_dir()}
        self._names = set(self._infos)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def read(self, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
        """The bytes of the entry at ``path`` (a relative POSIX path), refused past ``limit`` bytes: the
        declared size is checked first, and the entry is streamed so a false declaration is caught too."""
        name = normalise_path(path, self.what)
        if name not in self._names:
            raise ArtifactError(f"The {self.what} has no file {path!r}")
        too_large = f"The file {path!r} in the {self.what} is over the {limit} byte cap"
        if self._infos[name].file_size > limit:
            raise ArtifactError(f"{too_large} ({self._infos[name].file_size} bytes)")
        try:
            with self._zip.open(name) as entry:
                data = entry.read(limit + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise ArtifactError(f"Could not read {path!r} from the {self.what}: {error}") from None
        if len(data) > limit:
            raise ArtifactError(too_large)
        return data

    def text(self, path: str) -> str | None:
        """The UTF-8 text of the file at ``path``, or ``None`` when the archive has no such file; a file
        that is not UTF-8 text is refused by name."""
        if normalise_path(path, self.what) not in self._names:
            return None
        try:
            return self.read(path).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ArtifactError(f"The file {path!r} in the {self.what} is not UTF-8 text: {error.reason}") from None


def check_entry_name(name: str, what: str) -> None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArtifactError(f"The {what} has an entry with an absolute path: {name!r}")
    if ".." in name.replace("\\", "/").split("/"):
        raise ArtifactError(f"The {what} has an entry that leaves its folder: {name!r}")


def normalise_path(path: str, what: str) -> str:
    check_entry_name(path, what)
    name = posixpath.normpath(path.replace("\\", "/"))
    if name in {".", ""}:
        raise ArtifactError(f"Empty file path for the {what}")
    return name


def build_zip(files: Mapping[str, bytes]) -> bytes:
    """A deterministic zip archive of ``files`` (path -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(normalise_path(name, "archive"), date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()
