"""Configuration models: one per section, every field with a default, bounds and a description."""
