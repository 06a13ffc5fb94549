"""Page-number pagination in the /v1 shape: `{data, meta: {current_page, per_page, total, total_pages}}`."""

from __future__ import annotations

import math
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

T = TypeVar("T")

MAX_LIMIT = 100
# Keeps page * limit inside a 64-bit OFFSET on both engines (deeper lists want a cursor).
MAX_PAGE = 1_000_000
# The same bound for routes that take a raw offset (/api/v1).
MAX_OFFSET = MAX_PAGE * MAX_LIMIT


class PageMeta(BaseModel):
    current_page: int
    per_page: int
    total: int
    total_pages: int


class Page(BaseModel, Generic[T]):
    data: list[T]
    meta: PageMeta


class PageParams(BaseModel):
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def page_params(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (max {MAX_LIMIT}).")
    ] = 50,
) -> PageParams:
    """Dependency: `page` and `limit` query parameters; a limit above the max is a 422."""
    return PageParams(page=page, limit=limit)


# `params: Paging` in an endpoint's signature: the page and limit it was asked for.
Paging = Annotated[PageParams, Depends(page_params)]


def page_meta(params: PageParams, total: int) -> PageMeta:
    return PageMeta(
        current_page=params.page,
        per_page=params.limit,
        total=total,
        total_pages=math.ceil(total / params.limit) if total else 0,
    )
