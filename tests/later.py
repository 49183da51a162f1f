"""A type the tasks module imports only while type checking."""

from pydantic import BaseModel


class DefinedLater(BaseModel):
    label: str
