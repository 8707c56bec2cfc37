"""release_pipeline.values: text cut to a limit, lists joined within one, S3 locations as values,
credentials kept out of logs."""

from __future__ import annotations

import dataclasses

import pytest

from release_pipeline.values import Credentials, S3Location, join_within, shorten

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


def more(count: int) -> str:
    return f"+{count} more"


@pytest.mark.parametrize(
    ("items", "limit", "expected"),
    [
        ([], 10, ""),
        (["abc"], 10, "abc"),
        (["abc", "def"], 7, "abc/def"),  # exactly at the limit: whole
        (["aaaa", "bbbb", "cccc", "dddd"], 18, "aaaa/bbbb/+2 more"),  # whole items, then how many were left
        (["aaaa", "bbbb", "cccc", "dddd"], 17, "aaaa/bbbb/+2 more"),  # exactly at the limit
        (["aaaa", "bbbb", "cccc", "dddd"], 16, "aaaa/+3 more"),  # never a cut item beside the note
        (["a" * 20, "b"], 15, "aaaaaa…/+1 more"),  # a first item too long alone is cut to make room
        (["a" * 20], 10, "aaaaaaaaa…"),
    ],
)
def test_join_within_keeps_whole_items_and_says_how_many_were_left_out(
    items: list[str], limit: int, expected: str
) -> None:
    result = join_within(items, "/", limit, more)

    assert result == expected
    assert len(result) <= limit


def test_join_within_counts_the_items_left_out_exactly() -> None:
    items = [f"problem {number:03d}" for number in range(300)]

    result = join_within(items, "\n", 1000, more)

    *kept, note = result.split("\n")
    assert len(result) <= 1000
    assert kept == items[: len(kept)]
    assert note == f"+{300 - len(kept)} more"
    assert len(result) + len("\n") + len(items[len(kept)]) > 1000  # the next item would not have fit


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
