"""The dashboard's pages and static files; plotly.js comes from the installed plotly package."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import plotly
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from backend.api.headers import sha256_source
from backend.bounds import Id
from backend.errors import NotFound
from backend.users.deps import optional_user
from backend.users.redirects import safe_next
from backend.web import pages

FRONTEND = pages.FRONTEND
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
VENDOR = FRONTEND / "static" / "vendor"


def _plotly_js_version(path: Path) -> str:
    """The plotly.js version in the bundle's banner ("plotly.js v4.1.1"), e.g. "4.1.1"."""
    with path.open(encoding="utf-8") as bundle:
        found = re.search(r"plotly\.js (?:\([^)]*\) )?v(\d[\w.+-]*)", bundle.read(500))
    return found.group(1) if found else plotly.__version__


PLOTLY_JS_VERSION = _plotly_js_version(PLOTLY_JS)
# a full plotly.js bundle injects maplibre's CSS as one inline <style> block, once per page
_INJECTED_CSS = re.compile(r'\.id="[0-9a-f]{64}",\w+\.textContent=\'([^\'\\]*)\'')


@lru_cache
def plotly_style_hashes() -> tuple[str, ...]:
    """CSP hashes of the inline CSS the served plotly.js bundles inject (see api.headers)."""
    found: set[str] = set()
    for bundle in (PLOTLY_JS, *VENDOR.glob("plotly-*.min.js")):
        text = bundle.read_text(encoding="utf-8")
        found.update(sha256_source(css) for css in _INJECTED_CSS.findall(text))
    return tuple(sorted(found))


# a URL that names its version never changes content: browsers keep it and skip revalidation
IMMUTABLE = "public, max-age=31536000, immutable"


class LoginRequired(Exception):
    """A page asked for by someone not signed in: they go to /login and come back after."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def signed_in(request: Request) -> None:
    if optional_user(request) is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequired(request.url.path + query)


# every page on this router needs a signed-in user; /login and the assets are on `public`
router = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])
public = APIRouter(include_in_schema=False)


def _page(name: str, *, current: str | None = None) -> Response:
    return Response(
        pages.render(name, current=current),
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/")
def runs_page() -> Response:
    return _page("index.html", current="/")


@router.get("/new")
def new_run_page() -> Response:
    return _page("new.html", current="/new")


@router.get("/runs/{run_id}")
def run_page(run_id: Id) -> Response:
    return _page("run.html")


@router.get("/compare")
def compare_page() -> Response:
    return _page("compare.html", current="/compare")


@router.get("/sweeps")
def sweeps_page() -> Response:
    return _page("sweeps.html", current="/sweeps")


@router.get("/sweeps/new")
def new_sweep_page() -> Response:
    """The New sweep form; ?run=ID starts from that run's spec, ?preset=NAME from a preset."""
    return _page("sweep-new.html", current="/sweeps")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: Id) -> Response:
    return _page("sweep.html", current="/sweeps")


@router.get("/datasets")
def datasets_page() -> Response:
    return _page("datasets.html", current="/datasets")


@router.get("/workers")
def workers_page() -> Response:
    """Workers & queue: every host and GPU, and the queue in the order it will start."""
    return _page("workers.html", current="/workers")


@router.get("/account")
def account_page() -> Response:
    return _page("account.html")


@public.get("/login")
def login_page(request: Request) -> Response:
    """The sign-in page; a ``next`` that leads off this site is dropped before the page loads."""
    wanted = request.query_params.get("next")
    if wanted is not None and safe_next(wanted) != wanted:
        return RedirectResponse("/login", status_code=303)
    return _page("login.html")


@public.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )


@public.get("/static/vendor/plotly-{version}.min.js")
def plotly_js_versioned(version: str) -> FileResponse:
    """plotly.js by version: the package's full bundle, or a partial one vendored here."""
    # each page picks its bundle: plotly-scatter-heatmap-X.min.js (frontend/static/vendor) where
    # scatter and heatmap are enough, the package's plotly-X.min.js where it needs more
    path = PLOTLY_JS if version == PLOTLY_JS_VERSION else VENDOR / f"plotly-{version}.min.js"
    if not path.is_file():
        raise NotFound(f"no plotly.js bundle plotly-{version}.min.js")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": IMMUTABLE})


def mount(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(_: Request, exc: LoginRequired) -> RedirectResponse:
        target = quote(safe_next(exc.target), safe="")
        return RedirectResponse(f"/login?next={target}", status_code=303)

    app.include_router(router)
    app.include_router(public)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static", check_dir=False), name="static")
