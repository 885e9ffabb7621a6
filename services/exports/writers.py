"""Streaming file writers: one row in, one row out, memory flat whatever the row count.

* csv: the ``csv`` module (RFC 4180, ``\\r\\n``), UTF-8 without a BOM; money as ``1234.50``,
  date-times as ISO 8601 UTC with ``Z`` (whole seconds, as the API writes them).
* xlsx: xlsxwriter with ``constant_memory=True`` (each row is flushed to a temporary file as soon
  as the next one starts); money is a number with the ``0.00`` format, date-times are real
  Excel date-times (UTC, ``yyyy-mm-dd hh:mm:ss``). A sheet holds ``sheet_rows`` rows, header
  included (1,048,576 in Excel); the export continues on ``Orders 2``, ``Orders 3``…, each with
  its own header row.

Formula injection: every *text* cell whose first character is ``=``, ``+``, ``-``, ``@``, tab or
carriage return is prefixed with a single quote, in both formats, so both files carry the same
cell text and neither Excel nor LibreOffice evaluates it. In xlsx the cell is also always written
with ``write_string`` (a string cell is never a formula, whatever its text), and the workbook's
``strings_to_formulas``/``strings_to_numbers``/``strings_to_urls`` conversions are off.
Numbers and dates are never prefixed: they are typed cells, not text.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import xlsxwriter

from services.exports.columns import DATETIME, INTEGER, MONEY, ExportColumn

XLSX_MAX_ROWS = 1_048_576
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
SHEET_NAME = "Orders"
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def neutralize(text: str) -> str:
    """Text a spreadsheet shows as text: a leading formula trigger gets a ``'`` in front."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def csv_datetime(value: datetime) -> str:
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(timespec="seconds")[:19] + "Z"


def xlsx_datetime(value: datetime) -> datetime:
    """Naive UTC to the second (Excel has no time zones; the API's precision is seconds)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)


def _csv_text(value: Any) -> str:
    return "" if value is None else neutralize(str(value))


def _csv_money(value: Decimal | None) -> str:
    return "" if value is None else format(value, ".2f")


def _csv_integer(value: int | None) -> str:
    return "" if value is None else str(value)


def _csv_datetime(value: datetime | None) -> str:
    return "" if value is None else csv_datetime(value)


_CSV_CONVERTERS: dict[str, Callable[[Any], str]] = {
    MONEY: _csv_money,
    INTEGER: _csv_integer,
    DATETIME: _csv_datetime,
}


class ExportWriter(Protocol):
    rows: int

    def write(self, row: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


class CsvExportWriter:
    content_type = CSV_CONTENT_TYPE
    extension = "csv"

    def __init__(self, path: Path, columns: Sequence[ExportColumn]) -> None:
        self._file = path.open("w", newline="", encoding="utf-8", buffering=1024 * 1024)
        self._writer = csv.writer(self._file)
        self._converters = tuple(_CSV_CONVERTERS.get(column.kind, _csv_text) for column in columns)
        self._writer.writerow([neutralize(column.name) for column in columns])
        self.rows = 0

    def write(self, row: Sequence[Any]) -> None:
        self._writer.writerow([convert(value) for convert, value in zip(self._converters, row, strict=True)])
        self.rows += 1

    def close(self) -> None:
        self._file.flush()
        self._file.close()


class XlsxExportWriter:
    content_type = XLSX_CONTENT_TYPE
    extension = "xlsx"

    def __init__(
        self,
        path: Path,
        columns: Sequence[ExportColumn],
        *,
        sheet_rows: int = XLSX_MAX_ROWS,
        tmpdir: Path | None = None,
    ) -> None:
        if not 2 <= sheet_rows <= XLSX_MAX_ROWS:
            raise ValueError(f"sheet_rows must be between 2 and {XLSX_MAX_ROWS}")
        self._workbook = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": str(tmpdir) if tmpdir else None,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "use_zip64": True,
            },
        )
        self._header_format = self._workbook.add_format({"bold": True})
        self._money_format = self._workbook.add_format({"num_format": "0.00"})
        self._datetime_format = self._workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self._columns = tuple(columns)
        self._kinds = tuple(column.kind for column in columns)
        self._sheet_rows = sheet_rows
        self._sheet: Any = None
        self._row = 0
        self.sheets = 0
        self.rows = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.sheets += 1
        name = SHEET_NAME if self.sheets == 1 else f"{SHEET_NAME} {self.sheets}"
        sheet = self._workbook.add_worksheet(name)
        for index, column in enumerate(self._columns):
            width = {DATETIME: 20, MONEY: 14, INTEGER: 10}.get(column.kind, 30)
            sheet.set_column(index, index, width)
            sheet.write_string(0, index, neutralize(column.name), self._header_format)
        sheet.freeze_panes(1, 0)
        self._sheet = sheet
        self._row = 1

    def write(self, row: Sequence[Any]) -> None:
        if self._row >= self._sheet_rows:
            self._new_sheet()
        sheet, index = self._sheet, self._row
        for col, (kind, value) in enumerate(zip(self._kinds, row, strict=True)):
            if value is None:
                continue
            if kind == MONEY:
                # A spreadsheet number is an IEEE double; every Numeric(12,2) amount converts and
                # displays exactly with the 0.00 format (15+ significant digits).
                sheet.write_number(index, col, float(value), self._money_format)
            elif kind == INTEGER:
                sheet.write_number(index, col, value)
            elif kind == DATETIME:
                sheet.write_datetime(index, col, xlsx_datetime(value), self._datetime_format)
            else:
                sheet.write_string(index, col, neutralize(str(value)))
        self._row += 1
        self.rows += 1

    def close(self) -> None:
        self._workbook.close()


def open_writer(
    fmt: str,
    path: Path,
    columns: Sequence[ExportColumn],
    *,
    sheet_rows: int = XLSX_MAX_ROWS,
    tmpdir: Path | None = None,
) -> ExportWriter:
    if fmt == "csv":
        return CsvExportWriter(path, columns)
    if fmt == "xlsx":
        return XlsxExportWriter(path, columns, sheet_rows=sheet_rows, tmpdir=tmpdir)
    raise ValueError(f"unknown export format {fmt!r}")


def content_type_for(fmt: str) -> str:
    return CSV_CONTENT_TYPE if fmt == "csv" else XLSX_CONTENT_TYPE
