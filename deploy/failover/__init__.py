"""``make failover-drill``: HA faults injected under steady order load, one at a time."""
