"""release_pipeline.artifacts: zip archives in S3, read within caps and written encrypted."""

from __future__ import annotations

import io
import stat
import zipfile
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from release_pipeline import artifacts
from release_pipeline.artifacts import Archive, build_zip, download, upload
from release_pipeline.errors import ArtifactError
from release_pipeline.values import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.usefixtures("aws")

REGION = "us-east-1"
BUCKET = "release-pipeline-artifacts"
TEMPLATE = b"AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n"


@pytest.fixture
def s3() -> S3Client:
    client: S3Client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


def raw_zip(entries: dict[str, bytes]) -> bytes:
    """A zip written by zipfile itself, entry names exactly as given (no checks of ours)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def calls_to(client: S3Client, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of every ``operation`` call the client makes from now on."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        seen.append(params)

    client.meta.events.register(f"provide-client-params.s3.{operation}", record)
    return seen


# ------------------------------------------------------------------------------------ unsafe entries


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("../evil.yaml", "leaves its folder"),
        ("infra/../../evil.yaml", "leaves its folder"),
        ("infra\\..\\..\\evil.yaml", "leaves its folder"),
        ("..", "leaves its folder"),
        ("/etc/passwd", "absolute path"),
        ("\\windows\\system32\\evil.dll", "absolute path"),
        ("C:/Windows/evil.yaml", "absolute path"),
        ("c:\\evil.yaml", "absolute path"),
    ],
)
def test_unsafe_entry_is_rejected_before_anything_is_read(entry: str, problem: str) -> None:
    """GIVEN a zip with one safe file and one unsafe entry THEN opening it fails, naming the entry:
    not even the safe file can be read from it."""
    data = raw_zip({"infra/app.yaml": TEMPLATE, entry: b"owned"})
    assert entry in zipfile.ZipFile(io.BytesIO(data)).namelist()  # zipfile kept the name as written

    with pytest.raises(ArtifactError) as error:
        Archive(data, "source artifact")

    assert problem in str(error.value)
    assert repr(entry) in str(error.value)
    assert str(error.value).startswith("The source artifact has an entry")


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 40, raw_zip({"a.yaml": b"x"})[:-30]],
    ids=["empty", "text", "truncated-header", "truncated-archive"],
)
def test_corrupt_bytes_are_not_a_valid_zip(data: bytes) -> None:
    with pytest.raises(ArtifactError, match=r"^The source artifact is not a valid zip archive"):
        Archive(data, "source artifact")


def test_archive_over_the_entry_cap_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_ENTRIES", 3)
    files = {f"file{i}.txt": b"x" for i in range(4)}

    with pytest.raises(ArtifactError, match=r"has 4 entries, over the cap of 3"):
        Archive(build_zip(files), "source artifact")

    assert Archive(build_zip(dict(list(files.items())[:3])), "source artifact").names == {
        "file0.txt",
        "file1.txt",
        "file2.txt",
    }


def test_archive_over_the_uncompressed_cap_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small archive that expands past the cap (a zip bomb in miniature) is refused."""
    monkeypatch.setattr(artifacts, "MAX_UNCOMPRESSED_BYTES", 1000)
    bomb = build_zip({"a.txt": b"0" * 600, "b.txt": b"0" * 600})
    assert len(bomb) < 1000

    with pytest.raises(ArtifactError, match=r"expands to 1200 bytes, over the cap of 1000"):
        Archive(bomb, "source artifact")

    assert Archive(build_zip({"a.txt": b"0" * 1000}), "source artifact").read("a.txt") == b"0" * 1000


# ------------------------------------------------------------------------------------------ reading


def test_read_of_a_path_not_in_the_archive_names_the_path() -> None:
    archive = Archive(build_zip({"infra/app.yaml": TEMPLATE}), "source artifact")

    with pytest.raises(ArtifactError) as error:
        archive.read("infra/missing.yaml")

    assert str(error.value) == "The source artifact has no file 'infra/missing.yaml'"


def test_text_reads_a_file_or_gives_none_when_there_is_none() -> None:
    archive = Archive(build_zip({"map.json": b'{"Waves": []}', "odd.txt": b"caf\xe9"}), "source artifact")

    assert archive.text("map.json") == '{"Waves": []}'
    assert archive.text("odd.txt") == "caf\ufffd"  # undecodable bytes replaced, never an error
    assert archive.text("missing.json") is None


def test_read_of_a_folder_is_not_a_file() -> None:
    data = raw_zip({"infra/": b"", "infra/app.yaml": TEMPLATE})
    archive = Archive(data, "source artifact")

    assert archive.names == {"infra/app.yaml"}
    with pytest.raises(ArtifactError, match="has no file 'infra/'"):
        archive.read("infra/")


@pytest.mark.parametrize("path", ["infra/app.yaml", "./infra/app.yaml", "infra//app.yaml", "infra\\app.yaml"])
def test_read_normalises_the_path(path: str) -> None:
    archive = Archive(build_zip({"infra/app.yaml": TEMPLATE}), "source artifact")

    assert archive.read(path) == TEMPLATE


@pytest.mark.parametrize("path", ["../infra/app.yaml", "/infra/app.yaml", "C:\\infra\\app.yaml"])
def test_read_refuses_an_unsafe_path(path: str) -> None:
    archive = Archive(build_zip({"infra/app.yaml": TEMPLATE}), "source artifact")

    with pytest.raises(ArtifactError, match=r"absolute path|leaves its folder"):
        archive.read(path)


# ------------------------------------------------------------------------------------- build_zip


def test_build_zip_round_trips() -> None:
    files = {"infra/app.yaml": TEMPLATE, "template-configuration.json": b'{"Parameters": {}}', "empty": b""}

    archive = Archive(build_zip(files), "stage artifact")

    assert archive.names == set(files)
    for name, data in files.items():
        assert archive.read(name) == data


def test_build_zip_is_deterministic() -> None:
    """Same files, in any order, at any time: the same bytes (so an unchanged artifact looks unchanged)."""
    files = {"b.json": b"{}", "a/app.yaml": TEMPLATE}

    first = build_zip(files)
    second = build_zip(dict(reversed(list(files.items()))))

    assert first == second
    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == ["a/app.yaml", "b.json"]
    assert {info.date_time for info in zipfile.ZipFile(io.BytesIO(first)).infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.parametrize("name", ["../escape.json", "/abs.json", ""])
def test_build_zip_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(ArtifactError):
        build_zip({name: b"{}"})


# ------------------------------------------------------------------------------------------ download


def test_download_reads_the_object(s3: S3Client) -> None:
    data = build_zip({"infra/app.yaml": TEMPLATE})
    s3.put_object(Bucket=BUCKET, Key="pipeline/SourceOutp/abc", Body=data)

    assert download(s3, S3Location(BUCKET, "pipeline/SourceOutp/abc")) == data


def test_download_reads_the_requested_version(s3: S3Client) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=BUCKET, Key="releases/1/source.zip", Body=b"old")["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="releases/1/source.zip", Body=b"new")

    assert download(s3, S3Location(BUCKET, "releases/1/source.zip"), old) == b"old"
    assert download(s3, S3Location(BUCKET, "releases/1/source.zip")) == b"new"


def test_download_over_the_archive_cap_never_fetches_the_body(s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_ARCHIVE_BYTES", 100)
    s3.put_object(Bucket=BUCKET, Key="big.zip", Body=b"x" * 101)
    gets = calls_to(s3, "GetObject")

    with pytest.raises(ArtifactError) as error:
        download(s3, S3Location(BUCKET, "big.zip"), what="source artifact")

    assert str(error.value) == (f"The source artifact s3://{BUCKET}/big.zip is 101 bytes, over the 100 byte cap")
    assert gets == []


def test_download_at_the_archive_cap_is_allowed(s3: S3Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_ARCHIVE_BYTES", 100)
    s3.put_object(Bucket=BUCKET, Key="fits.zip", Body=b"x" * 100)

    assert download(s3, S3Location(BUCKET, "fits.zip")) == b"x" * 100


@pytest.mark.parametrize(
    ("bucket", "key", "version_id"),
    [
        (BUCKET, "pipeline/SourceOutp/missing", None),
        ("no-such-artifact-bucket", "pipeline/SourceOutp/abc", None),
        (BUCKET, "releases/1/source.zip", "no-such-version"),
    ],
    ids=["missing-object", "missing-bucket", "missing-version"],
)
def test_missing_object_names_its_s3_url(s3: S3Client, bucket: str, key: str, version_id: str | None) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="releases/1/source.zip", Body=b"zip")

    with pytest.raises(ArtifactError) as error:
        download(s3, S3Location(bucket, key), version_id, what="released source")

    assert str(error.value) == f"The released source s3://{bucket}/{key} does not exist"


# -------------------------------------------------------------------------------------------- upload


def test_upload_with_a_kms_key_is_sse_kms_and_returns_the_version(s3: S3Client) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key_arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    location = S3Location(BUCKET, "pipeline/StageSourc/xyz")

    first = upload(s3, location, b"one", key_arn)
    second = upload(s3, location, b"two", key_arn)

    head = s3.head_object(Bucket=BUCKET, Key=location.key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert head["ContentType"] == "application/zip"
    assert first is not None
    assert second is not None
    assert first != second
    assert head["VersionId"] == second
    assert s3.get_object(Bucket=BUCKET, Key=location.key, VersionId=first)["Body"].read() == b"one"


def test_upload_without_a_key_is_not_kms_and_unversioned_gives_no_version(s3: S3Client) -> None:
    location = S3Location(BUCKET, "plain.json")

    version = upload(s3, location, b"{}", None, content_type="application/json")

    head = s3.head_object(Bucket=BUCKET, Key=location.key)
    assert head.get("ServerSideEncryption") != "aws:kms"
    assert "SSEKMSKeyId" not in head
    assert head["ContentType"] == "application/json"
    assert version is None


def test_symbolic_link_entry_is_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("app/template.yaml")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")

    with pytest.raises(ArtifactError, match=r"has a symbolic link: 'app/template\.yaml'"):
        artifacts.Archive(buffer.getvalue(), "source artifact")


def test_file_over_the_template_cap_in_a_small_archive_is_refused_before_it_is_expanded() -> None:
    """GIVEN a tiny archive whose template expands to 100 MiB THEN reading it fails naming the cap, and
    no more than the cap is ever decompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app/template.yaml", b" " * (100 * 1024 * 1024))
    assert len(buffer.getvalue()) < 1024 * 1024

    with pytest.raises(ArtifactError, match=r"over the 1048576 byte cap \(104857600 bytes\)"):
        artifacts.Archive(buffer.getvalue(), "source artifact").read("app/template.yaml")


def test_file_whose_declared_size_lies_is_still_cut_at_the_cap() -> None:
    data = artifacts.build_zip({"app/template.yaml": b"x" * 5000})

    with pytest.raises(ArtifactError, match="over the 4096 byte cap"):
        artifacts.Archive(data, "source artifact").read("app/template.yaml", limit=4096)
    assert artifacts.Archive(data, "source artifact").read("app/template.yaml", limit=5000) == b"x" * 5000


def test_archive_cap_follows_the_function_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
    assert artifacts._archive_cap() == 32 * 1024 * 1024
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "10240")
    assert artifacts._archive_cap() == 50 * 1024 * 1024
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    assert artifacts._archive_cap() == 50 * 1024 * 1024
