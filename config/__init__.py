"""batchline config."""
