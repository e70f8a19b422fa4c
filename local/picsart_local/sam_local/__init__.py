"""The real `sam local invoke` on this machine, against the local stack (local tooling, never deployed).

- hostnet.py: `picsart-local sam ...`: the SAM CLI with its Lambda containers on the host's network (pinned).
"""
