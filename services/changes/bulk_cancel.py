"""Bulk cancellation: one parent job, one child job per order, gathered by the last child.

1. :func:`start_bulk_cancel` (the request; admin and ops keys only): checks the id list and
   writes, in one transaction, the parent job (``progress.total`` = the number of distinct ids)
   and every child job in one INSERT. The parent's message is sent after commit.
2. :func:`fan_out` (the parent's task, ``orders`` queue): returns the children still ``queued``,
   which the runner sends in one batch over one broker connection. The parent stays ``running``;
   a redelivered parent message re-sends the children not yet finished.
3. :func:`cancel_in` (each child's task, ``orders`` queue): cancels one order through
   :func:`services.transitions.transition_order` inside the child job's own transaction
   (``services.jobs.run_atomically``: claim, cancellation and outcome commit together, so a
   redelivered child finds its job finished and does nothing; an already-cancelled order counts
   as cancelled either way). Finishing a child counts it into the parent's progress exactly once
   in that same transaction; the child that completes the count calls :func:`gather_results`,
   which writes the brief's ``{"cancelled", "failed", "results"}`` as the parent's result, one
   entry per requested id in request order.

:func:`plan_bulk_cancel` answers ``?dryRun=true``: what each order would do, changing nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Database, Job, Order
from services.changes.transitions import transition_order, visible_order
from services.jobs.children import gathers
from services.jobs.kinds import BULK_CANCEL, CANCEL_ORDER
from services.jobs.outbox import Child, JobOutcome, JobRef, add_children, add_job
from services.jobs.states import QUEUED, SUCCEEDED
from services.kernel import lifecycle
from services.kernel.errors import DomainError, InvalidTransition, OrderNotFound, PayloadTooLarge, ValidationFailed
from services.kernel.principal import Principal

MAX_ORDER_IDS = 10_000
ORDER_ID_LENGTH = 40  # longer ids cannot name an order; their children keep the id in args only
# API.md: bulk cancel is an operator's tool (ops: "all orders, status changes, bulk cancel, ...");
# a customer cancels its own orders' items through ``services.items``.
BULK_CANCEL_ROLES = ("admin", "ops")


def _distinct(order_ids: list[str]) -> list[str]:
    if len(order_ids) > MAX_ORDER_IDS:
        raise PayloadTooLarge(
            f"At most {MAX_ORDER_IDS} order ids per request.",
            details=[{"field": "orderIds", "maxItems": MAX_ORDER_IDS, "received": len(order_ids)}],
        )
    if not order_ids:
        raise ValidationFailed(details=[{"field": "orderIds", "message": "at least one order id is required"}])
    return list(dict.fromkeys(order_ids))  # repeated ids are cancelled (and reported) once


def _principal_args(principal: Principal) -> dict[str, Any]:
    return {"keyId": principal.key_id, "role": principal.role, "customerId": principal.customer_id}


def _principal_of(args: dict[str, Any]) -> Principal:
    data = args["principal"]
    return Principal(key_id=data["keyId"], role=data["role"], customer_id=data.get("customerId"))


def _error(exc: DomainError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}


def _cancellation(order: Order | None, principal: Principal, order_id: str) -> DomainError | None:
    """``None`` when the order is (or already was) cancelled; else the error it fails with."""
    if order is None or not principal.can_see_customer(order.customer_id):
        return OrderNotFound(details=[{"orderId": order_id}])
    if order.status == lifecycle.CANCELLED or lifecycle.order_transition_allowed(order.status, lifecycle.CANCELLED):
        return None
    return InvalidTransition(
        f"An order in status '{order.status}' cannot be cancelled.",
        details=[
            {
                "orderId": order.id,
                "currentStatus": order.status,
                "requestedStatus": lifecycle.CANCELLED,
                "allowedTransitions": list(lifecycle.allowed_order_transitions(order.status)),
            }
        ],
    )


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    failed = sum(1 for result in results if "error" in result)
    return {"cancelled": len(results) - failed, "failed": failed, "results": results}


# --- the request ----------------------------------------------------------------------------------


def start_bulk_cancel(
    db: Database,
    principal: Principal,
    order_ids: list[str],
    *,
    reason: str | None,
    request_id: str | None = None,
) -> JobRef:
    """Write the parent job and, in one INSERT, one child job per distinct order id.

    The parent's task sends the children's messages (10,000 sends take seconds; the request does
    not wait for them). Staff only: a customer key is 403 before anything is read or written.
    """
    principal.require_role(*BULK_CANCEL_ROLES)
    ids = _distinct(order_ids)
    who = _principal_args(principal)
    with db.transaction() as session:
        parent = add_job(
            session,
            BULK_CANCEL,
            args={"reason": reason, "principal": who, "count": len(ids)},
            owner=principal,
            request_id=request_id,
            progress_total=len(ids),
        )
        children = [
            Child(
                args={"orderId": order_id, "position": position, "reason": reason, "principal": who},
                order_id=order_id if len(order_id) <= ORDER_ID_LENGTH else None,
            )
            for position, order_id in enumerate(ids)
        ]
        add_children(session, parent, CANCEL_ORDER, children, owner=principal, request_id=request_id)
        return parent


def plan_bulk_cancel(db: Database, principal: Principal, order_ids: list[str], chunk: int = 500) -> dict[str, Any]:
    """The dry run: the result the bulk cancel would have now, with nothing changed (staff only)."""
    principal.require_role(*BULK_CANCEL_ROLES)
    ids = _distinct(order_ids)
    found: dict[str, Order] = {}
    with db.reader() as session:
        for start in range(0, len(ids), chunk):
            wanted = [order_id for order_id in ids[start : start + chunk] if len(order_id) <= ORDER_ID_LENGTH]
            for order in session.scalars(select(Order).where(Order.id.in_(wanted))):
                found[order.id] = order
    results = []
    for order_id in ids:
        order = found.get(order_id)
        error = _cancellation(order, principal, order_id)
        if error is not None:
            results.append({"orderId": order_id, "error": _error(error)})
        else:
            assert order is not None
            results.append({"orderId": order_id, "status": lifecycle.CANCELLED, "currentStatus": order.status})
    return {**_summary(results), "dryRun": True}


# --- the parent's task ----------------------------------------------------------------------------


def fan_out(db: Database, parent_id: str, args: dict[str, Any]) -> JobOutcome:
    """The children still ``queued``, to be sent in one batch; the parent stays ``running``.

    The sender packs them into batch messages (``tasks.dispatch``): each claims its children in
    one statement and counts them into the parent once. A redelivered parent message sends the
    unfinished children again (their tasks are idempotent).
    """
    with db.reader() as session:
        queued = session.scalars(select(Job.id).where(Job.parent_id == parent_id, Job.state == QUEUED)).all()
    return JobOutcome(send=[JobRef.of(CANCEL_ORDER, job_id) for job_id in queued], finished=False)


# --- each child's task ----------------------------------------------------------------------------


def cancel_in(session: Session, args: dict[str, Any], request_id: str | None) -> JobOutcome:
    """Cancel one order in the caller's transaction; already cancelled counts as cancelled."""
    order_id = args["orderId"]
    principal = _principal_of(args)
    order = visible_order(session, principal, order_id) if len(order_id) <= ORDER_ID_LENGTH else None
    error = _cancellation(order, principal, order_id)
    if error is not None:
        raise error
    assert order is not None
    jobs: list[JobRef] = []
    if order.status != lifecycle.CANCELLED:
        change = transition_order(
            session,
            order,
            lifecycle.CANCELLED,
            reason=args.get("reason") or "bulk cancel",
            principal=principal,
            request_id=request_id,
        )
        jobs = change.jobs
    return JobOutcome(result={"orderId": order_id, "status": lifecycle.CANCELLED}, send=jobs)


def cancel_one(db: Database, args: dict[str, Any], request_id: str | None = None) -> JobOutcome:
    """:func:`cancel_in` as its own transaction (the benchmark's floor calls this)."""
    with db.transaction() as session:
        return cancel_in(session, args, request_id)


# --- the last child -------------------------------------------------------------------------------


@gathers(BULK_CANCEL)
def gather_results(session: Session, parent: Job) -> dict[str, Any]:
    """The parent's result: one entry per distinct requested id, in request order."""
    outcomes: list[tuple[int, dict[str, Any]]] = []
    for args, state, result, error in session.execute(
        select(Job.args, Job.state, Job.result, Job.error).where(Job.parent_id == parent.id)
    ):
        order_id = args["orderId"]
        if state == SUCCEEDED and error is None:
            outcomes.append((args["position"], result))
        else:
            error = error or {"code": "INTERNAL_ERROR", "message": "The cancellation did not finish."}
            outcomes.append((args["position"], {"orderId": order_id, "error": error}))
    outcomes.sort(key=lambda outcome: outcome[0])
    return _summary([outcome for _, outcome in outcomes])
