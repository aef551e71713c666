"""Benchmarks of batchline's hot paths, side by side with baselines (run: python -m benchmarks.run)."""
