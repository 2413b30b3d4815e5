"""Hardware: interfaces, drivers, simulators and board profiles (never imports appliance)."""
