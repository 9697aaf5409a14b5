"""The key format, hashing, roles, the credential cache and the failure throttle (no I/O)."""

import re
from datetime import timedelta

import pytest

from auth.cache import CachedCredential, CredentialCache
from auth.errors import AuthenticationFailed
from auth.keys import (
    KEY_LENGTH,
    MalformedKey,
    checksum,
    generate_key,
    hash_secret,
    new_id,
    obscure,
    parse_duration,
    parse_key,
    secret_matches,
)
from auth.permissions import (
    EMULATOR_ADMIN,
    INGEST,
    INGEST_DRY_RUN,
    READ_FEATURES,
    ROLE_PERMISSIONS,
    VIEW_METADATA,
    Principal,
    grants_from_bindings,
)
from auth.store import KeyRecord
from auth.throttle import FailureThrottle
from auth.verifier import key_from_header

KEY_PATTERN = re.compile(r"tecto_[0-9a-f]{32}_[0-9A-Za-z]{49}")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_generated_keys_match_the_format_and_parse_back():
    for _ in range(1000):
        new = generate_key()
        assert KEY_PATTERN.fullmatch(new.key)
        assert len(new.key) == KEY_LENGTH
        assert parse_key(new.key).key_id == new.key_id
        assert parse_key(new.key).secret == new.secret
        assert new.obscured == "****" + new.key[-4:]


def test_keys_and_ids_do_not_collide():
    keys = {generate_key().key for _ in range(20_000)}
    assert len(keys) == 20_000
    ids = {new_id() for _ in range(20_000)}
    assert len(ids) == 20_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in list(ids)[:100])


def test_any_changed_character_fails_the_checksum():
    key = generate_key().key
    for position in range(len("tecto_"), len(key)):
        original = key[position]
        if original == "_":
            continue
        replacement = "a" if original != "a" else "b"
        if original.isdigit() and position < 38:  # keep the id hex so only the CRC can catch it
            replacement = "1" if original != "1" else "2"
        tampered = key[:position] + replacement + key[position + 1 :]
        with pytest.raises(MalformedKey):
            parse_key(tampered)


@pytest.mark.parametrize(
    "text",
    ["", "tecto_", "secretapikey123", "tecto_" + "0" * 32 + "_" + "A" * 49, "x" * 88],
)
def test_malformed_keys_are_rejected_offline(text):
    with pytest.raises(MalformedKey):
        parse_key(text)


def test_checksum_is_six_base62_characters():
    assert re.fullmatch(r"[0-9A-Za-z]{6}", checksum("anything"))
    assert checksum("a") != checksum("b")


def test_hash_is_keyed_and_compared_in_constant_time():
    stored = hash_secret(b"server-secret", "s3cret")
    assert len(stored) == 32
    assert secret_matches(b"server-secret", "s3cret", stored)
    assert not secret_matches(b"server-secret", "s3creT", stored)
    assert not secret_matches(b"other-secret", "s3cret", stored)


def test_obscure_shows_the_last_four_characters():
    assert obscure("tecto_abcd1234") == "****1234"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("45m", timedelta(minutes=45)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "3w", "d", "-1h", "1.5h"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "header", ["Tecton-key abc", "tecton-key abc", "TECTON-KEY abc", "  Tecton-key   abc  "]
)
def test_header_scheme_is_case_insensitive(header):
    assert key_from_header(header) == "abc"


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Tecton-key", "Tecton-key  ", "abc"])
def test_bad_headers(header):
    with pytest.raises(AuthenticationFailed):
        key_from_header(header)


def test_roles_nest():
    assert ROLE_PERMISSIONS["viewer"] == {VIEW_METADATA, INGEST_DRY_RUN}
    assert ROLE_PERMISSIONS["consumer"] == {VIEW_METADATA, INGEST_DRY_RUN, READ_FEATURES}
    assert INGEST in ROLE_PERMISSIONS["editor"]
    assert INGEST not in ROLE_PERMISSIONS["consumer"]
    assert ROLE_PERMISSIONS["editor"] < ROLE_PERMISSIONS["owner"] < ROLE_PERMISSIONS["admin"]
    assert EMULATOR_ADMIN not in ROLE_PERMISSIONS["owner"]


def test_principal_grants_are_per_workspace():
    everywhere, per_workspace = grants_from_bindings(
        [("viewer", None), ("editor", "a"), ("consumer", "b")]
    )
    principal = Principal("k", "sa", "n", everywhere, per_workspace)
    assert principal.allows(INGEST, "a")
    assert not principal.allows(INGEST, "b")
    assert principal.allows(READ_FEATURES, "b")
    assert not principal.allows(READ_FEATURES, "c")
    assert principal.allows(INGEST_DRY_RUN, "c")
    assert not principal.is_admin
    with pytest.raises(ValueError, match="unknown permission"):
        principal.allows("fly", "a")


def test_admin_allows_everything_everywhere():
    everywhere, per_workspace = grants_from_bindings([("admin", None)])
    principal = Principal("k", "sa", "n", everywhere, per_workspace)
    assert principal.is_admin
    assert all(principal.allows(p, "any") for p in ROLE_PERMISSIONS["admin"])


def _credential(loaded_at: float) -> CachedCredential:
    record = KeyRecord("k", b"h", None, "sa", "n", True, (("consumer", None),))
    return CachedCredential.from_record(record, loaded_at=loaded_at)


def test_cache_refuses_a_lookup_that_raced_an_invalidation():
    cache = CredentialCache()
    generation = cache.generation
    cache.invalidate()
    assert not cache.put("k", _credential(0), generation)
    assert cache.get("k") is None
    assert cache.put("k", _credential(0), cache.generation)
    cache.invalidate("")
    assert cache.get("k") is None


def test_cache_entries_age_out_as_a_safety_net():
    clock = FakeClock()
    cache = CredentialCache(clock=clock, max_age_seconds=60)
    cache.put("k", _credential(clock.now), cache.generation)
    assert cache.get("k") is not None
    clock.now += 61
    assert cache.get("k") is None


def test_cache_is_bounded():
    cache = CredentialCache(max_entries=3)
    for index in range(10):
        cache.put(f"k{index}", _credential(0), cache.generation)
    assert len(cache) <= 3


def test_throttle_answers_past_the_limit_and_recovers_after_the_window():
    clock = FakeClock()
    throttle = FailureThrottle(limit=3, window_seconds=10, clock=clock)
    assert [throttle.record_failure("1.2.3.4") for _ in range(3)] == [None, None, None]
    assert throttle.record_failure("1.2.3.4") == 10
    assert throttle.record_failure("5.6.7.8") is None  # other clients are not affected
    clock.now += 11
    assert throttle.record_failure("1.2.3.4") is None


def test_throttle_forgets_idle_clients_when_full():
    clock = FakeClock()
    throttle = FailureThrottle(limit=3, window_seconds=10, max_clients=2, clock=clock)
    throttle.record_failure("a")
    throttle.record_failure("b")
    clock.now += 11
    throttle.record_failure("c")
    assert set(throttle._failures) == {"c"}


def test_a_full_fallback_throttle_never_evicts_an_active_client():
    clock = FakeClock()
    throttle = FailureThrottle(limit=3, window_seconds=10, max_clients=2, clock=clock)
    for _ in range(3):
        throttle.record_failure("attacker")
    throttle.record_failure("other")
    for index in range(100):  # a flood from many addresses while the table is full
        assert throttle.record_failure(f"10.0.{index}.1") is None
    assert throttle.record_failure("attacker") == 10
