"""batchline emulator."""
