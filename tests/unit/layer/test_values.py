"""release_pipeline.values: text cut to a limit, S3 locations as values, credentials kept out of logs."""

from __future__ import annotations

import dataclasses

import pytest

from release_pipeline.values import Credentials, S3Location, shorten

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
KEY_ID = "ASIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 5, ""),
        ("abc", 5, "abc"),
        ("abcde", 5, "abcde"),  # exactly at the limit: kept whole, no ellipsis
        ("abcdef", 5, "abcd…"),
        ("ab", 1, "…"),
        ("héllo wörld", 6, "héllo…"),  # counted in characters, not bytes
        ("🚀🚀🚀", 2, "🚀…"),
    ],
)
def test_shorten_keeps_text_within_the_limit_and_marks_a_cut(text: str, limit: int, expected: str) -> None:
    result = shorten(text, limit)

    assert result == expected
    assert len(result) <= limit or len(text) <= limit
    assert result.endswith("…") == (len(text) > limit)


def test_a_cut_text_is_exactly_the_limit_and_starts_as_the_original() -> None:
    text = "x" * 1000

    result = shorten(text, 300)

    assert len(result) == 300
    assert result[:299] == text[:299]


def test_s3_locations_are_equal_by_value_and_hashable() -> None:
    one = S3Location(bucket="artifacts", key="releases/e1/source.zip")
    same = S3Location("artifacts", "releases/e1/source.zip")

    assert one == same
    assert len({one, same}) == 1
    assert one != S3Location("artifacts", "releases/e2/source.zip")
    assert one != S3Location("other", "releases/e1/source.zip")


def test_an_s3_location_cannot_be_changed() -> None:
    location = S3Location("artifacts", "key")

    with pytest.raises(dataclasses.FrozenInstanceError):
        location.key = "other"  # type: ignore[misc]
    assert location.key == "key"


def test_credentials_repr_and_str_show_no_secret() -> None:
    credentials = Credentials(KEY_ID, SECRET, SESSION)

    for shown in (repr(credentials), str(credentials), f"{credentials}", repr([credentials]), repr({"c": credentials})):
        assert shown.count("Credentials(<redacted>)") == 1
        for secret in (KEY_ID, SECRET, SESSION):
            assert secret not in shown


def test_credentials_keep_their_values_for_the_client_that_needs_them() -> None:
    credentials = Credentials(KEY_ID, SECRET, SESSION)

    assert (credentials.access_key_id, credentials.secret_access_key, credentials.session_token) == (
        KEY_ID,
        SECRET,
        SESSION,
    )


def test_credentials_have_no_instance_dict_to_dump() -> None:
    """No ``__dict__`` (``vars()``, a logger's ``extra``, a JSON default of ``o.__dict__``) exposes them, and
    no attribute can be added by mistake."""
    credentials = Credentials(KEY_ID, SECRET, SESSION)

    assert not hasattr(credentials, "__dict__")
    with pytest.raises(TypeError):
        vars(credentials)
    with pytest.raises(AttributeError):
        credentials.extra = "x"  # type: ignore[attr-defined]
