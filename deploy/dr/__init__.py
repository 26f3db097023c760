"""Disaster-recovery drill."""
