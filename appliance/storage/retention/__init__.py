"""Retention: which footage goes, when, why, and how long the rest will last.

policy: plan a pass (the rules, the guards) from the index and the disk's real free
space; delete: crash-safe deletion with its audit entry; forecast: days retained per
camera; worker: the thread in the recorder process that runs passes and raises alerts.
"""
