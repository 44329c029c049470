"""The twin's behavioural mechanisms, each of which can be switched off to measure what it contributes.

docs/SYNTHETIC.md shows, per mechanism, the gap in model AUC it leaves when it is off (``churn-dagster generate
--without habits``): that is how a reader sees which behaviour the models feed on. Switching a mechanism off zeroes
its coefficients; every other parameter, and the population's calibration, stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .behaviour import ActionParams
from .population import PopulationParams
from .sessions import SessionParams

MECHANISMS = ("habits", "session_tail", "reactions", "intents", "cold_start")


@dataclass(frozen=True)
class TwinParams:
    """Every parameter of the generator's behaviour, in one object passed down from :func:`generator.generate`."""

    population: PopulationParams = field(default_factory=PopulationParams)
    sessions: SessionParams = field(default_factory=SessionParams)
    actions: ActionParams = field(default_factory=ActionParams)


def without(names: Iterable[str], params: TwinParams | None = None) -> TwinParams:
    """``params`` (the defaults when None) with the named mechanisms switched off."""
    params = params or TwinParams()
    names = list(names)
    unknown = sorted(set(names) - set(MECHANISMS))
    if unknown:
        raise ValueError(f"unknown mechanism {', '.join(unknown)}: expected some of {', '.join(MECHANISMS)}")
    population, sessions, actions = params.population, params.sessions, params.actions
    if "habits" in names:
        population = replace(population, habit_rhythm=0.0, habit_hazard=0.0)
        sessions = replace(sessions, preferred_hour_share=0.0)
    if "session_tail" in names:
        population = replace(population, intents=replace(population.intents, pause=(0.0, 0.0, 0.0)))
        sessions = replace(sessions, immersion_logit=-30.0)  # none immersed but first visits' (cold start)
    if "reactions" in names:
        population = replace(population, reaction=0.0)
        sessions = replace(sessions, depth_quality=0.0)
        actions = replace(actions, click_quality=0.0, view_quality=0.0)
    if "intents" in names:
        population = replace(population, intents=replace(population.intents, strength=0.0))
    if "cold_start" in names:
        population = replace(population, cold_start_days=0.0)
    return TwinParams(population=population, sessions=sessions, actions=actions)
