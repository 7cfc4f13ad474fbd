"""The worker's KV records: defined once in `shared.records`, re-exported for the workers' modules."""

from __future__ import annotations

from shared.records import (
    ErrorRecord,
    ExternalRef,
    IncidentRecord,
    Lease,
    Pending,
    PendingOp,
    applied,
    comment_tag,
    decode_error,
    decode_record,
    encode_error,
    encode_record,
    error_record,
    incident_label,
    is_stale,
    lease_blocks,
    note_tag,
    with_lease,
    without_lease,
)

__all__ = [
    "ErrorRecord",
    "ExternalRef",
    "IncidentRecord",
    "Lease",
    "Pending",
    "PendingOp",
    "applied",
    "comment_tag",
    "decode_error",
    "decode_record",
    "encode_error",
    "encode_record",
    "error_record",
    "incident_label",
    "is_stale",
    "lease_blocks",
    "note_tag",
    "with_lease",
    "without_lease",
]
