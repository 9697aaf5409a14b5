"""The benchmark's realtime transform."""


def is_big_spender(checkout, customer_activity):
    spend = customer_activity["spend_1h"] or 0.0
    return {"is_big_spender": checkout["amount"] + spend > 500.0}
