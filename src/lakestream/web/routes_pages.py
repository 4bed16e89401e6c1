"""The dashboard's pages: server-rendered frames that ``static/app.js`` fills from the API.

Each page names the JSON endpoints it shows; the script renders them at once
and polls them every few seconds, so a page follows a running pipeline
without a reload. The token travels in an HttpOnly cookie set at login.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from lakestream import __version__
from lakestream.lineage.layout import picture
from lakestream.web.auth import COOKIE, Api, PagePrincipal

HERE = FsPath(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)

Segment = Annotated[str, Path(max_length=255)]


def render(request: Request, page: str, principal: str, **context: Any) -> HTMLResponse:
    """A page of the dashboard."""
    return templates.TemplateResponse(request, f"{page}.html", {
        "page": page, "principal": principal, "version": __version__,
        "poll_ms": request.app.state.poll_ms, **context})


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, principal: PagePrincipal) -> HTMLResponse:
    """Feeds with status, totals, freshness, lag, last runs and failing checks."""
    return render(request, "overview", principal, title="Overview")


@router.get("/datasets/{name}", response_class=HTMLResponse)
def dataset(request: Request, principal: PagePrincipal, name: Segment) -> HTMLResponse:
    """One feed's dataset: partitions over time, file sizes, schema, versions, DLQ."""
    return render(request, "dataset", principal, title=name, name=name, q=quote(name, safe=""))


@router.get("/datasets/{name}/partitions/{partition}", response_class=HTMLResponse)
def partition(request: Request, principal: PagePrincipal, name: Segment,
              partition: Segment) -> HTMLResponse:
    """One partition's files and first rows."""
    return render(request, "partition", principal, title=f"{name} · {partition}", name=name,
                  partition=partition, q=quote(name, safe=""), p=quote(partition, safe=""))


@router.get("/runs", response_class=HTMLResponse)
def runs(request: Request, principal: PagePrincipal) -> HTMLResponse:
    """Runs: a timeline, per-task durations, errors."""
    return render(request, "runs", principal, title="Runs")


@router.get("/quality", response_class=HTMLResponse)
def quality(request: Request, principal: PagePrincipal) -> HTMLResponse:
    """Quality scores and checks over time."""
    return render(request, "quality", principal, title="Quality")


@router.get("/charts", response_class=HTMLResponse)
def charts(request: Request, principal: PagePrincipal) -> HTMLResponse:
    """Charts of the data: weather per city, daily aggregates, transaction totals."""
    return render(request, "charts", principal, title="Data")


@router.get("/lineage", response_class=HTMLResponse)
def lineage(request: Request, principal: PagePrincipal, api: Api) -> HTMLResponse:
    """Datasets and jobs as a picture, drawn from the runs' OpenLineage events."""
    graph = api.monitor.lineage(principal)
    return render(request, "lineage", principal, title="Lineage", graph=graph,
                  picture=picture(graph), destination=api.lineage.destination())


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/", failed: bool = False) -> HTMLResponse:
    """The form that takes a token (from `lakestream tokens create`)."""
    return templates.TemplateResponse(request, "login.html", {
        "next": _local(next), "failed": failed, "version": __version__, "page": "login"})


@router.post("/login")
async def login(request: Request, api: Api) -> Response:
    """Check the token and keep it in an HttpOnly cookie."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token, target = form.get("token", [""])[0].strip(), _local(form.get("next", ["/"])[0])
    if not token or api.tokens.principal_for(token) is None:
        return RedirectResponse(f"/login?failed=true&next={quote(target)}", status_code=303)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=12 * 3600)
    return response


@router.post("/logout")
def logout() -> Response:
    """Forget the cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _local(target: str) -> str:
    """``target`` if it is a path of this site, else ``/`` (no open redirects)."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/"
