"""Field firmware updates: RAUC A/B bundles, the health gate, rollback (docs/design/updates.md)."""
