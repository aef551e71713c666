"""batchline emulator: a local stand-in for Anthropic's Message Batches API, with faults on demand.

from batchline.emulator import EmulatorConfig, run_in_thread
with run_in_thread(EmulatorConfig(processing_seconds=1.0)) as emu:
    client = anthropic.Anthropic(base_url=emu.base_url, api_key="test")
"""

from .config import EmulatorConfig
from .replies import reply_text
from .server import EmulatorHandle, run_in_thread

__all__ = ["EmulatorConfig", "EmulatorHandle", "reply_text", "run_in_thread"]
