"""A serving process's heap after start-up, taken out of the garbage collector's way."""

import gc


def freeze_imported() -> None:
    """Move every object alive now out of the collector's reach: the modules of the app and of
    its libraries (FastAPI, SQLAlchemy, the model providers' and protocols' SDKs), several
    hundred thousand objects that live as long as the process. A full collection otherwise
    walks them all and stops the process for ~150 ms, twice in ten seconds under load: a p99
    of 150 ms for reads that take 15 (docs/performance.md). Call it once, after the imports
    and before serving; not in a process that builds and drops apps (the tests), as what is
    frozen is never collected."""
    gc.collect()
    gc.freeze()
