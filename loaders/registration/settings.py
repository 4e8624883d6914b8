"""Constants of the registration source."""

DATASET = "raw_registration"
# Columns every level table gets besides its configured figures.
CODE = "code"
PARENT_CODE = "parent_code"
NAME = "name"
SOURCE_UPDATED_AT = "source_updated_at"
ROW_HASH = "_row_hash"
DELETED = "_is_deleted"
DEFAULT_CHUNK_SIZE = 10_000
