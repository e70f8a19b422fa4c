"""The real `sam local invoke` on this machine, against the local stack (local tooling, never deployed).

- prepare.py: `make sam-local`: Docker, its daemon (no bridge, host firewall untouched) and the Lambda base image.
- base_image.py: the stand-in for `public.ecr.aws/lambda/python:3.13-<arch>` when that registry cannot be reached.
- hostnet.py: `picsart-local sam ...`: the SAM CLI with its Lambda containers on the host's network (pinned).
- invoke.py: `sam build` and `sam local invoke` of this project, as `picsart-local sam-invoke` and tests/sam/ run them.
"""
