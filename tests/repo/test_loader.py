"""Every validation rule of the definitions file, and that all errors are reported at once."""

import pytest

from app.repo.definitions import parse_duration
from app.repo.loader import DefinitionsError, load_definitions
from tests.repo.helpers import EXAMPLE_DIR, MINIMAL, write_repo


def errors_of(tmp_path, yaml_text, transforms=None):
    path = write_repo(tmp_path, yaml_text, transforms)
    with pytest.raises(DefinitionsError) as excinfo:
        load_definitions(path)
    return path, excinfo.value.errors


def test_the_example_repository_loads():
    definitions = load_definitions(EXAMPLE_DIR / "features.yaml")
    assert set(definitions.entities) == {"fraud_user", "merchant"}
    view = definitions.feature_views["user_last_transaction"]
    assert (view.kind, view.source, view.ttl_seconds) == ("stream", "transactions", 30 * 86400)
    assert definitions.feature_views["user_profile"].kind == "table"
    realtime = definitions.realtime_views["transaction_amount_is_higher_than_average"]
    assert "def amount_is_higher_than_average" in realtime.transform_source
    assert [s.kind for s in realtime.sources] == ["request", "feature_view"]
    counts = definitions.feature_views["user_transaction_counts"]
    assert counts.aggregation is not None and [f.name for f in counts.features] == [
        "transaction_count_1d_1d",
        "transaction_count_30d_1d",
        "transaction_id_last_3_1d_1d",
    ]
    metrics = definitions.feature_views["user_transaction_amount_metrics"]
    assert [f.name for f in metrics.features] == [
        "amt_mean_1d_10m",
        "amt_mean_3d_10m",
        "amt_sum_1d_10m",
        "amt_sum_3d_10m",
    ]


def test_minimal_file_loads(tmp_path):
    definitions = load_definitions(write_repo(tmp_path, MINIMAL))
    assert definitions.feature_services["svc"].items[0].feature_view == "user_stats"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 2592000), ("12h", 43200), ("15m", 900), ("90s", 90)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("{name: clicks, type: Int64}", "{name: clicks, type: Integer}",
         "feature view 'user_stats': features[0].type: unknown type 'Integer'"),
        ("entities: [user]", "entities: [nobody]",
         "feature view 'user_stats': entities[0]: unknown entity 'nobody'"),
        ("features: [user_stats]", "features: [user_statz]",
         "feature service 'svc': features[0]: unknown feature view 'user_statz'"),
        ("ttl: 1d", "ttl: 1w",
         "feature view 'user_stats': ttl: invalid duration '1w'"),
        ("ttl: 1d", "ttl: 1d\n    colour: red",
         "feature view 'user_stats': colour: Unknown field."),
        ("{name: user_id, type: String}", "{name: user_id, type: Float64}",
         "entity 'user': join_keys[0].type: join keys must be String or Int64, not Float64"),
        ("features: [user_stats]", "features: [{feature_view: user_stats, features: [nope]}]",
         "feature service 'svc': features[0].features: 'user_stats' has no feature 'nope'"),
        ("    entities: [user]\n", "    entities: [user]\n    source: clicks_stream\n",
         "feature view 'user_stats': source: unknown push source 'clicks_stream'"),
    ],
)  # fmt: skip
def test_each_rule_names_file_object_and_field(tmp_path, replace, by, expected):
    assert replace in MINIMAL
    path, errors = errors_of(tmp_path, MINIMAL.replace(replace, by, 1))
    assert f"{path}: {expected}" in errors[0] or any(expected in e for e in errors), errors
    assert all(e.startswith(f"{path}: ") for e in errors)


def test_duplicate_names(tmp_path):
    text = MINIMAL.replace(
        "feature_services:",
        "  - name: user_stats\n    entities: [user]\n    features: [{name: x, type: Int64}]\n"
        "feature_services:",
    )
    _, errors = errors_of(tmp_path, text)
    assert errors == [
        f"{tmp_path / 'features.yaml'}: feature view 'user_stats': name: duplicate name"
    ]


def test_every_error_is_listed_not_only_the_first(tmp_path):
    text = (
        MINIMAL.replace("type: Int64}", "type: Integer}")
        .replace("entities: [user]", "entities: [nobody]")
        .replace("features: [user_stats]", "features: [missing_view]")
    )
    _, errors = errors_of(tmp_path, text)
    assert len(errors) >= 3
    joined = "\n".join(errors)
    for fragment in ("unknown type 'Integer'", "unknown entity 'nobody'", "'missing_view'"):
        assert fragment in joined


COLLIDING = """
entities:
  - name: user
    join_keys: [{name: id, type: String}]
  - name: account
    join_keys: [{name: id, type: Int64}]
feature_views:
  - name: a
    entities: [user]
    features: [{name: x, type: Int64}]
  - name: b
    entities: [account]
    features: [{name: y, type: Int64}]
feature_services:
  - name: svc
    features: [a, b]
"""


def test_service_whose_join_keys_collide(tmp_path):
    _, errors = errors_of(tmp_path, COLLIDING)
    assert any("join key 'id' is Int64 here but String in 'a'" in e for e in errors), errors


def test_join_key_map_resolves_the_collision(tmp_path):
    fixed = COLLIDING.replace(
        "features: [a, b]", "features: [a, {feature_view: b, join_key_map: {id: account_id}}]"
    )
    definitions = load_definitions(write_repo(tmp_path, fixed))
    assert definitions.feature_services["svc"].items[1].join_key_map == {"id": "account_id"}


def test_same_view_twice_needs_a_namespace(tmp_path):
    text = MINIMAL.replace("features: [user_stats]", "features: [user_stats, user_stats]")
    _, errors = errors_of(tmp_path, text)
    assert any("feature 'user_stats.clicks' appears twice" in e for e in errors)


REALTIME = (
    MINIMAL
    + """
realtime_feature_views:
  - name: high_score
    sources:
      - request: req
        schema: [{name: threshold, type: Float64}]
      - user_stats
    features: [{name: is_high, type: Bool}]
    transform: transforms.py:is_high
"""
)


def test_transform_file_that_does_not_exist(tmp_path):
    _, errors = errors_of(tmp_path, REALTIME)
    assert "realtime feature view 'high_score': transform: cannot read transform file" in errors[0]


def test_transform_function_that_does_not_exist(tmp_path):
    _, errors = errors_of(tmp_path, REALTIME, "def other(a, b):\n    return {}\n")
    assert errors[0].endswith("has no function 'is_high'")


def test_transform_that_does_not_import(tmp_path):
    _, errors = errors_of(tmp_path, REALTIME, "import not_a_module_anywhere\n")
    assert "ModuleNotFoundError" in errors[0]


def test_transform_signature_must_match_the_sources(tmp_path):
    _, errors = errors_of(tmp_path, REALTIME, "def is_high(req):\n    return {}\n")
    assert "takes 1 argument(s) (req) but the view has 2 source(s)" in errors[0]


def test_valid_transform_is_stored_as_source_text(tmp_path):
    source = "def is_high(req, stats):\n    return {'is_high': True}\n"
    definitions = load_definitions(write_repo(tmp_path, REALTIME, source))
    assert definitions.realtime_views["high_score"].transform_source == source


def test_stream_view_columns_must_exist_in_its_push_source(tmp_path):
    text = MINIMAL.replace(
        "feature_views:",
        "push_sources:\n  - name: events\n    timestamp_field: ts\n"
        "    schema: [{name: user_id, type: String}, {name: clicks, type: Int64},\n"
        "             {name: ts, type: Timestamp}]\n"
        "feature_views:",
    ).replace("    entities: [user]\n", "    entities: [user]\n    source: events\n", 1)
    _, errors = errors_of(tmp_path, text)
    assert errors == [
        f"{tmp_path / 'features.yaml'}: feature view 'user_stats': source: "
        "push source 'events' has no field 'score'"
    ]


def test_not_yaml_and_not_a_mapping(tmp_path):
    _, errors = errors_of(tmp_path, "entities: [unclosed")
    assert "not valid YAML" in errors[0]
    _, errors = errors_of(tmp_path, "- a list")
    assert "must be a mapping of sections" in errors[0]
