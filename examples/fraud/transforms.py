"""Realtime transforms of the fraud example. Each receives one argument per source, in order."""


def amount_is_higher_than_average(transaction_request, user_transaction_amount_metrics):
    """True when the requested amount exceeds the user's 1-day mean (False when unknown)."""
    mean = user_transaction_amount_metrics["amt_mean_1d_10m"]
    if mean is None:
        return {"transaction_amount_is_higher_than_average": False}
    return {"transaction_amount_is_higher_than_average": transaction_request["amt"] > mean}
