"""`picsart-local bench`: a burst of uploads against a quota, under each strategy in turn, on the local stack.

- strategies.py: the four strategies as SAM templates (the project's own, and baselines derived from it), and the
  pipeline scenario (the project's own, with a rules file);
- baseline.py, handlers/: the baselines' code, run by the local runner in Lambda-like environments;
- metering.py: DynamoDB and SQS requests and S3 writes, counted in the moto server;
- metrics.py: the definitions (makespan, floor, 429s, waste, duplicates, percentiles);
- pipeline.py: the pipeline scenario's rules file, and each call traced to its upload and step;
- coldstart.py: handler import times and the layer's size;
- run.py: running it all; report.py: the table, bench.json and bench.png.
"""
