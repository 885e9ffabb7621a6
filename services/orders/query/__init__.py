"""Query translation: the OData subset of ``GET /api/orders`` (and export filters) to SQLAlchemy.

Public entry points (all raise :class:`services.errors.InvalidQuery` with a position):

* :func:`services.query.filter.compile_filter` — ``$filter`` text to a boolean SQL expression
  over ``orders`` (``select(Order).where(compile_filter(text))``).
* :func:`services.query.orderby.compile_orderby` — ``$orderby`` text to sort keys whose
  ``clauses`` go into ``select(...).order_by(*clauses)``; ``id`` always breaks ties.
* :mod:`services.query.paging` — opaque, HMAC-checked keyset ``$skiptoken`` values.
"""

from services.orders.query.fields import FIELDS, ITEM_FIELDS, FieldSpec
from services.orders.query.filter import compile_filter
from services.orders.query.orderby import OrderBy, SortKey, compile_orderby

__all__ = ["FIELDS", "ITEM_FIELDS", "FieldSpec", "OrderBy", "SortKey", "compile_filter", "compile_orderby"]
