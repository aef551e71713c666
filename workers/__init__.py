"""batchline workers."""
