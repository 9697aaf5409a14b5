def larger_than_last_order(checkout, customer_last_order):
    last = customer_last_order["order_total"]
    return {"larger_than_last_order": last is not None and checkout["basket_total"] > last}
