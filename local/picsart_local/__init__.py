"""Local-only tooling: the Picsart emulator, the local stack, the runner and the command line. Never deployed."""
