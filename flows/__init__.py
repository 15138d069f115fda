"""Prefect flows: backup tiers, verification, and recovery in the seed's five stages."""
