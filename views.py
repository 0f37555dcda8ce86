"""The extension's pages."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from lnbits.core.models import User
from lnbits.decorators import check_user_exists
from lnbits.helpers import template_renderer
from lnbits.settings import settings

daznode_generic_router = APIRouter()


def daznode_renderer():
    return template_renderer(["daznode/templates"])


def _page(request: Request, user: User, template: str):
    return daznode_renderer().TemplateResponse(
        request,
        f"daznode/{template}",
        {"user": user.json(), "daznode_is_admin": settings.is_admin_user(user.id)},
    )


@daznode_generic_router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, user: Annotated[User, Depends(check_user_exists)]):
    return _page(request, user, "index.html")


@daznode_generic_router.get("/network", response_class=HTMLResponse, include_in_schema=False)
async def network(request: Request, user: Annotated[User, Depends(check_user_exists)]):
    return _page(request, user, "network.html")


@daznode_generic_router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
async def reports(request: Request, user: Annotated[User, Depends(check_user_exists)]):
    return _page(request, user, "reports.html")


@daznode_generic_router.get("/whatif", response_class=HTMLResponse, include_in_schema=False)
async def whatif(request: Request, user: Annotated[User, Depends(check_user_exists)]):
    return _page(request, user, "whatif.html")
