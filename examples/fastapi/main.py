"""A small FastAPI service: typed endpoints with pydantic models.

Run it under swserve (see README.md)::

    swserve main:app --workers 2
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field


class Book(BaseModel):
    id: int
    title: str
    price: Decimal = Field(ge=0, decimal_places=2)


class OrderLine(BaseModel):
    book_id: int
    quantity: int = Field(gt=0, le=100)


class Order(BaseModel):
    lines: list[OrderLine] = Field(min_length=1)


class Quote(BaseModel):
    items: int
    total: Decimal


# Read-only: every worker process has its own copy.
CATALOGUE: dict[int, Book] = {
    1: Book(id=1, title="Fluent Python", price=Decimal("49.90")),
    2: Book(id=2, title="Architecture Patterns with Python", price=Decimal("39.50")),
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs once per worker (ASGI lifespan): open pools here, close them after yield."""
    app.state.started_pid = os.getpid()
    yield


app = FastAPI(title="swserve FastAPI example", lifespan=lifespan)


@app.get("/")
async def index() -> dict[str, object]:
    """Which worker answered, and that its lifespan startup ran."""
    return {"service": "fastapi-example", "pid": os.getpid(), "lifespan": app.state.started_pid}


@app.get("/books/{book_id}")
async def get_book(book_id: int) -> Book:
    book = CATALOGUE.get(book_id)
    if book is None:
        raise HTTPException(status_code=404, detail=f"no book {book_id}")
    return book


@app.post("/quote")
async def quote(order: Order) -> Quote:
    """Price an order; pydantic has already rejected bad input with a 422."""
    total = Decimal(0)
    for line in order.lines:
        book = CATALOGUE.get(line.book_id)
        if book is None:
            raise HTTPException(status_code=404, detail=f"no book {line.book_id}")
        total += book.price * line.quantity
    return Quote(items=sum(line.quantity for line in order.lines), total=total)
