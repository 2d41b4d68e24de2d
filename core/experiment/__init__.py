"""Experiment layer (simulated A/B tests of thresholds): filled by the experiments issue."""
