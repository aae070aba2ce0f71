"""Synthetic cohorts, HL7 feeds and training for Clarion models (training needs the `train` extra)."""
