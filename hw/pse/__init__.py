"""PoE power-sourcing equipment: the controller interface, the TPS23861 driver and its
register-level simulator, and the `[pse]` section of board profiles."""
