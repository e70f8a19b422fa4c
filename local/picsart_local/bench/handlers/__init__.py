"""Handlers of the bench's baselines. The local runner loads each as Lambda does (this folder is the
function's CodeUri); see picsart_local.bench.baseline for what they do."""
