"""SLO layer (SLIs, error budgets, burn-rate rules): filled by the SLO issue."""
