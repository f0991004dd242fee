"""Cached data-task results stored as plain JSON, so that a cache hit never unpickles a file.

The data tasks persist their small results (dicts of str, int, bool, None) with
:data:`SERIALIZER`: plain ``json``, without Prefect's object hook (which imports and builds any
class a file names). Prefect reads a stored result with the serializer named *in the file*, so a
file written by an older dgnn (cloudpickle) or planted in the results folder would still be
unpickled: :class:`PlainJsonOnly` wraps the data tasks' cache policy and, once the key is known
and before Prefect reads it, deletes a stored result that is anything else. The task then runs
again and rewrites it. Only local result storage (``PREFECT_RESULTS_LOCAL_STORAGE_PATH``, what
the project uses) is checked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from prefect.cache_policies import CachePolicy
from prefect.filesystems import LocalFileSystem
from prefect.results import get_default_result_storage
from prefect.serializers import JSONSerializer

SERIALIZER = JSONSerializer(object_decoder=None)


def is_plain_json(content: bytes) -> bool:
    """Whether ``content`` is a result record that :data:`SERIALIZER` wrote."""
    try:
        record = json.loads(content)
    except ValueError:  # a pickle, or anything else that is not JSON
        return False
    metadata = record.get("metadata") if isinstance(record, dict) else None
    return isinstance(metadata, dict) and metadata.get("serializer") == SERIALIZER.model_dump(mode="json")


def _stored_result(task_ctx, key: str) -> Path | None:
    storage = task_ctx.result_store.result_storage or get_default_result_storage(_sync=True)
    if not isinstance(storage, LocalFileSystem):
        return None
    return Path(storage.basepath or ".").expanduser() / key


@dataclass
class PlainJsonOnly(CachePolicy):
    """``policy``'s cache key; a stored result under that key that is not plain JSON is deleted."""

    policy: CachePolicy | None = None

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        key = self.policy.compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        path = _stored_result(task_ctx, key) if key else None
        if path is not None and path.is_file() and not is_plain_json(path.read_bytes()):
            logging.getLogger("adapters.prefect.json_results").warning(
                "deleted cached result %s: not a plain-JSON record (from an older dgnn, or not written by "
                "dgnn); the task runs again", path)
            path.unlink(missing_ok=True)
        return key
