"""FastAPI dependencies: they only read what the lifespan put on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dbmeta_app.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: a sync dependency would cost a worker-thread hop on every request
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
