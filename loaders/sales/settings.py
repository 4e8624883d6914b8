"""Constants of the sales source: canonical columns, types and the validation rules' parameters."""

import pyarrow as pa

DATASET = "raw_sales"

# Canonical order-line columns; a file source maps its own headers onto these.
ORDER_COLUMNS = (
    "order_id",
    "order_date",
    "user_id",
    "product_name",
    "quantity",
    "unit_price",
    "total_amount",
    "region",
)
# The headers of the standard export (and the API's field names).
DEFAULT_COLUMN_MAP = {
    "order_id": "order_id",
    "order_date": "date",
    "user_id": "user_id",
    "product_name": "product_name",
    "quantity": "quantity",
    "unit_price": "unit_price",
    "total_amount": "total_amount",
    "region": "region",
}
# Columns a file source or the API may map besides those: a line number, for a key of its own.
EXTRA_COLUMNS = ("line_number",)
# Columns a file source may declare optional (absent from its files, or blank on a row), and what
# stands in for a missing value.
OPTIONAL_COLUMNS = {"total_amount": "quantity x unit_price"}
# An order line is one product on one order unless a source declares its own key (for example
# order_id and line_number, when an order can list a product twice). The key's columns after
# order_id make the stored ``line_key``; raw orders are merged on (order_id, line_key).
ORDER_LINE_KEY = ("order_id", "product_name")
MERGE_KEY = ("order_id", "line_key")

MONEY = pa.decimal128(18, 4)
TOTAL_TOLERANCE = 0.01  # a total may differ from quantity x unit price by at most a cent

ORDERS_SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.string(), nullable=False),
        ("order_date", pa.date32()),
        ("user_id", pa.string()),
        pa.field("product_name", pa.string(), nullable=False),
        pa.field("line_key", pa.string(), nullable=False),
        ("quantity", pa.int64()),
        ("unit_price", MONEY),
        ("total_amount", MONEY),
        ("region", pa.string()),
        ("_source_name", pa.string()),
        ("_source_file", pa.string()),
        ("_source_line", pa.int64()),
        ("_loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)

USER_COLUMNS = ("username", "email", "role", "initial_password")
DEFAULT_ROLES = ("admin", "manager", "sales_rep", "analyst")

CSV_BLOCK_SIZE = 8 << 20  # bytes per Arrow block: bounds memory whatever the file size
