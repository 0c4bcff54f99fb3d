"""Starts the MongoDB-wire server nx-27017 for tests and the local demo, with Decimal128.

nx-27017 stores documents as JSON and rejects BSON Decimal128. This launcher patches its two
conversion points so Decimal128 round-trips: on the way in a Decimal128 becomes
{"$numberDecimal": "<text>"}, and on the way out such a dict becomes Decimal128 again.
Queries that compute on money (sums, ranges) still need real MongoDB.

Usage: python3 nx_mongo.py --port P --data-dir DIR --pid-file F --log-file F
(all arguments are passed to nx-27017).
"""

import sys

from bson import Decimal128

import nx_27017.utils as nx_utils
import nx_27017.wire_protocol as nx_wire
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

if __name__ == "__main__":
    sys.argv[0] = "nx-27017"
    sys.exit(main())
