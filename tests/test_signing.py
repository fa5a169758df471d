"""Signed form values: what a forged, stale or moved form gets."""

from __future__ import annotations

from dispatch.config import load
from dispatch.runtime import Runtime
from dispatch.track.signing import sign, verify

KEY = b"k" * 32
NOW = 1_800_000_000.0


def test_a_signed_value_verifies_for_its_purpose_and_subject_only():
    value = sign(KEY, "prefs", "tok1", now=NOW)
    assert verify(KEY, "prefs", "tok1", value, now=NOW + 60)
    assert not verify(KEY, "prefs", "tok2", value, now=NOW + 60)
    assert not verify(KEY, "vote", "tok1", value, now=NOW + 60)
    assert not verify(b"other" * 8, "prefs", "tok1", value, now=NOW + 60)


def test_stale_tampered_and_garbage_values_are_refused():
    value = sign(KEY, "prefs", "tok1", now=NOW)
    assert not verify(KEY, "prefs", "tok1", value, max_age=3600, now=NOW + 3601)
    stamp, mac = value.split(".")
    later = sign(KEY, "prefs", "tok1", now=NOW + 10).split(".")[0]
    assert not verify(KEY, "prefs", "tok1", f"{later}.{mac}", now=NOW + 60)
    for junk in ("", ".", "zz", "..", "a" * 5000, "💥.💥", f"{stamp}.", f".{mac}"):
        assert not verify(KEY, "prefs", "tok1", junk, now=NOW)


def test_without_a_configured_secret_every_process_shares_the_key_kept_in_the_database(
    tmp_path, sqlite_url
):
    env = {"DISPATCH_DATABASE_URL": sqlite_url}
    first = Runtime(load(None, env)).signing_key
    second = Runtime(load(None, env)).signing_key
    assert first == second and len(first) >= 32
    configured = Runtime(load(None, {**env, "DISPATCH_SECRET_KEY": "s3cret-from-env"}))
    assert configured.signing_key == b"s3cret-from-env"
