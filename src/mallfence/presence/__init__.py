"""Pure presence engine: per-device state machine and the store that keeps device states."""
