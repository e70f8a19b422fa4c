"""`picsart-local bench`: a burst of uploads against a quota, under each strategy in turn, on the local stack.

- strategies.py: the four strategies as SAM templates (the project's own, and baselines derived from it);
- baseline.py, handlers/: the baselines' code, run by the local runner in Lambda-like environments;
- metering.py: DynamoDB and SQS requests and S3 writes, counted in the moto server;
- metrics.py: the definitions (makespan, floor, 429s, waste, duplicates, percentiles);
- coldstart.py: handler import times and the layer's size;
- run.py: running it all; report.py: the table, bench.json and bench.png.
"""
