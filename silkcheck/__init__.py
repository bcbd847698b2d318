"""silkcheck: per-connection consistency checking for SilkRoad-style P4 load balancers."""
