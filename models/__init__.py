"""Recommendation models: candidates, features, ranker, attention model, hybrid, registry."""
