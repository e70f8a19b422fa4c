"""A local HTTP emulator of the Picsart Image API: /removebg, /upscale, /upscale/ultra, /enhance/face, /edit,
/adjust, /effects, /tags and /balance.

It keeps Picsart's contract (statuses, bodies, the five X-Picsart headers, quota, spike arrest,
credits) and can inject faults, so the adapter can be tested without the real service.
"""

from .server import PicsartEmulator
from .settings import EmulatorSettings, ResetTimeFormat
from .state import CallRecord

__all__ = ["CallRecord", "EmulatorSettings", "PicsartEmulator", "ResetTimeFormat"]
