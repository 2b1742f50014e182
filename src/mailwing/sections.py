"""Dataclass-like settings sections without :mod:`dataclasses` (see :class:`Section`).

Why not dataclasses: importing :mod:`dataclasses` brings :mod:`inspect` and :mod:`ast`, and
each class then generates its methods with ``exec``; for ``mailwing deliver``, which an MTA
runs once per message, that cost more than the rest of loading its configuration (issue #9).
:func:`typing.dataclass_transform` keeps the type checker's view of a dataclass: keyword
construction is checked as it would be for one.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, dataclass_transform

__all__ = ["Section", "setting"]

T = TypeVar("T")


class _Factory:
    """A field default made anew for every instance (see :func:`setting`)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def setting(*, default_factory: Callable[[], T]) -> T:
    """A field whose default is ``default_factory()``, called for each instance (a list, a
    nested section), as ``dataclasses.field(default_factory=...)``."""
    return typing.cast(T, _Factory(default_factory))


@dataclass_transform(field_specifiers=(setting,))
class Section:
    """Base of the settings classes: the fields are the annotated class attributes (with their
    defaults; every field has one), inherited ones first, as in a dataclass."""

    #: (name, default or :class:`_Factory`) of every field, in order.
    _fields: ClassVar[tuple[tuple[str, Any], ...]] = ()
    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = dict(cls._fields)
        # This class's own annotations (not inherited ones); inspect.get_annotations would
        # import the inspect module, which this class exists to avoid.
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        for name, hint in own.items():
            if "ClassVar" in str(hint):
                continue
            if name not in cls.__dict__:
                raise TypeError(f"{cls.__name__}.{name}: a setting needs a default")
            default = cls.__dict__[name]
            if isinstance(default, list | dict | set):
                raise TypeError(f"{cls.__name__}.{name}: use setting(default_factory=...)")
            fields[name] = default
            if isinstance(default, _Factory):
                delattr(cls, name)  # as dataclasses do: the instance always has its own
        cls._fields = tuple(fields.items())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__}() takes at most {len(self._fields)} "
                            f"positional arguments ({len(args)} given)")
        for (name, _), value in zip(self._fields, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got multiple values for {name!r}")
            kwargs[name] = value
        for name, default in self._fields:
            if name in kwargs:
                value = kwargs.pop(name)
            elif isinstance(default, _Factory):
                value = default.make()
            else:
                value = default
            setattr(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{next(iter(kwargs))!r}")

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._fields)
        return f"{type(self).__name__}({values})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n, _ in self._fields)
