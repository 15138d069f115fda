"""S3 object metadata and tags with odd values (empty, spaces, '+', '&', '=', unicode in tags)
survive backup and restore through moto, property-based (hypothesis)."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from strongroom.repository import Repository
from strongroom.sources.s3.backup import backup_bucket
from strongroom.sources.s3.restore import restore_bucket
from tests.s3bucket.test_s3bucket_source import new_bucket, state
from tests.support.moto_server import s3_client

# S3 tags: letters, digits, spaces and + - = . _ : / @ in any language; values may be empty.
TAG_CHARS = st.one_of(st.sampled_from(list(" +-=._:/@" + string.ascii_letters + string.digits)),
                      st.characters(categories=["L", "N"]))
tag_keys = st.text(TAG_CHARS, min_size=1, max_size=12).filter(lambda k: not k.startswith("aws:"))
tag_values = st.text(TAG_CHARS, max_size=16)
# User metadata travels in HTTP headers: printable ASCII values (empty included), simple keys.
meta_keys = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=10)
meta_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=16)


@pytest.fixture(autouse=True)
def endpoint_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)


@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tags=st.dictionaries(tag_keys, tag_values, max_size=5),
       meta=st.dictionaries(meta_keys, meta_values, max_size=4))
@example(tags={"a b": "", "x+y": "1=2 +3", "ünï/@:": "çé 日本"}, meta={"e": "", "p": "a+b=c&d"})
def test_odd_metadata_and_tags_round_trip(moto_endpoint: str,
                                          tmp_path_factory: pytest.TempPathFactory,
                                          tags: dict[str, str], meta: dict[str, str]) -> None:
    s3 = s3_client(moto_endpoint)
    src, dst = new_bucket(s3), new_bucket(s3)
    s3.put_object(Bucket=src, Key="p/obj", Body=b"x", Metadata=meta,
                  Tagging="&".join(f"{_q(k)}={_q(v)}" for k, v in tags.items()))
    before = state(s3, src, "p/")
    assert before["obj"]["tags"] == tags and before["obj"]["meta"] == meta  # moto kept them
    repo = Repository.init(str(tmp_path_factory.mktemp("s3meta") / "repo"), password="pw")
    snap = backup_bucket(repo, src, "odd", prefix="p/")
    restore_bucket(repo, snap, f"s3://{dst}/p/", replace=False, include=[], options={})
    assert state(s3, dst, "p/") == before


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


