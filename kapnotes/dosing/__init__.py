"""Dosing."""
