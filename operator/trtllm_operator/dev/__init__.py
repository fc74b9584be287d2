"""Development and simulation tooling; never imported by the operator at runtime."""
