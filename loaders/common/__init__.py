"""Plumbing shared by every source: warehouse targets, the sync audit, quarantine, pipelines."""
