"""Use cases: what the command line, the HTTP service and the dashboard pages do.

Train a shop, evaluate it, explain a customer, compare two items, export a report, check the
explanations' faithfulness, and the per-process recommender cache. The interfaces call these and
never reach into ``models/`` or ``explain/`` for the steps themselves; nothing below imports this.
"""
