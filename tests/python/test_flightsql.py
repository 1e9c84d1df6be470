"""A generic Flight SQL client (ADBC's Flight SQL driver) meets flightbatch.

flightbatch is not a SQL server: a Flight SQL client must get a clean UNIMPLEMENTED status, which
generic clients understand, not INVALID_ARGUMENT or a crash. The raw gRPC checks pin the code on the
two paths such a client takes: an action it does not know (CreatePreparedStatement) and a foreign
command descriptor (a Flight SQL CommandStatementQuery in a protobuf Any).
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import grpc
import pytest

from conftest import FLIGHT_SERVICE, _len_field, _varint, list_job_ids, raw_do_action

UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED


def flightsql_command_descriptor(sql: str) -> bytes:
    """FlightDescriptor{type: CMD, cmd: Any{CommandStatementQuery{query: sql}}}, as Flight SQL sends."""
    query = _len_field(1, sql.encode())
    any_msg = _len_field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + _len_field(2, query)
    return _varint((1 << 3) | 0) + _varint(2) + _len_field(2, any_msg)


def test_adbc_query_is_unimplemented(server, client):
    before = list_job_ids(client)
    with flightsql.connect(server.location, autocommit=True) as conn:
        with conn.cursor() as cur:
            with pytest.raises(adbc_driver_manager.Error) as err:
                cur.execute("SELECT 1")
                cur.fetchall()
    e = err.value
    assert isinstance(e, adbc_driver_manager.NotSupportedError), f"{type(e).__name__}: {e}"
    assert "UNIMPLEMENTED" in str(e).upper() or "NOT_IMPLEMENTED" in str(e).upper(), str(e)
    assert "Flight SQL" in str(e), f"the message does not say what is not implemented: {e}"
    assert list_job_ids(client) == before, "a Flight SQL query changed the job history"


def test_create_prepared_statement_is_unimplemented(server):
    reply = raw_do_action(server.addr, "CreatePreparedStatement", b"\x0a\x08SELECT 1")
    assert reply.code == UNIMPLEMENTED, f"{reply.code.name}: {reply.details!r}"
    assert "CreatePreparedStatement" in reply.details


@pytest.mark.parametrize("method", ["GetFlightInfo", "GetSchema", "PollFlightInfo"])
def test_flightsql_command_descriptor_is_unimplemented(server, method):
    with grpc.insecure_channel(server.addr) as channel:
        call = channel.unary_unary(f"{FLIGHT_SERVICE}/{method}")
        with pytest.raises(grpc.RpcError) as err:
            call(flightsql_command_descriptor("SELECT 1"), timeout=30.0)
    assert err.value.code() == UNIMPLEMENTED, f"{err.value.code().name}: {err.value.details()!r}"
    assert "Flight SQL" in (err.value.details() or "")
