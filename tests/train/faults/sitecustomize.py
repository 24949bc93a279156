"""Fault injection for the distributed tests, kept out of the package.

A rank process started with this directory first on PYTHONPATH imports this file at start-up
(Python's `site` imports any `sitecustomize` on the path). With NNC_TEST_RANK_FAULT set to
"RANK:STEP" that rank exits with status 1 just before its STEP-th training step;
"RANK:STEP:hang" makes it stop answering instead, so the others meet the collective timeout.
The launcher (`nnc run --nproc`) passes PYTHONPATH on to its ranks, so this reaches them too.
"""
import os

_SPEC = os.environ.get("NNC_TEST_RANK_FAULT", "")

if _SPEC:
    import time

    from nncompiler.train import distributed

    _rank, _step = (int(v) for v in _SPEC.split(":")[:2])
    _hang = _SPEC.endswith(":hang")
    _step_fn = distributed.DistributedTrainer.step

    def _faulty_step(self, data, idx):
        if (self.rank, self.steps + 1) == (_rank, _step):
            while _hang:
                time.sleep(60)
            os._exit(1)
        return _step_fn(self, data, idx)

    distributed.DistributedTrainer.step = _faulty_step
