"""Aggregate feature views in a definitions file: plan-time validation and apply."""

import pytest
from sqlalchemy import select

from app.aggregation import AggregationSpec
from app.models import FeatureView
from app.repo.loader import DefinitionsError, load_definitions
from tests.repo.helpers import write_repo

HEAD = """
entities:
  - name: fraud_user
    join_keys: [{name: user_id, type: String}]
push_sources:
  - name: transactions
    timestamp_field: ts
    schema:
      - {name: user_id, type: String}
      - {name: ts, type: Timestamp}
      - {name: amt, type: Float64}
      - {name: merchant, type: String}
      - {name: transaction_id, type: String}
      - {name: is_fraud, type: Bool}
feature_views:
"""
VIEW = """
  - name: user_transaction_amount_metrics
    entities: [fraud_user]
    source: transactions
    aggregation_interval: 10m
    features:
      - {function: sum, column: amt, window: 1h}
      - {function: mean, column: amt, window: 3d}
      - {function: count, column: transaction_id, window: lifetime}
      - {function: last_distinct(3), column: merchant, window: 7d, name: recent_merchants}
      - {function: approx_percentile(0.5), column: amt, window: 1d}
      - {function: sum, column: amt, window: {size: 1d, offset: -1d}}
"""
SERVICE = """
feature_services:
  - name: fraud
    features: [user_transaction_amount_metrics]
"""


def test_the_spec_example_loads_with_tectons_names_and_types(tmp_path):
    definitions = load_definitions(write_repo(tmp_path, HEAD + VIEW + SERVICE))
    view = definitions.feature_views["user_transaction_amount_metrics"]
    assert (view.kind, view.source, view.ttl_seconds) == ("stream", "transactions", None)
    assert [(f.name, f.type) for f in view.features] == [
        ("amt_sum_1h_10m", "Float64"),
        ("amt_mean_3d_10m", "Float64"),
        ("transaction_id_count_lifetime_10m", "Int64"),
        ("recent_merchants", "Array(String)"),
        ("amt_approx_percentile_p0_5_1d_10m", "Float64"),
        ("amt_sum_1d_10m_offset_1d", "Float64"),
    ]
    spec = view.aggregation
    assert spec is not None and (spec.mode, spec.interval_us) == ("time_interval", 600_000_000)


def test_without_an_interval_the_mode_is_continuous(tmp_path):
    view = VIEW.replace("    aggregation_interval: 10m\n", "")
    loaded = load_definitions(write_repo(tmp_path, HEAD + view))
    features = loaded.feature_views["user_transaction_amount_metrics"].features
    assert features[0].name == "amt_sum_1h_continuous"
    explicit = VIEW.replace("10m\n", "10m\n    stream_processing_mode: continuous\n")
    loaded = load_definitions(write_repo(tmp_path, HEAD + explicit))
    features = loaded.feature_views["user_transaction_amount_metrics"].features
    assert features[0].name == "amt_sum_1h_continuous"


def errors(tmp_path, features, extra=""):
    text = HEAD + (
        "  - name: v\n    entities: [fraud_user]\n    source: transactions\n"
        f"    aggregation_interval: 1h\n{extra}    features:\n"
        + "".join(f"      - {f}\n" for f in features)
    )
    path = write_repo(tmp_path, text)
    with pytest.raises(DefinitionsError) as excinfo:
        load_definitions(path)
    return [e.removeprefix(f"{path}: feature view 'v': ") for e in excinfo.value.errors]


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ("{function: median, column: amt, window: 1d}",
         "features[0].function: unknown aggregation function 'median'; use one of count, sum,"),
        ("{function: sum, column: amount, window: 1d}",
         "features[0].column: the push source has no column 'amount'"),
        ("{function: sum, column: merchant, window: 1d}",
         "features[0].function: sum does not take column 'merchant' of type String; "
         "it takes Int64, Int32, Float64"),
        ("{function: last_distinct(2), column: is_fraud, window: 1d}",
         "features[0].function: last_distinct(2) does not take column 'is_fraud' of type Bool"),
        ("{function: last(0), column: amt, window: 1d}",
         "features[0].function: last(...): n must be an integer from 1 to 1000, not 0"),
        ("{function: approx_count_distinct(3), column: merchant, window: 1d}",
         "features[0].function: approx_count_distinct(...): precision must be an integer from 4 "
         "to 16, not 3"),
        ("{function: approx_percentile(2.0), column: amt, window: 1d}",
         "features[0].function: approx_percentile(...): percentile must be a float from 0.0 to "
         "1.0, not 2.0"),
        ("{function: sum, column: amt, window: 90m}",
         "features[0].window: window size 90m is not a multiple of the aggregation_interval 1h"),
        ("{function: sum, column: amt, window: {size: 1d, offset: -30m}}",
         "features[0].window: window offset -30m is not a multiple of the aggregation_interval"),
        ("{function: sum, column: amt, window: {size: 1d, offset: 1d}}",
         "features[0].window: offset must be zero or negative"),
        ("{function: sum, column: amt, window: 1 week}", "features[0].window: invalid duration"),
        ("{function: sum, column: amt}", "features[0].window: Missing data for required field."),
        ("{function: sum, column: amt, window: 1d, typo: 1}",
         "features[0].typo: Unknown field."),
        ("{name: plain, type: Int64}",
         "features[0]: an aggregate view's features are all aggregates"),
    ],
)  # fmt: skip
def test_plan_time_errors_name_the_view_and_feature(tmp_path, feature, message):
    found = errors(tmp_path, [feature])
    assert any(e.startswith(message) for e in found), found


def test_duplicate_resulting_names(tmp_path):
    found = errors(
        tmp_path,
        ["{function: approx_percentile(0.5), column: amt, window: 1d}",
         "{function: 'approx_percentile(0.5, 200)', column: amt, window: 1d}",
         "{function: sum, column: amt, window: 1d, name: total}",
         "{function: mean, column: amt, window: 1d, name: total}"],
    )  # fmt: skip
    assert found == [
        "features[1]: duplicate feature name 'amt_approx_percentile_p0_5_1d_1h' "
        "(also features[0]); give one of them a name",
        "features[3].name: duplicate feature name 'total' (also features[2])",
    ]


def test_view_level_errors(tmp_path):
    assert errors(tmp_path, ["{function: sum, column: amt, window: 1d}"], "    ttl: 1d\n") == [
        "ttl: aggregate views take no ttl; theirs is the aggregation interval + the longest "
        "window + 7 days"
    ]
    found = errors(
        tmp_path,
        ["{function: sum, column: amt, window: 1d}"],
        "    stream_processing_mode: sometimes\n",
    )
    assert found == ["stream_processing_mode: must be one of time_interval, continuous"]
    text = HEAD + VIEW.replace("aggregation_interval: 10m", "stream_processing_mode: time_interval")
    with pytest.raises(DefinitionsError) as excinfo:
        load_definitions(write_repo(tmp_path, text))
    assert "aggregation_interval: time_interval mode needs an aggregation_interval" in str(
        excinfo.value
    )
    text = HEAD + VIEW.replace("    source: transactions\n", "")
    with pytest.raises(DefinitionsError) as excinfo:
        load_definitions(write_repo(tmp_path, text))
    assert "source: an aggregate view needs a push source" in str(excinfo.value)


def test_apply_stores_the_spec_and_a_change_of_it_is_planned(runner, tmp_path, database):
    runner.ok("workspace", "create", "prod")
    path = write_repo(tmp_path, HEAD + VIEW + SERVICE)
    runner.ok("apply", "-f", str(path), "--workspace", "prod", "--yes")
    with database.session() as session:
        row = session.scalars(
            select(FeatureView).where(FeatureView.name == "user_transaction_amount_metrics")
        ).one()
        assert row.kind == "stream" and row.features[0].name == "amt_sum_1h_10m"
        stored = row.aggregation
        assert row.transform_source is None
    assert stored is not None and stored["features"][0]["name"] == "amt_sum_1h_10m"
    again = runner.ok("plan", "-f", str(path), "--workspace", "prod").output
    assert "nothing to do" in again
    changed = write_repo(tmp_path, HEAD + VIEW.replace("window: 3d", "window: 2d") + SERVICE)
    output = runner.ok("plan", "-f", str(changed), "--workspace", "prod").output
    assert "~ Update FeatureView" in output
    assert "features:        + amt_mean_2d_10m (Float64)" in output
    assert "aggregation:" in output and "amt_mean_2d_10m=mean(amt, 2d)" in output
    assert "(stored feature values of this view will be deleted)" in output
    assert isinstance(AggregationSpec.from_json(stored), AggregationSpec)
