"""Thin kopf wiring (watch.py) and the per-kind reconcile workers (engine.py, service.py)."""
