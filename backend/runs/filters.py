"""The history's query parameters (filters and sort), parsed once for every route that lists
runs: GET /api/v1/runs and GET /api/v1/runs.csv take the same ones."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from backend.bounds import Id
from backend.runs import query


def run_filters(
    request: Request,
    q: Annotated[
        str | None, Query(max_length=200, description="Words to find in name, tags or notes")
    ] = None,
    status: Annotated[
        list[str] | None, Query(description="Repeat it or give a comma list: queued,running")
    ] = None,
    dataset: str | None = None,
    preset: str | None = None,
    launcher: Annotated[str | None, Query(description="Username of who launched the run")] = None,
    tag: Annotated[list[str] | None, Query(description="Repeat for runs with every tag")] = None,
    created_after: Annotated[
        str | None, Query(description="ISO date or datetime, inclusive (a date is UTC midnight)")
    ] = None,
    created_before: Annotated[
        str | None, Query(description="ISO date or datetime, exclusive (a date is UTC midnight)")
    ] = None,
    sweep: Annotated[Id | None, Query(description="Only the trials of this sweep")] = None,
) -> query.RunFilters:
    """Also ``param.<spec path>=<value>`` (repeatable, e.g. ``param.fit.batch_size=64``)."""
    return query.parse_filters(
        params=query.param_filters(request.query_params.multi_items()),
        q=q,
        status=status,
        dataset=dataset,
        preset=preset,
        launcher=launcher,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
        sweep=sweep,
    )


def run_sort(
    sort: Annotated[
        str,
        Query(
            description="created_at, name, status, duration, dataset, preset, metric:<key> or "
            "param:<spec path>; a leading '-' sorts descending. Missing values sort last."
        ),
    ] = query.DEFAULT_SORT,
) -> query.Sort:
    return query.parse_sort(sort)


RunFiltersDep = Annotated[query.RunFilters, Depends(run_filters)]
RunSortDep = Annotated[query.Sort, Depends(run_sort)]
