"""The model: booster training, calibration, policy tiers, metrics, time consistency, evaluation."""
