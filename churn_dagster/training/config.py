"""Run config from hyperparameter dataclasses: every study defines its hyperparameters once, as dataclasses
free of Dagster (their fields' metadata carry bounds and descriptions), and its assets' ``dg.Config`` classes
are generated from them here, so a new hyperparameter appears in the launchpad without being mapped by hand;
:func:`config_values` turns a run's config back into the dataclasses."""

from __future__ import annotations

import dataclasses
import typing

import dagster as dg
import pydantic

_BOUNDS = ("gt", "ge", "lt", "le", "description")


def _fields(default, exclude: frozenset[str]) -> dict[str, tuple]:
    hints = typing.get_type_hints(type(default))
    return {
        f.name: (hints[f.name], pydantic.Field(default=getattr(default, f.name),
                                               **{k: v for k, v in f.metadata.items() if k in _BOUNDS}))
        for f in dataclasses.fields(default) if f.name not in exclude
    }


def config_class(name: str, doc: str, *defaults, exclude: frozenset[str] = frozenset()) -> type[dg.Config]:
    """A ``dg.Config`` named ``name`` whose fields are those of the hyperparameter dataclass instances
    ``defaults``, with their values as defaults and their metadata's bounds and descriptions; the fields named
    in ``exclude`` are set by the code, not by the run config, and left out."""
    fields = {field: spec for default in defaults for field, spec in _fields(default, exclude).items()}
    return pydantic.create_model(name, __base__=dg.Config, __doc__=doc, __module__=__name__, **fields)


def config_values(defaults: tuple, config: dg.Config) -> tuple:
    """The hyperparameter dataclasses ``defaults`` with the values a run's ``config`` holds for their fields
    (a field the config does not have keeps its default)."""
    return tuple(
        dataclasses.replace(default, **{f.name: getattr(config, f.name) for f in dataclasses.fields(default)
                                        if hasattr(config, f.name)})
        for default in defaults
    )
