"""batchline producers."""
