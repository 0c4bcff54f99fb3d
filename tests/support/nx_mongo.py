"""Starts the MongoDB-wire server nx-27017 for tests and the local demo, with Decimal128 and
GridFS replies shaped as MongoDB's.

nx-27017 stores documents as JSON and rejects BSON Decimal128. This launcher patches its two
conversion points so Decimal128 round-trips: on the way in a Decimal128 becomes
{"$numberDecimal": "<text>"}, and on the way out such a dict becomes Decimal128 again.
Queries that compute on money (sums, ranges) still need real MongoDB.

nx-27017 (0.8.1) keeps GridFS buckets in its own tables and answers the GridFS collections
(`<bucket>.files`, `<bucket>.chunks`) itself, in ways that differ from MongoDB. Three break
the Rust driver's GridFS API; the launcher fixes them in the replies, not in the storage:

- `uploadDate` comes back as an ISO-8601 string; MongoDB stores a BSON date, and the driver
  cannot read a files document without one (every find, download and delete by name fails
  with "expecting DateTime"). It is returned as a date (naive text is UTC).
- A chunk's `_id` comes back as the table's integer row id; the driver reads chunks only
  with an ObjectId `_id`. It is returned as an ObjectId made of that integer.
- `create` of `<bucket>.files` or `<bucket>.chunks` is refused (not a valid table name),
  without a `code` (which the driver cannot parse); the driver creates those collections
  before its indexes when it writes the first full chunk into an empty bucket, so that upload
  failed. It now creates the bucket's tables.

Still different, and not patched: a files document (empty `filename`, `length` 0, no
metadata) exists as soon as an upload's first chunk is stored, rather than only when the
upload is closed; deleting a files document that does not exist is an error (`ok: 0`
without a `code`) where MongoDB answers `n: 0`; counting on a GridFS collection fails.

Usage: python3 nx_mongo.py --port P --data-dir DIR --pid-file F --log-file F
(all arguments are passed to nx-27017).
"""

import sys
from datetime import datetime, timezone

from bson import Decimal128
from bson import ObjectId as BsonObjectId

import neosqlite.connection as neo_connection
import nx_27017.gridfs_adapter as nx_gridfs
import nx_27017.utils as nx_utils
import nx_27017.wire_protocol as nx_wire
from neosqlite.gridfs import GridFSBucket
from nx_27017.nx_27017 import main

_to_neo = nx_utils.convert_bson_to_neo_objectids
_to_bson = nx_wire._convert_objectids


def _store_decimals(value):
    if isinstance(value, Decimal128):
        return {"$numberDecimal": str(value)}
    if isinstance(value, list):
        return [_store_decimals(v) for v in value]
    if isinstance(value, dict):
        return {k: _store_decimals(v) for k, v in value.items()}
    return value


def _load_decimals(value):
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$numberDecimal"), str):
            return Decimal128(value["$numberDecimal"])
        return {k: _load_decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_load_decimals(v) for v in value]
    return value


nx_utils.convert_bson_to_neo_objectids = lambda doc: _to_neo(_store_decimals(doc))
nx_wire._convert_objectids = lambda doc: _load_decimals(_to_bson(doc))


def _as_date(value):
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed
    return value


_file_result = nx_gridfs.GridFSAdapter._convert_gridfs_result


def _file_result_with_date(self, grid_out):
    doc = _file_result(self, grid_out)
    doc["uploadDate"] = _as_date(doc.get("uploadDate"))
    return doc


_chunks_find = nx_gridfs.GridFSAdapter.handle_chunks_find


def _chunks_find_with_object_ids(self, filter_query=None):
    chunks = _chunks_find(self, filter_query)
    for chunk in chunks:
        if isinstance(chunk.get("_id"), int):
            chunk["_id"] = BsonObjectId(chunk["_id"].to_bytes(12, "big"))
    return chunks


_create_collection = neo_connection.Connection.create_collection


def _create_collection_or_bucket(self, name, **kwargs):
    if nx_gridfs._is_gridfs_collection(name):
        GridFSBucket(self.db, bucket_name=nx_gridfs._get_gridfs_bucket_name(name))
        return None
    return _create_collection(self, name, **kwargs)


nx_gridfs.GridFSAdapter._convert_gridfs_result = _file_result_with_date
nx_gridfs.GridFSAdapter.handle_chunks_find = _chunks_find_with_object_ids
neo_connection.Connection.create_collection = _create_collection_or_bucket

if __name__ == "__main__":
    sys.argv[0] = "nx-27017"
    sys.exit(main())
