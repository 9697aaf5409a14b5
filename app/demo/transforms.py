"""The demo's realtime transform."""


def amount_is_high(transaction_request, user_transaction_amount_metrics):
    mean = user_transaction_amount_metrics["amt_mean_1d_10m"]
    return {"transaction_amount_is_high": mean is not None and transaction_request["amt"] > mean}
