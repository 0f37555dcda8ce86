"""Daznode: an autopilot for a Lightning routing node, as an LNbits extension."""

import asyncio

from fastapi import APIRouter
from loguru import logger

from .crud import db
from .tasks import monitor_loop, stop_monitor
from .views import daznode_generic_router
from .views_api import daznode_api_router
from .views_api_alerts import daznode_alerts_router
from .views_api_graph import daznode_graph_router
from .views_api_premium import daznode_premium_router
from .views_api_reports import daznode_reports_router
from .views_api_sim import daznode_sim_router

daznode_ext: APIRouter = APIRouter(prefix="/daznode", tags=["daznode"])
daznode_ext.include_router(daznode_generic_router)
daznode_ext.include_router(daznode_api_router)
daznode_ext.include_router(daznode_alerts_router)
daznode_ext.include_router(daznode_graph_router)
daznode_ext.include_router(daznode_premium_router)
daznode_ext.include_router(daznode_reports_router)
daznode_ext.include_router(daznode_sim_router)

daznode_static_files = [{"path": "/daznode/static", "name": "daznode_static"}]

MONITOR_TASK = "ext_daznode_monitor"
PREMIUM_LISTENER = "ext_daznode_premium"


def daznode_start() -> None:
    from lnbits.task_manager import task_manager

    from .premium import on_payment

    task_manager.create_permanent_task(monitor_loop, name=MONITOR_TASK)
    task_manager.register_invoice_listener(on_payment, PREMIUM_LISTENER)


def daznode_stop() -> None:
    from lnbits.task_manager import task_manager

    for name in (MONITOR_TASK, f"{PREMIUM_LISTENER}_invoice_listener"):
        task = task_manager.get_task(name)
        if task:
            task_manager.cancel_task(task)
    try:
        asyncio.get_running_loop().create_task(stop_monitor())
    except RuntimeError:  # no loop: LNbits is shutting down, the lease simply expires
        logger.debug("daznode: lease left to expire")


__all__ = ["daznode_ext", "daznode_start", "daznode_static_files", "daznode_stop", "db"]
