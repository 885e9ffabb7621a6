"""``/api/reconciliation/reports``: the settlement job's reports (admin and ops)."""

from __future__ import annotations

import falcon

from api.deps import Deps
from api.openapi import Reply, operation
from api.render import reconciliation_report_body
from api.schemas import ReconciliationQueryIn, ReconciliationReportsOut
from api.validation import parse_query
from services.payments.settlement import list_reports


class ReconciliationReportsResource:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @operation(
        "listReconciliationReports",
        tags=["reconciliation"],
        query=ReconciliationQueryIn,
        replies={200: Reply(ReconciliationReportsOut, "The reports.")},
        errors=(403,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Settlement reports: for each UTC day and gateway, the gateway's captures and refunds
        compared with the payments recorded here (admin and ops only).

        A daily beat job settles the previous day (`SETTLEMENT_INTERVAL_SECONDS`); settling a day
        again replaces its report. `matchedCount`: entries on both sides with equal amounts;
        `missingInGateway`: payments that succeeded here but are unknown to the gateway;
        `missingInDb`: money the gateway moved that no payment here records as succeeded;
        `amountMismatches`: the same entry with different amounts; `manualCount`/`manualTotal` (and
        `manualRefundCount`/`manualRefundTotal`): payments staff recorded as received (given back)
        outside the gateway, which the gateway cannot know of, so they are counted apart and never
        reported missing. An entry is looked for on the
        other side up to an hour either side of the day. Gateways whose adapter cannot list its
        ledger (stripe, today) have no reports.
        """
        params = parse_query(req, ReconciliationQueryIn)
        reports = list_reports(self.deps.db, req.context.principal, day=params.date, gateway_id=params.gatewayId)
        resp.media = {"value": [reconciliation_report_body(report) for report in reports]}
