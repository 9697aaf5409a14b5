"""The demo's realtime transform."""

from typing import Any


def amount_is_high(
    transaction_request: dict[str, Any], user_transaction_amount_metrics: dict[str, Any]
) -> dict[str, bool]:
    mean = user_transaction_amount_metrics["amt_mean_1d_10m"]
    return {"transaction_amount_is_high": mean is not None and transaction_request["amt"] > mean}
