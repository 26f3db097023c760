"""The HA tier as local processes: ``make stack-ha`` and ``make failover-drill``."""
