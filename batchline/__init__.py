"""batchline batchline."""
