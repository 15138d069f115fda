"""Policies: retention (grandfather-father-son) and, later, objectives."""
