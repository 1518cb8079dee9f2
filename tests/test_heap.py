"""What start-up made is out of the garbage collector's way (issue 27: full collections that
traversed it paused a loaded server's loop for up to 186 ms)."""

from __future__ import annotations

import gc

from fastapi import FastAPI


async def test_start_up_leaves_its_objects_out_of_full_collections(app: FastAPI) -> None:
    # Modules, schemas and routes: hundreds of thousands of objects, frozen by the lifespan.
    assert gc.get_freeze_count() > 100_000
