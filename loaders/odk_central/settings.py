"""Constants of the ODK Central source."""

DATASET = "raw_odk_central"
SUBMISSIONS_TABLE = "submissions"
ATTACHMENTS_TABLE = "attachments"
DEFAULT_PAGE_SIZE = 1000
# Rows committed in Central while a page was being read can carry timestamps a little before the
# cursor: read that far back every run (merging on the id makes the overlap harmless).
DEFAULT_OVERLAP_SECONDS = 300
DEFAULT_ATTACHMENTS_STORAGE = "data/attachments"

SUBMISSION_COLUMNS = {
    "form_id": {"data_type": "text", "nullable": False},
    "submission_id": {"data_type": "text", "nullable": False},
    "instance_id": {"data_type": "text"},
    "submission_date": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp"},
    "deleted_at": {"data_type": "timestamp"},
    "is_deleted": {"data_type": "bool"},
    "review_state": {"data_type": "text"},
    "submitter_id": {"data_type": "text"},
    "submitter_name": {"data_type": "text"},
    "device_id": {"data_type": "text"},
    "form_version": {"data_type": "text"},
    "edits": {"data_type": "bigint"},
    "status": {"data_type": "text"},
    "attachments_present": {"data_type": "bigint"},
    "attachments_expected": {"data_type": "bigint"},
    "data": {"data_type": "text"},
    "_loaded_at": {"data_type": "timestamp"},
}

REPEAT_COLUMNS = {
    "form_id": {"data_type": "text", "nullable": False},
    "submission_id": {"data_type": "text", "nullable": False},
    "row_id": {"data_type": "text", "nullable": False},
    "parent_id": {"data_type": "text"},
    "parent_link": {"data_type": "text"},
    "data": {"data_type": "text"},
    "_is_tombstone": {"data_type": "bool", "hard_delete": True},
    "_loaded_at": {"data_type": "timestamp"},
}

ATTACHMENT_COLUMNS = {
    "form_id": {"data_type": "text", "nullable": False},
    "submission_id": {"data_type": "text", "nullable": False},
    "name": {"data_type": "text", "nullable": False},
    "field_name": {"data_type": "text"},
    "exists": {"data_type": "bool"},
    "storage_key": {"data_type": "text"},
    "size_bytes": {"data_type": "bigint"},
    "sha256": {"data_type": "text"},
    "content_type": {"data_type": "text"},
    "etag": {"data_type": "text"},
    "downloaded_at": {"data_type": "timestamp"},
    "_loaded_at": {"data_type": "timestamp"},
}
