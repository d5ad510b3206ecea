"""Reads Parquet files written by hotelbus replay with pyarrow, an independent reader.

Usage: read_parquet.py FILE
Prints one JSON object: {"types": {column path: arrow type}, "rows": [...]}. Values are rendered the
way hotelbus's canonical JSON renders them, so the test compares by value: decimals as strings with
their scale, dates YYYY-MM-DD, timestamps RFC 3339 UTC with milliseconds and "Z", maps as objects.
"""
import datetime
import decimal
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def types(prefix, t, out):
    out[prefix] = str(t)
    if pa.types.is_struct(t):
        for f in t:
            types(prefix + "." + f.name, f.type, out)
    elif pa.types.is_list(t):
        types(prefix + "[]", t.value_type, out)


def render(v, t):
    if v is None:
        return None
    if pa.types.is_struct(t):
        return {f.name: render(v[f.name], f.type) for f in t}
    if pa.types.is_list(t):
        return [render(e, t.value_type) for e in v]
    if pa.types.is_map(t):
        return {k: render(e, t.item_type) for k, e in v}
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, datetime.datetime):
        v = v.astimezone(datetime.timezone.utc)
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (v.microsecond // 1000)
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


def main():
    table = pq.read_table(sys.argv[1])
    out = {"types": {}, "rows": []}
    for f in table.schema:
        types(f.name, f.type, out["types"])
    for row in table.to_pylist():
        out["rows"].append({f.name: render(row[f.name], f.type) for f in table.schema})
    json.dump(out, sys.stdout, ensure_ascii=False)


main()
